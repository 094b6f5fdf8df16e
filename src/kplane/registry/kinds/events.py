"""One Event, two APIs: core ``v1`` Events and ``events.k8s.io/v1`` Events.

Upstream stores Events once and serves them through both groups, so an event a controller
records through one API shows in ``kubectl get events`` through the other. kplane does the
same: Events are stored in the core form, and the ``events.k8s.io/v1`` strategy converts
on the way in and out. The field names differ between the two (``involvedObject`` is
``regarding``, ``message`` is ``note``, the deprecated timestamps and count move, ...);
``_RENAMES`` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from kplane.registry.kinds.core import EventStrategy

# core v1 field -> events.k8s.io/v1 field
_RENAMES: tuple[tuple[str, str], ...] = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)
_TO_CORE = {new: old for old, new in _RENAMES}
_TO_EVENTS_V1 = dict(_RENAMES)
# Field selectors of events.k8s.io/v1 in terms of the stored (core) fields.
FIELD_SELECTOR_ALIASES = {
    **{f"regarding.{f}": f"involvedObject.{f}" for f in
       ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reportingController": "reportingComponent",
}
CORE_API_VERSION = "v1"
EVENTS_API_VERSION = "events.k8s.io/v1"


def to_core(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event in the core v1 form."""
    out = {_TO_CORE.get(key, key): value for key, value in obj.items()}
    out["apiVersion"] = CORE_API_VERSION
    return out


def to_events_v1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A core v1 Event in the events.k8s.io/v1 form."""
    out = {_TO_EVENTS_V1.get(key, key): value for key, value in obj.items()}
    out["apiVersion"] = EVENTS_API_VERSION
    return out


class EventsV1Strategy(EventStrategy):
    """events.k8s.io/v1 Events, stored as core v1 Events."""

    def storage_form(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        return to_core(obj)

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        return to_events_v1(obj)

    def read_bytes(self, raw: bytes) -> bytes:
        return orjson.dumps(to_events_v1(orjson.loads(raw)))

    def field_selector_alias(self, field: str) -> str:
        return FIELD_SELECTOR_ALIASES.get(field, field)
