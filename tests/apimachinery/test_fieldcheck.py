from __future__ import annotations

import copy
from typing import Any

import pytest

from kplane.apimachinery.builtin_schemas import GroupVersionKind, type_node
from kplane.apimachinery.fieldcheck import (
    TYPE_INVALID,
    check_fields,
    strict_error,
    type_error_message,
    warning_text,
)
from kplane.apimachinery.typeinfo import TypeNode


def builtin(group: str, version: str, kind: str) -> TypeNode:
    node = type_node(GroupVersionKind(group, version, kind))
    assert node is not None
    return node


CONFIG_MAP = builtin("", "v1", "ConfigMap")
SECRET = builtin("", "v1", "Secret")
NAMESPACE = builtin("", "v1", "Namespace")
ROLE = builtin("rbac.authorization.k8s.io", "v1", "Role")
ROLE_BINDING = builtin("rbac.authorization.k8s.io", "v1", "RoleBinding")
LEASE = builtin("coordination.k8s.io", "v1", "Lease")


def type_errors(obj: Any, node: TypeNode) -> list[tuple[str, str]]:
    result = check_fields(obj, node, prune=False)
    assert all(cause.reason == TYPE_INVALID for cause in result.type_errors)
    return [(cause.field, cause.message) for cause in result.type_errors]


def unknown(obj: Any, node: TypeNode) -> list[str]:
    return check_fields(obj, node, prune=False).unknown


def test_valid_config_map_has_no_findings() -> None:
    obj = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "cfg", "namespace": "default", "labels": {"a": "b"},
            "annotations": {"x": "y"}, "resourceVersion": "7", "generation": 1,
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {"f:a": {}}}}],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n", "uid": "u"}],
        },
        "data": {f"key{i}": f"value{i}" for i in range(10)},
        "binaryData": {"bin": "AAEC"},
        "immutable": False,
    }
    result = check_fields(obj, CONFIG_MAP, prune=False)
    assert result.unknown == []
    assert result.type_errors == []
    assert result.ok


def test_config_map_unknown_fields_and_data_map_keys() -> None:
    obj = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "nmae": "typo"},
        "data": {"anything": "goes", "spec": "is a key here"},
        "spec": {"foo": 1},
        "extra": None,
    }
    assert unknown(obj, CONFIG_MAP) == [".metadata.nmae", ".spec", ".extra"]


def test_config_map_wrong_types() -> None:
    obj = {"data": {"a": 1, "b": True, "c": None, "d": {"x": "y"}}, "immutable": "yes"}
    assert type_errors(obj, CONFIG_MAP) == [
        ("data.a", 'Invalid value: "integer": data.a in body must be of type string: "integer"'),
        ("data.b", 'Invalid value: "boolean": data.b in body must be of type string: "boolean"'),
        ("data.d", 'Invalid value: "object": data.d in body must be of type string: "object"'),
        ("immutable",
         'Invalid value: "string": immutable in body must be of type boolean: "string"'),
    ]
    assert type_errors({"data": ["a"]}, CONFIG_MAP) == [
        ("data", 'Invalid value: "array": data in body must be of type object: "array"'),
    ]
    assert type_errors({"metadata": {"labels": {"a": 5}, "name": 3}}, CONFIG_MAP) == [
        ("metadata.labels.a",
         'Invalid value: "integer": metadata.labels.a in body must be of type string: "integer"'),
        ("metadata.name",
         'Invalid value: "integer": metadata.name in body must be of type string: "integer"'),
    ]


def test_root_must_be_an_object_and_type_meta_strings() -> None:
    assert type_errors([], CONFIG_MAP) == [
        ("", 'Invalid value: "array": body in body must be of type object: "array"'),
    ]
    assert type_errors({"apiVersion": 1, "kind": ["ConfigMap"]}, CONFIG_MAP) == [
        ("apiVersion",
         'Invalid value: "integer": apiVersion in body must be of type string: "integer"'),
        ("kind", 'Invalid value: "array": kind in body must be of type string: "array"'),
    ]
    assert check_fields(None, CONFIG_MAP, prune=False).ok


def test_secret_data_must_be_base64() -> None:
    good = {"data": {"a": "YWJj", "b": "", "c": "YWI=", "wrapped": "YW\nJj"},
            "stringData": {"plain": "not base64 at all!"}, "type": "Opaque"}
    assert type_errors(good, SECRET) == []
    bad = {"data": {"bang": "YW!j", "short": "YWI", "tail": "YWI==", "num": 5}}
    errors = type_errors(bad, SECRET)
    assert [field for field, _ in errors] == ["data.bang", "data.short", "data.tail", "data.num"]
    assert errors[0][1] == (
        'Invalid value: "string": data.bang in body must be of type byte '
        "(base64-encoded data): illegal base64 data at input byte 2"
    )
    assert errors[1][1].endswith("illegal base64 data at input byte 3")
    # The secret value itself is never echoed back.
    assert all("YW" not in message for _, message in errors)


