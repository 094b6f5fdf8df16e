"""An instance's status: the Ready condition plus where its database and credentials are.

The status is rebuilt from scratch on every reconcile and written only when it differs from
what is stored, so a reconcile triggered by the provider's own status write changes nothing
and the loop settles. ``lastTransitionTime`` moves only when Ready's status flips.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

READY = "Ready"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == READY:
            return condition
    return None


def build_status(instance: Mapping[str, Any], *, ready: bool, reason: str, message: str,
                 database: str | None = None, username: str | None = None,
                 secret_name: str | None = None) -> dict[str, Any]:
    """The status the instance should have. Fields left as None keep their stored value, so
    a failure after provisioning still says where the database is."""
    old = instance.get("status") or {}
    generation = (instance.get("metadata") or {}).get("generation")
    state = "True" if ready else "False"
    previous = _ready_condition(old)
    transition = (previous.get("lastTransitionTime") if previous is not None
                  and previous.get("status") == state else None) or _now()
    condition: dict[str, Any] = {"type": READY, "status": state, "reason": reason,
                                 "message": message, "lastTransitionTime": transition}
    status: dict[str, Any] = {"conditions": [condition]}
    if isinstance(generation, int):
        condition["observedGeneration"] = generation
        status["observedGeneration"] = generation
    for key, value in (("database", database), ("username", username),
                       ("secretName", secret_name)):
        if value is not None:
            status[key] = value
        elif isinstance(old.get(key), str):
            status[key] = old[key]
    return status


def differs(instance: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether merging ``status`` into the stored one would change anything (keys the
    provider does not set are not compared: a merge patch leaves them alone anyway)."""
    old = instance.get("status") or {}
    return any(old.get(key) != value for key, value in status.items())


def is_ready(instance: Mapping[str, Any]) -> bool:
    condition = _ready_condition(instance.get("status") or {})
    return condition is not None and condition.get("status") == "True"
