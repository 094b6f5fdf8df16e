"""Server-side apply and the managedFields bookkeeping of every other write."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson
import pytest

from kplane.apimachinery.apply import (
    LAST_APPLIED_ANNOTATION,
    manager_from_user_agent,
    server_side_apply,
    track_update,
)
from kplane.apimachinery.builtin_schemas import GroupVersionKind, type_node
from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.fieldpath import field_paths
from kplane.apimachinery.typeinfo import TypeNode


def builtin(group: str, version: str, kind: str) -> TypeNode:
    node = type_node(GroupVersionKind(group, version, kind))
    assert node is not None
    return node


CONFIGMAP = builtin("", "v1", "ConfigMap")
T0 = "2025-01-01T00:00:00Z"
T1 = "2025-01-01T00:01:00Z"
T2 = "2025-01-01T00:02:00Z"
T3 = "2025-01-01T00:03:00Z"


def cm(data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "x", **meta}}
    if data is not None:
        obj["data"] = data
    return obj


def apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str = "m", *,
          force: bool = False, now: str = T1, node: TypeNode = CONFIGMAP,
          api_version: str = "v1") -> dict[str, Any]:
    return server_side_apply(live, copy.deepcopy(applied), node=node, manager=manager,
                             api_version=api_version, force=force, now=now)


def update(old: dict[str, Any] | None, new: dict[str, Any], manager: str = "u", *,
           now: str = T1, node: TypeNode = CONFIGMAP, **kw: Any) -> dict[str, Any]:
    return track_update(old, copy.deepcopy(new), node=node, manager=manager,
                        api_version="v1", now=now, **kw)


def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    managed: list[dict[str, Any]] = obj["metadata"].get("managedFields", [])
    return managed


def fields(obj: dict[str, Any]) -> dict[str, str]:
    """manager -> FieldsV1 JSON, for compact assertions."""
    return {e["manager"]: orjson.dumps(e["fieldsV1"]).decode() for e in entries(obj)}


def conflict_of(call: Any) -> dict[str, Any]:
    with pytest.raises(StatusError) as info:
        call()
    status: dict[str, Any] = info.value.to_status()
    return status


# Apply.


def test_apply_creates_the_object_with_an_apply_entry() -> None:
    out = apply(None, cm({"a": "b"}, labels={"app": "web"}))
    assert out == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "x", "labels": {"app": "web"},
            "managedFields": [{
                "manager": "m", "operation": "Apply", "apiVersion": "v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}},
            }],
        },
        "data": {"a": "b"},
    }


def test_reapplying_the_same_configuration_changes_nothing_not_even_the_time() -> None:
    first = apply(None, cm({"a": "b"}, labels={"app": "web"}))
    again = apply(first, cm({"a": "b"}, labels={"app": "web"}), now=T2)
    assert again == first
    assert entries(again)[0]["time"] == T1


def test_applying_a_changed_value_updates_the_time() -> None:
    first = apply(None, cm({"a": "b"}))
    second = apply(first, cm({"a": "c"}), now=T2)
    assert second["data"] == {"a": "c"}
    assert entries(second)[0]["time"] == T2


def test_fields_no_longer_applied_are_removed() -> None:
    first = apply(None, cm({"a": "1", "b": "2"}, labels={"x": "1", "y": "2"}))
    second = apply(first, cm({"a": "1"}, labels={"y": "2"}), now=T2)
    assert second["data"] == {"a": "1"}
    assert second["metadata"]["labels"] == {"y": "2"}
    third = apply(second, cm({"a": "1"}), now=T3)
    assert "labels" not in third["metadata"]
    assert fields(third) == {"m": '{"f:data":{"f:a":{}}}'}


def test_two_managers_share_a_field_and_it_survives_one_of_them_leaving() -> None:
    first = apply(None, cm({"a": "1", "b": "2"}), "one")
    shared = apply(first, cm({"a": "1"}), "two", now=T2)
    # Same value: no conflict, both own .data.a; the object did not change, so the new
    # entry has no time (as upstream).
    assert fields(shared) == {"one": '{"f:data":{"f:a":{},"f:b":{}}}',
                              "two": '{"f:data":{"f:a":{}}}'}
    by_manager = {e["manager"]: e for e in entries(shared)}
    assert "time" not in by_manager["two"]
    # Without a time it sorts first among appliers.
    assert [e["manager"] for e in entries(shared)] == ["two", "one"]
    left = apply(shared, cm({"b": "2"}), "one", now=T3)
    assert left["data"] == {"a": "1", "b": "2"}
    assert fields(left) == {"one": '{"f:data":{"f:b":{}}}', "two": '{"f:data":{"f:a":{}}}'}


def test_conflict_with_an_updater_is_a_409_with_one_cause_per_field() -> None:
    live = update(None, cm({"key": "v", "other": "o"}), "kubectl-client-side-apply", now=T0)
    status = conflict_of(lambda: apply(live, cm({"key": "changed"}), "kubectl"))
    assert status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                   "using v1: .data.key",
        "reason": "Conflict", "code": 409,
        "details": {"causes": [{
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using v1',
            "field": ".data.key",
        }]},
    }


def test_several_conflicts_are_grouped_by_manager() -> None:
    live = apply(None, cm({"a": "1"}), "appl")
    live = update(live, cm({"a": "1", "b": "2", "c": "3"}), "upd", now=T2)
    status = conflict_of(lambda: apply(live, cm({"a": "x", "b": "y", "c": "z"}), "new"))
    assert status["message"] == (
        'Apply failed with 3 conflicts: conflicts with "appl":\n- .data.a\n'
        'conflicts with "upd" using v1:\n- .data.b\n- .data.c'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "appl"', "field": ".data.a"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "upd" using v1',
         "field": ".data.b"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "upd" using v1',
         "field": ".data.c"},
    ]


def test_force_takes_ownership_from_the_others() -> None:
    live = update(None, cm({"a": "1"}), "creator", now=T0)
    out = apply(live, cm({"a": "2"}), "m", force=True, now=T2)
    assert out["data"] == {"a": "2"}
    # The creator keeps the .data map it created, not the key.
    assert fields(out) == {"m": '{"f:data":{"f:a":{}}}', "creator": '{"f:data":{}}'}
    again = apply(out, cm({"b": "3"}), "other", force=True, now=T3)
    assert again["data"] == {"a": "2", "b": "3"}


def test_an_entry_left_empty_disappears() -> None:
    live = apply(None, cm({"a": "1"}), "first")
    out = apply(live, cm({"a": "2"}), "second", force=True, now=T2)
    assert fields(out) == {"second": '{"f:data":{"f:a":{}}}'}


def test_update_after_apply_moves_ownership_and_later_apply_conflicts() -> None:
    applied = apply(None, cm({"a": "1", "b": "1"}))
    edited = update(applied, {**applied, "data": {"a": "edited", "b": "1"}}, "kubectl-edit",
                    now=T2)
    assert edited["data"] == {"a": "edited", "b": "1"}
    assert fields(edited) == {"m": '{"f:data":{"f:b":{}}}',
                              "kubectl-edit": '{"f:data":{"f:a":{}}}'}
    status = conflict_of(lambda: apply(edited, cm({"a": "1", "b": "1"}), now=T3))
    assert status["details"]["causes"][0]["field"] == ".data.a"
    assert status["details"]["causes"][0]["message"] == 'conflict with "kubectl-edit" using v1'


def test_a_field_the_applier_lost_to_an_updater_stays_when_no_longer_applied() -> None:
    applied = apply(None, cm({"a": "1", "b": "1"}))
    edited = update(applied, {**applied, "data": {"a": "2", "b": "1"}}, "editor", now=T2)
    out = apply(edited, cm({"b": "1"}), now=T3)
    assert out["data"] == {"a": "2", "b": "1"}
    assert fields(out) == {"m": '{"f:data":{"f:b":{}}}', "editor": '{"f:data":{"f:a":{}}}'}


def test_apply_over_an_untracked_object_meets_before_first_apply() -> None:
    live = cm({"a": "1"}, namespace="d", uid="u")
    status = conflict_of(lambda: apply(live, cm({"a": "2"})))
    assert status["details"]["causes"] == [{
        "reason": "FieldManagerConflict",
        "message": 'conflict with "before-first-apply" using v1', "field": ".data.a",
    }]
    same = apply(live, cm({"a": "1"}))
    assert fields(same) == {"m": '{"f:data":{"f:a":{}}}',
                            "before-first-apply": '{"f:data":{".":{},"f:a":{}}}'}


def test_kubectl_takes_over_fields_recorded_by_client_side_apply() -> None:
    last = orjson.dumps(cm({"a": "1"})).decode()
    live = update(None, cm({"a": "1"}, annotations={LAST_APPLIED_ANNOTATION: last}),
                  "kubectl-client-side-apply", now=T0)
    out = apply(live, cm({"a": "2"}), "kubectl", now=T2)
    assert out["data"] == {"a": "2"}
    assert fields(out)["kubectl"] == '{"f:data":{"f:a":{}}}'
    # The annotation now records what was applied (sorted keys, trailing newline).
    assert out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] == (
        '{"apiVersion":"v1","data":{"a":"2"},"kind":"ConfigMap","metadata":{"name":"x"}}\n'
    )
    # Any other manager still conflicts.
    status = conflict_of(lambda: apply(live, cm({"a": "2"}), "other"))
    assert status["code"] == 409


def test_apply_rejects_other_kinds_managed_fields_and_unknown_fields() -> None:
    with pytest.raises(StatusError) as wrong:
        apply(None, {**cm({"a": "1"}), "apiVersion": "v2"})
    assert (wrong.value.code, wrong.value.message) == (
        400, "invalid object type: /v2, Kind=ConfigMap"
    )
    with pytest.raises(StatusError) as unknown:
        apply(None, {**cm(namespace="d"), "spec": {"a": 1}})
    assert (unknown.value.code, unknown.value.reason, unknown.value.message) == (
        400, "BadRequest",
        "failed to create typed patch object (d/x; /v1, Kind=ConfigMap): "
        ".spec: field not declared in schema",
    )
    with pytest.raises(StatusError) as managed:
        apply(None, cm(managedFields=[]))
    assert managed.value.code == 400
    assert "managed fields must be nil but was []" in managed.value.message


# Lists.


def test_list_map_items_are_owned_per_key_and_merged_in_order() -> None:
    pod = builtin("", "v1", "Pod")

    def pod_with(*containers: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": list(containers)}}

    live = apply(None, pod_with({"name": "a", "image": "a:1"}), "one", node=pod)
    both = apply(live, pod_with({"name": "b", "image": "b:1"}), "two", node=pod, now=T2)
    assert both["spec"]["containers"] == [{"name": "a", "image": "a:1"},
                                          {"name": "b", "image": "b:1"}]
    status = conflict_of(
        lambda: apply(both, pod_with({"name": "a", "image": "a:2"}), "two", node=pod)
    )
    assert status["details"]["causes"][0]["field"] == '.spec.containers[name="a"].image'
    gone = apply(both, pod_with(), "one", node=pod, now=T3)
    assert gone["spec"]["containers"] == [{"name": "b", "image": "b:1"}]


def test_atomic_lists_conflict_as_a_whole() -> None:
    binding = builtin("rbac.authorization.k8s.io", "v1", "RoleBinding")

    def rb(*subjects: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": s} for s in subjects],
        }

    kw: dict[str, Any] = {"node": binding, "api_version": "rbac.authorization.k8s.io/v1"}
    live = apply(None, rb("alice"), "one", **kw)
    assert fields(live)["one"] == '{"f:roleRef":{},"f:subjects":{}}'
    status = conflict_of(lambda: apply(live, rb("bob"), "two", **kw))
    # roleRef (an atomic struct) keeps its value, so only the subjects conflict.
    assert status["details"]["causes"] == [{
        "reason": "FieldManagerConflict", "message": 'conflict with "one"', "field": ".subjects",
    }]
    forced = apply(live, rb("bob"), "two", force=True, now=T2, **kw)
    assert [s["name"] for s in forced["subjects"]] == ["bob"]


def test_finalizers_are_a_set_shared_between_managers() -> None:
    live = apply(None, cm(finalizers=["a.io/one"]), "one")
    both = apply(live, cm(finalizers=["b.io/two"]), "two", now=T2)
    assert both["metadata"]["finalizers"] == ["a.io/one", "b.io/two"]
    assert fields(both) == {
        "one": '{"f:metadata":{"f:finalizers":{"v:\\"a.io/one\\"":{}}}}',
        "two": '{"f:metadata":{"f:finalizers":{"v:\\"b.io/two\\"":{}}}}',
    }
    released = apply(both, cm(), "one", now=T3)
    assert released["metadata"]["finalizers"] == ["b.io/two"]


WIDGET = TypeNode({
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "routes": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["host", "port"],
                    "items": {"type": "object", "properties": {
                        "host": {"type": "string"}, "port": {"type": "integer"},
                        "weight": {"type": "integer"},
                    }},
                },
                "args": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
    },
})


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": spec}


def test_custom_resource_list_map_and_default_atomic_list() -> None:
    kw: dict[str, Any] = {"node": WIDGET, "api_version": "ex.com/v1"}
    live = apply(None, widget(routes=[{"host": "a", "port": 1, "weight": 5}], args=["x"]),
                 "one", **kw)
    assert fields(live)["one"] == (
        '{"f:spec":{"f:args":{},"f:routes":{"k:{\\"host\\":\\"a\\",\\"port\\":1}":'
        '{".":{},"f:host":{},"f:port":{},"f:weight":{}}}}}'
    )
    two = apply(live, widget(routes=[{"host": "b", "port": 2}], extra={"k": {"v": 1}}),
                "two", now=T2, **kw)
    assert two["spec"] == {
        "routes": [{"host": "a", "port": 1, "weight": 5}, {"host": "b", "port": 2}],
        "args": ["x"], "extra": {"k": {"v": 1}},
    }
    # CRD lists without a list type are atomic: a different value conflicts whole.
    status = conflict_of(lambda: apply(two, widget(args=["y"]), "two", **kw))
    assert [c["field"] for c in status["details"]["causes"]] == [".spec.args"]
    # Schemaless objects are granular: another manager adds a key beside it.
    three = apply(two, widget(extra={"k2": 1}), "three", now=T3, **kw)
    assert three["spec"]["extra"] == {"k": {"v": 1}, "k2": 1}


def test_status_is_not_owned_when_reset() -> None:
    node = builtin("apps", "v1", "Deployment")
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": 2}, "status": {"replicas": 5}}
    out = server_side_apply(None, applied, node=node, manager="m", api_version="apps/v1",
                            force=False, now=T1, reset=field_paths("status"))
    assert fields(out) == {"m": '{"f:spec":{"f:replicas":{}}}'}


# Update tracking.


def test_create_records_every_field_with_dots_for_new_maps() -> None:
    out = update(None, cm({"a": "b"}, namespace="default", uid="u",
                          creationTimestamp=T0, labels={"app": "x"}), "kubectl-create")
    assert entries(out) == [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {".": {}, "f:a": {}},
                     "f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
    }]


def test_updates_by_the_same_manager_merge_into_one_entry() -> None:
    created = update(None, cm({"a": "1"}), "u", now=T0)
    later = update(created, {**created, "data": {"a": "1", "b": "2"}}, "u", now=T2)
    assert entries(later) == [{
        "manager": "u", "operation": "Update", "apiVersion": "v1", "time": T2,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:a": {}, "f:b": {}}},
    }]
    unchanged = update(later, later, "u", now=T3)
    assert entries(unchanged)[0]["time"] == T2


def test_update_removes_changed_and_removed_fields_from_other_managers() -> None:
    created = update(None, cm({"a": "1", "b": "2"}), "creator", now=T0)
    out = update(created, {**created, "data": {"a": "changed"}}, "editor", now=T2)
    assert fields(out) == {"creator": '{"f:data":{}}', "editor": '{"f:data":{"f:a":{}}}'}
    assert [e["manager"] for e in entries(out)] == ["creator", "editor"]


def test_entries_are_ordered_apply_first_then_by_time() -> None:
    live = update(None, cm({"a": "1"}), "zeta", now=T0)
    live = update(live, {**live, "data": {"a": "1", "b": "2"}}, "alpha", now=T2)
    live = apply(live, cm({"c": "3"}), "applier", now=T3)
    assert [(e["manager"], e["operation"]) for e in entries(live)] == [
        ("applier", "Apply"), ("zeta", "Update"), ("alpha", "Update"),
    ]


def test_subresource_updates_record_it_and_ignore_client_managed_fields() -> None:
    created = update(None, cm({"a": "1"}), "u", now=T0)
    sent = {**created, "data": {"a": "2"},
            "metadata": {**created["metadata"], "managedFields": [{}]}}
    out = update(created, sent, "ctl", now=T2, subresource="status")
    assert [(e["manager"], e.get("subresource")) for e in entries(out)] == [
        ("u", None), ("ctl", "status"),
    ]


def test_client_managed_fields_are_honoured_and_can_be_reset() -> None:
    created = update(None, cm({"a": "1"}), "u", now=T0)
    custom = [{"manager": "someone", "operation": "Apply", "apiVersion": "v1", "time": T0,
               "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]
    adopted = update(created, {**created, "metadata": {**created["metadata"],
                                                       "managedFields": custom}})
    assert entries(adopted) == custom
    resets: list[list[dict[str, Any]]] = [[{}], []]
    for reset in resets:
        cleared = update(created, {**created, "data": {"a": "2"},
                                   "metadata": {**created["metadata"], "managedFields": reset}})
        # Reset, then an update of an object without managedFields is not tracked.
        assert "managedFields" not in cleared["metadata"]
        assert cleared["data"] == {"a": "2"}
    invalid = [{"manager": "x", "operation": "Bogus", "apiVersion": "v1",
                "fieldsType": "FieldsV1", "fieldsV1": {}}]
    kept = update(created, {**created, "metadata": {**created["metadata"],
                                                    "managedFields": invalid}})
    assert entries(kept) == entries(created)


def test_existing_objects_without_managed_fields_are_not_tracked() -> None:
    old = cm({"a": "1"}, uid="u")
    out = update(old, cm({"a": "2"}, uid="u"))
    assert "managedFields" not in out["metadata"]


def test_more_than_ten_updaters_fold_into_ancient_changes() -> None:
    live = update(None, cm({"k0": "v"}), "m0", now="2025-01-01T00:00:00Z")
    for i in range(1, 12):
        data = {**live["data"], f"k{i}": "v"}
        live = update(live, {**live, "data": data}, f"m{i}", now=f"2025-01-01T00:{i:02d}:00Z")
    managers = [e["manager"] for e in entries(live)]
    assert len(managers) == 10
    assert managers[0] == "ancient-changes"
    assert managers[-1] == "m11"
    assert "m0" not in managers and "m1" not in managers and "m2" not in managers
    bucket = entries(live)[0]
    assert bucket["fieldsV1"] == {"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}}
    assert bucket["time"] == "2025-01-01T00:02:00Z"


def test_manager_from_user_agent() -> None:
    assert manager_from_user_agent(
        "kubectl-client-side-apply/v1.37.1 (linux/amd64) kubernetes/abc"
    ) == "kubectl-client-side-apply"
    assert manager_from_user_agent("Python-urllib/3.11") == "Python-urllib"
    assert manager_from_user_agent("a\tb/1") == "ab"
    assert manager_from_user_agent("x" * 300) == "x" * 128


def test_track_update_is_fast_for_a_small_configmap() -> None:
    base = cm({f"k{i}": f"v{i}" for i in range(10)}, namespace="d", uid="u",
              resourceVersion="1", labels={"app": "a"})
    live = update(None, base, "creator", now=T0)
    rounds = 2000
    start = time.perf_counter()
    for i in range(rounds):
        new = {**live, "metadata": dict(live["metadata"]),
               "data": {**live["data"], "k3": str(i)}}
        track_update(live, new, node=CONFIGMAP, manager="editor", api_version="v1", now=T1)
    per_call = (time.perf_counter() - start) / rounds
    # ~40 us on an idle machine; the bound leaves room for a loaded CI runner.
    assert per_call < 500e-6


def test_merged_items_keep_live_order_and_follow_applied_order_for_shared_ones() -> None:
    live = apply(None, cm(finalizers=["a", "b", "c"]), "one")
    out = apply(live, cm(finalizers=["c", "x", "a"]), "two", now=T2)
    # b (only live) stays first; shared c and a follow the applied order, x between them.
    assert out["metadata"]["finalizers"] == ["b", "c", "x", "a"]