def test_namespace_spec_and_status() -> None:
    obj = {"spec": {"finalizers": ["kubernetes"], "foo": 1}, "status": {"phase": "Active"}}
    result = check_fields(obj, NAMESPACE, prune=False)
    assert result.unknown == [".spec.foo"]
    assert result.type_errors == []
    assert type_errors({"spec": {"finalizers": "kubernetes"}}, NAMESPACE) == [
        ("spec.finalizers", 'Invalid value: "string": spec.finalizers in body must be of type '
                            'array: "string"'),
    ]


def test_role_rules_list_paths() -> None:
    obj = {
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "verbs": "list", "resource": ["deployments"]},
            None,
        ],
    }
    result = check_fields(obj, ROLE, prune=False)
    assert result.unknown == [".rules[1].resource"]
    assert [(c.field, c.message) for c in result.type_errors] == [
        ("rules[1].verbs",
         'Invalid value: "string": rules[1].verbs in body must be of type array: "string"'),
    ]
    assert type_errors({"rules": [{"verbs": [1]}]}, ROLE) == [
        ("rules[0].verbs[0]",
         'Invalid value: "integer": rules[0].verbs[0] in body must be of type string: '
         '"integer"'),
    ]


def test_role_binding() -> None:
    obj = {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "sa", "namespace": "ns", "extra": True},
        ],
    }
    assert unknown(obj, ROLE_BINDING) == [".subjects[1].extra"]
    assert type_errors({"roleRef": "admin"}, ROLE_BINDING) == [
        ("roleRef", 'Invalid value: "string": roleRef in body must be of type object: "string"'),
    ]


@pytest.mark.parametrize(
    ("spec", "errors"),
    [
        ({"leaseDurationSeconds": 30, "holderIdentity": "me"}, []),
        ({"leaseDurationSeconds": 30.0}, []),
        ({"leaseDurationSeconds": "30"}, [("spec.leaseDurationSeconds", "integer", "string")]),
        ({"leaseDurationSeconds": 1.5}, [("spec.leaseDurationSeconds", "integer", "number")]),
        ({"leaseDurationSeconds": True}, [("spec.leaseDurationSeconds", "integer", "boolean")]),
        ({"renewTime": "2024-05-01T10:00:00.123456Z"}, []),
        ({"renewTime": "2024-05-01T10:00:00+02:00"}, []),
        ({"renewTime": 1714557600}, [("spec.renewTime", "string", "integer")]),
        ({"leaseTransitions": None, "acquireTime": None}, []),
    ],
)
def test_lease_spec_types(spec: dict[str, Any], errors: list[tuple[str, str, str]]) -> None:
    expected = [
        (path, f'Invalid value: "{found}": {path} in body must be of type {want}: "{found}"')
        for path, want, found in errors
    ]
    assert type_errors({"spec": spec}, LEASE) == expected


def test_lease_times_must_be_date_times() -> None:
    assert type_errors({"spec": {"renewTime": "yesterday"}}, LEASE) == [
        ("spec.renewTime",
         'Invalid value: "yesterday": spec.renewTime in body must be of type date-time: '
         '"yesterday"'),
    ]


def test_builtin_prune_removes_unknown_fields_in_place() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1},
           "data": {"k": "v"}, "spec": {}}
    result = check_fields(obj, CONFIG_MAP, prune=True)
    assert result.unknown == [".metadata.bogus", ".spec"]
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                   "data": {"k": "v"}}


CRD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "ratio": {"type": "number"},
                "enabled": {"type": "boolean"},
                "size": {"x-kubernetes-int-or-string": True},
                "cpu": {
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True,
                },
                "tags": {"type": "array", "items": {"type": "string"}},
                "ports": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}}},
                },
                "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "params": {"type": "object", "additionalProperties": {"type": "number"}},
                "loose": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "bare": {"type": "object"},
                "choice": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                },
                "embedded": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {
                        "x": {"type": "string"},
                    }}},
                },
                "blob": {"type": "string", "format": "byte"},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


def crd_node() -> TypeNode:
    return TypeNode(CRD_SCHEMA)


