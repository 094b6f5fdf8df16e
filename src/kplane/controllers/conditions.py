"""Status conditions as controllers keep them: one entry per type, stamped when it flips.

A condition's ``lastTransitionTime`` says when its status last changed, so rewriting the
same status keeps the old time; that also keeps a reconcile that finds nothing new from
writing at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[Any], kind: str, status: bool, reason: str,
                  message: str) -> None:
    """Put one condition into ``conditions`` (in place), keeping its transition time when
    its status is unchanged."""
    wanted = "True" if status else "False"
    for index, existing in enumerate(conditions):
        if isinstance(existing, Mapping) and existing.get("type") == kind:
            since = (existing.get("lastTransitionTime")
                     if existing.get("status") == wanted else None)
            conditions[index] = _condition(kind, wanted, reason, message, since or now())
            return
    conditions.append(_condition(kind, wanted, reason, message, now()))


def with_conditions(obj: dict[str, Any], changes: Iterable[tuple[str, bool, str, str]],
                    **fields: Any) -> dict[str, Any]:
    """``obj`` with a new status: the old one plus ``fields``, and each (type, status,
    reason, message) condition set. The old status is not changed, so a caller may pass a
    shallow copy and compare the result with what it had."""
    status = dict(obj.get("status") or {})
    status.update(fields)
    conditions = list(status.get("conditions") or [])
    for kind, ok, reason, message in changes:
        set_condition(conditions, kind, ok, reason, message)
    status["conditions"] = conditions
    obj["status"] = status
    return obj


def condition_status(conditions: Any, kind: str) -> str:
    """"True", "False" or "" (absent) for one condition type."""
    return str(find_condition(conditions, kind).get("status", ""))


def find_condition(conditions: Any, kind: str) -> Mapping[str, Any]:
    """The condition of one type in a status' ``conditions``; empty when absent."""
    for existing in conditions or []:
        if isinstance(existing, Mapping) and existing.get("type") == kind:
            return existing
    return {}


def _condition(kind: str, status: str, reason: str, message: str,
               since: str) -> dict[str, str]:
    condition = {"type": kind, "status": status, "lastTransitionTime": since}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition
