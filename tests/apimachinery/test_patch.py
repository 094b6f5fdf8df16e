"""JSON patch and JSON merge patch: results, error codes, and inputs left untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    apply_json_patch,
    apply_merge_patch,
    copy_json,
    json_equal,
)


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "default",
            "resourceVersion": "41",
            "labels": {"app": "web"},
            "finalizers": ["a", "b"],
        },
        "data": {"mode": "fast", "level": "3"},
    }


def failure(call: Any, *args: Any) -> StatusError:
    with pytest.raises(StatusError) as caught:
        call(*args)
    return caught.value


# JSON patch.


def test_json_patch_applies_operations_in_order() -> None:
    patched = apply_json_patch(config_map(), [
        {"op": "add", "path": "/data/extra", "value": "yes"},
        {"op": "replace", "path": "/data/mode", "value": "slow"},
        {"op": "remove", "path": "/data/level"},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
        {"op": "move", "from": "/metadata/labels/app", "path": "/metadata/labels/tier"},
        {"op": "copy", "from": "/data/mode", "path": "/data/copied"},
        {"op": "add", "path": "/metadata/annotations", "value": {"note": "x~/y"}},
        {"op": "remove", "path": "/metadata/annotations/note"},
    ])
    assert patched["data"] == {"mode": "slow", "extra": "yes", "copied": "slow"}
    assert patched["metadata"]["finalizers"] == ["a", "b", "c"]
    assert patched["metadata"]["labels"] == {"tier": "web"}
    assert patched["metadata"]["annotations"] == {}


def test_json_patch_escaped_pointer_reaches_keys_with_slashes() -> None:
    obj = config_map()
    obj["metadata"]["annotations"] = {"example.com/owner": "me"}
    patched = apply_json_patch(
        obj, [{"op": "replace", "path": "/metadata/annotations/example.com~1owner", "value": "you"}]
    )
    assert patched["metadata"]["annotations"] == {"example.com/owner": "you"}


def test_json_patch_never_mutates_object_or_patch() -> None:
    obj = config_map()
    ops = [
        {"op": "add", "path": "/data/nested", "value": {"x": 1}},
        {"op": "replace", "path": "/data/nested/x", "value": 2},
        {"op": "add", "path": "/metadata/finalizers/0", "value": "z"},
    ]
    before_obj, before_ops = copy.deepcopy(obj), copy.deepcopy(ops)
    patched = apply_json_patch(obj, ops)
    assert patched["data"]["nested"] == {"x": 2}
    assert obj == before_obj
    assert ops == before_ops
    patched["metadata"]["labels"]["changed"] = "later"
    assert "changed" not in obj["metadata"]["labels"]


def test_json_patch_passing_test_operation_then_replace_like_kopf() -> None:
    patched = apply_json_patch(config_map(), [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "replace", "path": "/data/mode", "value": "slow"},
    ])
    assert patched["data"]["mode"] == "slow"


def test_json_patch_failed_test_is_422_invalid() -> None:
    error = failure(apply_json_patch, config_map(), [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "40"},
        {"op": "replace", "path": "/data/mode", "value": "slow"},
    ])
    assert error.code == 422
    assert error.reason == "Invalid"
    assert error.message.startswith(
        "the server rejected our request due to an error in our request"
    )
    assert "/metadata/resourceVersion" in error.message
    assert "test failed" in error.message


def test_json_patch_test_distinguishes_true_from_one() -> None:
    obj = config_map()
    obj["spec"] = {"enabled": True, "count": 1}
    assert apply_json_patch(obj, [{"op": "test", "path": "/spec/count", "value": 1.0}])
    error = failure(apply_json_patch, obj, [{"op": "test", "path": "/spec/count", "value": True}])
    assert error.code == 422
    error = failure(apply_json_patch, obj, [{"op": "test", "path": "/spec/enabled", "value": 1}])
    assert error.code == 422


def test_json_patch_test_of_missing_path_is_422() -> None:
    error = failure(apply_json_patch, config_map(), [
        {"op": "test", "path": "/metadata/uid", "value": "x"},
    ])
    assert error.code == 422
    assert "does not exist" in error.message


@pytest.mark.parametrize("operation", [
    {"op": "remove", "path": "/data/missing"},
    {"op": "replace", "path": "/data/missing", "value": "x"},
    {"op": "add", "path": "/spec/replicas", "value": 1},
    {"op": "add", "path": "/metadata/finalizers/7", "value": "x"},
    {"op": "add", "path": "data/mode", "value": "x"},
    {"op": "add", "path": "/data/x"},
    {"op": "frobnicate", "path": "/data/mode"},
    {"path": "/data/mode", "value": "x"},
    {"op": "add", "path": 3, "value": "x"},
    {"op": "move", "from": "/metadata", "path": "/metadata/labels/x"},
    {"op": "copy", "from": "/nowhere", "path": "/data/x"},
])
def test_json_patch_operation_that_cannot_apply_is_422(operation: dict[str, Any]) -> None:
    error = failure(apply_json_patch, config_map(), [operation])
    assert error.code == 422
    assert error.reason == "Invalid"
    assert "operation 0" in error.message


def test_json_patch_failure_names_the_failing_operation() -> None:
    error = failure(apply_json_patch, config_map(), [
        {"op": "add", "path": "/data/a", "value": "1"},
        {"op": "remove", "path": "/data/nope"},
    ])
    assert "operation 1 (remove '/data/nope')" in error.message


@pytest.mark.parametrize("document", [{"op": "add"}, "[]", 7, None])
def test_json_patch_that_is_not_an_array_is_400(document: Any) -> None:
    error = failure(apply_json_patch, config_map(), document)
    assert error.code == 400
    assert "JSON array of operations" in error.message


def test_json_patch_with_a_non_object_operation_is_400() -> None:
    error = failure(apply_json_patch, config_map(), [{"op": "test", "path": "", "value": 1}, "x"])
    assert error.code == 400
    assert "operation 1" in error.message


def test_json_patch_operation_limit() -> None:
    at_limit = [{"op": "add", "path": "/data/k", "value": "v"}] * MAX_JSON_PATCH_OPERATIONS
    assert apply_json_patch(config_map(), at_limit)["data"]["k"] == "v"
    error = failure(apply_json_patch, config_map(), [*at_limit, at_limit[0]])
    assert error.code == 413
    assert error.reason == "RequestEntityTooLarge"
    assert error.message == (
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    )


def test_json_patch_copy_amplification_is_refused() -> None:
    obj = config_map()
    obj["data"] = {"blob": "x" * 100_000}
    # Each copy doubles the document: left alone this would need gigabytes.
    doubling = [{"op": "copy", "from": "/data", "path": f"/data/c{i}"} for i in range(40)]
    error = failure(apply_json_patch, obj, doubling)
    assert error.code == 413


def test_json_patch_replacing_root_with_non_object_is_422() -> None:
    error = failure(apply_json_patch, config_map(), [{"op": "replace", "path": "", "value": [1]}])
    assert error.code == 422


def test_json_patch_replacing_root_with_object_is_allowed() -> None:
    patched = apply_json_patch(config_map(), [{"op": "replace", "path": "", "value": {"a": 1}}])
    assert patched == {"a": 1}


def test_json_patch_long_failure_detail_is_truncated() -> None:
    obj = config_map()
    obj["data"] = {f"key{i}": "v" * 50 for i in range(200)}
    error = failure(apply_json_patch, obj, [{"op": "add", "path": "/data/x/y", "value": 1}])
    assert error.code == 422
    assert len(error.message) < 800


# JSON merge patch.


def test_merge_patch_merges_maps_deletes_nulls_replaces_lists() -> None:
    patched = apply_merge_patch(config_map(), {
        "metadata": {"labels": {"app": None, "tier": "front"}, "finalizers": ["c"]},
        "data": {"mode": "slow"},
    })
    assert patched["metadata"]["labels"] == {"tier": "front"}
    assert patched["metadata"]["finalizers"] == ["c"]
    assert patched["data"] == {"mode": "slow", "level": "3"}
    assert patched["metadata"]["name"] == "settings"


def test_merge_patch_drops_nulls_inside_new_objects_but_keeps_them_in_lists() -> None:
    patched = apply_merge_patch(config_map(), {
        "spec": {"a": {"b": None, "c": 1}, "list": [None, {"x": None}]},
    })
    assert patched["spec"] == {"a": {"c": 1}, "list": [None, {"x": None}]}


def test_merge_patch_object_replaces_scalar_and_scalar_replaces_object() -> None:
    obj = config_map()
    obj["spec"] = {"a": "text", "b": {"deep": 1}}
    patched = apply_merge_patch(obj, {"spec": {"a": {"now": "map"}, "b": 5}})
    assert patched["spec"] == {"a": {"now": "map"}, "b": 5}


def test_merge_patch_null_for_missing_key_is_ignored() -> None:
    assert apply_merge_patch(config_map(), {"spec": None}) == config_map()


def test_merge_patch_never_mutates_object_or_patch() -> None:
    obj = config_map()
    patch = {"metadata": {"annotations": {"a": "1"}, "finalizers": ["x"]}, "data": {"mode": None}}
    before_obj, before_patch = copy.deepcopy(obj), copy.deepcopy(patch)
    patched = apply_merge_patch(obj, patch)
    assert obj == before_obj
    assert patch == before_patch
    patched["metadata"]["annotations"]["b"] = "2"
    patched["metadata"]["finalizers"].append("y")
    patched["metadata"]["labels"]["z"] = "z"
    assert patch == before_patch
    assert obj == before_obj


@pytest.mark.parametrize("document", [[{"op": "add"}], "text", 3, None, True])
def test_merge_patch_that_is_not_an_object_is_400(document: Any) -> None:
    error = failure(apply_merge_patch, config_map(), document)
    assert error.code == 400
    assert error.reason == "BadRequest"
    assert "must be a JSON object" in error.message


# Helpers.


def test_copy_json_is_deep() -> None:
    original = {"a": [{"b": 1}], "c": {"d": [1, 2]}}
    copied = copy_json(original)
    assert copied == original
    copied["a"][0]["b"] = 2
    copied["c"]["d"].append(3)
    assert original == {"a": [{"b": 1}], "c": {"d": [1, 2]}}


@pytest.mark.parametrize(("first", "second", "equal"), [
    (1, 1.0, True),
    (True, 1, False),
    (False, 0, False),
    ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ([1, 2], [2, 1], False),
    ("1", 1, False),
    ([1], {"0": 1}, False),
])
def test_json_equal(first: Any, second: Any, equal: bool) -> None:
    assert json_equal(first, second) is equal