def test_crd_valid_object() -> None:
    obj = {
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default", "labels": {"a": "b"}},
        "spec": {
            "replicas": 3, "ratio": 1, "enabled": True, "size": "10Gi", "cpu": 2,
            "tags": ["a", "b"], "ports": [{"port": 80}],
            "template": {"anything": {"goes": [1, 2]}},
            "params": {"alpha": 0.5, "beta": 2},
            "loose": {"a": "x", "free": {"form": True}},
            "choice": {"a": "x"},
            "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"x": "y"}},
            "blob": "aGVsbG8=",
        },
        "status": {"ready": None},
    }
    result = check_fields(obj, crd_node(), prune=False)
    assert result.unknown == []
    assert result.type_errors == []


def test_crd_unknown_fields_and_pruning() -> None:
    obj = {
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "creationTimestampp": "typo"},
        "spec": {
            "replicas": 1, "color": "red",
            "ports": [{"port": 80}, {"port": 81, "protocol": "TCP"}],
            "template": {"kept": True},
            "loose": {"a": "x", "kept": 1},
            "bare": {"gone": 1, "also": 2},
            "choice": {"a": "x", "c": "dropped"},
            "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1},
                         "spec": {"x": "y", "z": 1}},
        },
        "toplevel": 1,
    }
    pruned = copy.deepcopy(obj)
    result = check_fields(pruned, crd_node(), prune=True)
    assert result.unknown == [
        ".metadata.creationTimestampp",
        ".spec.color",
        ".spec.ports[1].protocol",
        ".spec.bare.gone",
        ".spec.bare.also",
        ".spec.choice.c",
        ".spec.embedded.metadata.x",
        ".spec.embedded.spec.z",
        ".toplevel",
    ]
    assert pruned == {
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {
            "replicas": 1,
            "ports": [{"port": 80}, {"port": 81}],
            "template": {"kept": True},
            "loose": {"a": "x", "kept": 1},
            "bare": {},
            "choice": {"a": "x"},
            "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"x": "y"}},
        },
    }
    # Without pruning the object is left alone.
    untouched = copy.deepcopy(obj)
    check_fields(untouched, crd_node(), prune=False)
    assert untouched == obj


def test_crd_type_errors() -> None:
    obj = {"spec": {
        "replicas": "3", "ratio": "x", "enabled": 1, "size": 1.5, "cpu": True,
        "tags": "a", "params": {"alpha": "high"}, "loose": {"a": 1},
        "blob": "not base64", "ports": [{"port": "80"}],
    }}
    assert [(field, message.split(" in body must be of type ")[1])
            for field, message in type_errors(obj, crd_node())] == [
        ("spec.replicas", 'integer: "string"'),
        ("spec.ratio", 'number: "string"'),
        ("spec.enabled", 'boolean: "integer"'),
        ("spec.size", 'integer or string: "number"'),
        ("spec.cpu", 'integer or string: "boolean"'),
        ("spec.tags", 'array: "string"'),
        ("spec.params.alpha", 'number: "string"'),
        ("spec.loose.a", 'string: "integer"'),
        ("spec.blob", "byte (base64-encoded data): illegal base64 data at input byte 3"),
        ("spec.ports[0].port", 'integer: "string"'),
    ]


def test_crd_schema_without_metadata_still_checks_metadata_as_object_meta() -> None:
    node = TypeNode({"type": "object", "properties": {"spec": {"type": "object"}}})
    assert unknown({"metadata": {"name": "a", "bad": 1}, "apiVersion": "x/v1"}, node) == [
        ".metadata.bad",
    ]
    assert type_errors({"metadata": "x"}, node) == [
        ("metadata", 'Invalid value: "string": metadata in body must be of type object: "string"'),
    ]


def test_preserve_unknown_fields_at_the_root() -> None:
    node = TypeNode({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    obj = {"spec": {"anything": 1}, "metadata": {"name": "a", "junk": 1}}
    result = check_fields(obj, node, prune=True)
    # metadata is still an ObjectMeta, even when the rest of the object is free-form.
    assert result.unknown == [".metadata.junk"]
    assert obj == {"spec": {"anything": 1}, "metadata": {"name": "a"}}


def test_warning_and_strict_wording() -> None:
    assert warning_text(".spec.foo") == 'unknown field "spec.foo"'
    assert warning_text(".spec.containers[0].foo") == 'unknown field "spec.containers[0].foo"'
    error = strict_error([".spec.foo", ".spec.bar"])
    assert error.code == 400
    assert error.reason == "BadRequest"
    assert error.message == (
        'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"'
    )


def test_type_error_message_joins_causes() -> None:
    result = check_fields({"data": {"a": 1}, "immutable": "x"}, CONFIG_MAP, prune=False)
    assert type_error_message(result.type_errors) == (
        'data.a: Invalid value: "integer": data.a in body must be of type string: "integer"; '
        'immutable: Invalid value: "string": immutable in body must be of type boolean: "string"'
    )
