"""Core v1 and events.k8s.io/v1 Events: one stored form, two served forms."""

from __future__ import annotations

from kplane.registry import builtin
from kplane.registry.kinds.events import (
    EventsV1Strategy,
    to_core,
    to_events_v1,
)

V1_EVENT = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event",
    "metadata": {"name": "e1", "namespace": "default"},
    "eventTime": "2026-11-28T16:00:00.000000Z", "reportingController": "ctl",
    "reportingInstance": "ctl-1", "action": "Reconcile", "reason": "Started", "type": "Normal",
    "note": "hello", "regarding": {"kind": "ConfigMap", "name": "cm1"},
    "deprecatedSource": {"component": "old"}, "deprecatedCount": 2,
    "deprecatedFirstTimestamp": "2026-11-28T15:00:00Z",
    "deprecatedLastTimestamp": "2026-11-28T15:30:00Z",
}


def test_events_v1_is_stored_in_the_core_form_and_read_back_unchanged() -> None:
    core = to_core(V1_EVENT)
    assert core["apiVersion"] == "v1"
    assert core["involvedObject"] == {"kind": "ConfigMap", "name": "cm1"}
    assert core["message"] == "hello"
    assert core["reportingComponent"] == "ctl"
    assert core["source"] == {"component": "old"}
    assert (core["count"], core["firstTimestamp"], core["lastTimestamp"]) == (
        2, "2026-11-28T15:00:00Z", "2026-11-28T15:30:00Z")
    assert not {"note", "regarding", "deprecatedCount"} & set(core)
    assert to_events_v1(core) == V1_EVENT


def test_the_strategy_converts_both_ways_and_renames_field_selectors() -> None:
    strategy = EventsV1Strategy(builtin.EVENTS_V1)
    assert strategy.storage_form(V1_EVENT)["apiVersion"] == "v1"
    stored = dict(to_core(V1_EVENT))
    assert strategy.reading_form(stored) == V1_EVENT
    assert strategy.field_selector_alias("regarding.name") == "involvedObject.name"
    assert strategy.field_selector_alias("reportingController") == "reportingComponent"
    assert strategy.field_selector_alias("reason") == "reason"
    # Both Event APIs share one place in storage.
    assert (builtin.EVENTS_V1.stored_group, builtin.EVENTS_V1.stored_resource) == (
        builtin.EVENTS.stored_group, builtin.EVENTS.stored_resource)
