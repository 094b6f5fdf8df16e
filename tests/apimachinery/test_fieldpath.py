"""Field sets, the FieldsV1 wire format and the schema walks behind managedFields."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kplane.apimachinery.builtin_schemas import GroupVersionKind, type_node
from kplane.apimachinery.fieldpath import (
    EMPTY,
    STRIPPED_FIELDS,
    FieldPathError,
    FieldSet,
    compare_objects,
    decode,
    encode,
    field_paths,
    fieldset_from_object,
    go_json,
    key_element,
    path_text,
    value_element,
)
from kplane.apimachinery.typeinfo import ANY, TypeNode


def builtin(group: str, version: str, kind: str) -> TypeNode:
    node = type_node(GroupVersionKind(group, version, kind))
    assert node is not None
    return node


CONFIGMAP = builtin("", "v1", "ConfigMap")
DEPLOYMENT = builtin("apps", "v1", "Deployment")

WIDGET = TypeNode({
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "integer"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "port"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "port": {"type": "integer"},
                            "note": {"type": "string"},
                        },
                    },
                },
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
})


def wire(fields: FieldSet) -> str:
    """The FieldsV1 bytes as kube-apiserver would write them."""
    return orjson.dumps(encode(fields)).decode()


def paths(fields: FieldSet) -> list[str]:
    return [path_text(p) for p in fields.paths()]


def configmap(**extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, **extra}


# Wire format.

UPSTREAM_SAMPLES = [
    # kubectl create configmap x --from-literal=a=b (manager kubectl-create).
    '{"f:data":{".":{},"f:a":{}}}',
    # kubectl apply --server-side of a ConfigMap with a label.
    '{"f:data":{"f:a":{}},"f:metadata":{"f:labels":{"f:app":{}}}}',
    # kubectl apply --server-side of an nginx Deployment.
    '{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":'
    '{"f:app":{}}},"f:spec":{"f:containers":{"k:{\\"name\\":\\"nginx\\"}":{".":{},'
    '"f:image":{},"f:name":{},"f:ports":{"k:{\\"containerPort\\":80,\\"protocol\\":\\"TCP\\"}"'
    ':{".":{},"f:containerPort":{}}}}}}}}}',
    # A controller adding finalizers and an owner reference.
    '{"f:metadata":{"f:finalizers":{".":{},"v:\\"a.example.com/x\\"":{}},"f:ownerReferences":'
    '{".":{},"k:{\\"uid\\":\\"0b7f\\"}":{}}}}',
]


@pytest.mark.parametrize("sample", UPSTREAM_SAMPLES)
def test_upstream_fieldsv1_round_trips_byte_for_byte(sample: str) -> None:
    assert wire(decode(orjson.loads(sample))) == sample


def test_encode_sorts_keys_as_upstream_and_puts_dot_first() -> None:
    raw: dict[str, Any] = {
        "f:b": {},
        "f:a": {"f:z": {}, ".": {}, "f:y": {}},
        "f:list": {
            "i:2": {}, 'v:"s"': {}, "v:10": {}, "v:9": {}, 'k:{"name":"b"}': {},
            'k:{"name":"a"}': {}, "v:true": {},
        },
    }
    assert wire(decode(raw)) == (
        '{"f:a":{".":{},"f:y":{},"f:z":{}},"f:b":{},"f:list":{'
        '"k:{\\"name\\":\\"a\\"}":{},"k:{\\"name\\":\\"b\\"}":{},'
        '"v:9":{},"v:10":{},"v:\\"s\\"":{},"v:true":{},"i:2":{}}}'
    )


def test_decode_canonicalises_key_elements_so_equal_items_are_equal() -> None:
    spaced = decode({'k:{ "protocol": "TCP", "containerPort": 80 }': {}})
    canonical = decode({'k:{"containerPort":80,"protocol":"TCP"}': {}})
    assert spaced == canonical
    assert wire(spaced) == '{"k:{\\"containerPort\\":80,\\"protocol\\":\\"TCP\\"}":{}}'


def test_decode_drops_unknown_element_kinds_and_rejects_garbage() -> None:
    assert decode({"x:whatever": {}, "f:a": {}}) == decode({"f:a": {}})
    with pytest.raises(ValueError):
        decode({"f:a": []})
    with pytest.raises(ValueError):
        decode({"k:{not json": {}})
    with pytest.raises(ValueError):
        decode(["f:a"])


def test_element_json_is_go_compatible() -> None:
    assert key_element({"protocol": "TCP", "containerPort": 80}) == (
        'k:{"containerPort":80,"protocol":"TCP"}'
    )
    assert value_element("<a&b>") == 'v:"\\u003ca\\u0026b\\u003e"'
    assert go_json(3.0) == "3"
    assert go_json({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'


def test_path_text_matches_upstream_printing() -> None:
    assert path_text(("f:data", "f:key")) == ".data.key"
    assert path_text(
        ("f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")
    ) == '.spec.containers[name="nginx"].image'
    assert path_text(("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')) == (
        '.ports[containerPort=80,protocol="TCP"]'
    )
    assert path_text(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'
    assert path_text(("f:args", "i:3")) == ".args[3]"


# Set operations.


def fs(*dotted: str) -> FieldSet:
    return field_paths(*dotted)


def test_union_difference_intersection() -> None:
    a = fs("data.a", "data.b", "metadata.labels.x")
    b = fs("data.b", "data.c")
    assert paths(a.union(b)) == [".data.a", ".data.b", ".data.c", ".metadata.labels.x"]
    assert paths(a.difference(b)) == [".data.a", ".metadata.labels.x"]
    assert paths(a.intersection(b)) == [".data.b"]
    assert a.difference(a).empty
    assert a.intersection(EMPTY).empty
    assert a.union(EMPTY) is a
    assert a.difference(fs("spec")) is a


def test_difference_is_exact_but_recursive_difference_takes_descendants() -> None:
    owner = FieldSet.from_paths([("f:data",), ("f:data", "f:a"), ("f:status", "f:ready")])
    assert wire(owner) == '{"f:data":{".":{},"f:a":{}},"f:status":{"f:ready":{}}}'
    assert wire(owner.difference(fs("data"))) == '{"f:data":{"f:a":{}},"f:status":{"f:ready":{}}}'
    assert wire(owner.recursive_difference(fs("data"))) == '{"f:status":{"f:ready":{}}}'
    assert wire(owner.recursive_difference(fs("status"))) == '{"f:data":{".":{},"f:a":{}}}'


def test_membership_and_iteration_order() -> None:
    owner = decode(orjson.loads(UPSTREAM_SAMPLES[0]))
    assert owner.has(("f:data",))
    assert owner.has(("f:data", "f:a"))
    assert not owner.has(("f:data", "f:b"))
    assert not owner.has(())
    mixed = fs("b.c", "a", "b.a.x")
    # Upstream iterates a node's own members before descending.
    assert paths(mixed) == [".a", ".b.c", ".b.a.x"]
    assert len(mixed) == 3


def test_stripped_fields_keep_children_of_metadata() -> None:
    owner = fs("metadata.name", "metadata.labels.app", "apiVersion", "data.a")
    assert paths(owner.difference(STRIPPED_FIELDS)) == [".data.a", ".metadata.labels.app"]


# fieldset_from_object (upstream ToFieldSet).


def test_applied_configmap_fields() -> None:
    applied = configmap(metadata={"name": "x", "labels": {"app": "web"}}, data={"a": "b"})
    assert wire(fieldset_from_object(applied, CONFIGMAP)) == UPSTREAM_SAMPLES[1]
    unstripped = fieldset_from_object(applied, CONFIGMAP, strip=False)
    assert paths(unstripped) == [
        ".apiVersion", ".kind", ".data.a", ".metadata.name", ".metadata.labels.app",
    ]


def test_applied_deployment_fields_match_upstream() -> None:
    applied = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]},
                ]},
            },
        },
    }
    assert wire(fieldset_from_object(applied, DEPLOYMENT)) == UPSTREAM_SAMPLES[2]


def test_null_and_empty_maps_are_owned_but_empty_lists_are_not() -> None:
    applied = configmap(metadata={"name": "x", "labels": {}, "annotations": None,
                                  "finalizers": []})
    assert paths(fieldset_from_object(applied, CONFIGMAP)) == [
        ".metadata.annotations", ".metadata.labels",
    ]


def test_sets_and_list_maps_own_their_items() -> None:
    applied = configmap(metadata={
        "name": "x", "finalizers": ["b", "a"],
        "ownerReferences": [{"uid": "u1", "name": "o", "kind": "K", "apiVersion": "v1"}],
    })
    # OwnerReference is an atomic struct: its item is owned whole.
    assert wire(fieldset_from_object(applied, CONFIGMAP)) == (
        '{"f:metadata":{"f:finalizers":{"v:\\"a\\"":{},"v:\\"b\\"":{}},"f:ownerReferences":'
        '{"k:{\\"uid\\":\\"u1\\"}":{}}}}'
    )
    account = builtin("", "v1", "ServiceAccount")
    applied = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "s"},
               "secrets": [{"name": "t"}]}
    # ServiceAccount.secrets is a list-map by name of atomic ObjectReferences.
    assert wire(fieldset_from_object(applied, account)) == (
        '{"f:secrets":{"k:{\\"name\\":\\"t\\"}":{}}}'
    )


def test_custom_resource_schema_shapes() -> None:
    applied = {
        "apiVersion": "ex.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "1"}, "finalizers": ["f"]},
        "spec": {
            "size": 3,
            "ports": [{"name": "http", "port": 80, "note": "n"}],
            "tags": ["x", "y"],
            "extra": {"deep": {"k": 1}, "list": [1, 2]},
        },
    }
    assert paths(fieldset_from_object(applied, WIDGET)) == [
        # metadata is ObjectMeta even though the CRD schema only says "object".
        '.metadata.finalizers[="f"]', ".metadata.labels.a",
        ".spec.size", ".spec.tags",
        ".spec.extra.deep", ".spec.extra.list", ".spec.extra.deep.k",
        '.spec.ports[name="http",port=80]',
        '.spec.ports[name="http",port=80].name', '.spec.ports[name="http",port=80].note',
        '.spec.ports[name="http",port=80].port',
    ]


def test_reset_paths_are_left_out() -> None:
    applied = {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"size": 1}, "status": {"ready": True}}
    assert paths(fieldset_from_object(applied, WIDGET, reset=fs("status"))) == [".spec.size"]


def test_strict_mode_reports_what_upstream_reports() -> None:
    with pytest.raises(FieldPathError) as unknown:
        fieldset_from_object(configmap(spec={"a": 1}), CONFIGMAP, strict=True)
    assert str(unknown.value) == ".spec: field not declared in schema"
    with pytest.raises(FieldPathError) as keyless:
        fieldset_from_object(
            {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
             "spec": {"ports": [{"note": "x"}]}},
            WIDGET, strict=True,
        )
    assert str(keyless.value) == (
        '.spec.ports: element 0: associative list with keys has an element that omits all '
        'key fields ["name" "port"] (and doesn\'t have default values for any key fields)'
    )
    with pytest.raises(FieldPathError) as duplicate:
        fieldset_from_object(configmap(metadata={"name": "x", "finalizers": ["a", "a"]}),
                             CONFIGMAP, strict=True)
    assert str(duplicate.value) == '.metadata.finalizers: duplicate entries for key [="a"]'
    # Not strict (live objects): duplicates are owned as a whole, unknown fields are
    # schemaless (owned themselves, like every key that is not a declared field).
    lenient = fieldset_from_object(
        configmap(metadata={"name": "x", "finalizers": ["a", "a"]}, spec={"a": 1}), CONFIGMAP
    )
    assert paths(lenient) == [".spec", '.metadata.finalizers[="a"]', ".spec.a"]


def test_schemaless_objects_are_granular_maps_with_atomic_lists() -> None:
    obj = {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"},
           "spec": {"a": {"b": 1}, "l": [{"x": 1}]}}
    assert wire(fieldset_from_object(obj, ANY)) == (
        '{"f:spec":{".":{},"f:a":{".":{},"f:b":{}},"f:l":{}}}'
    )


# compare_objects (upstream Compare).


def test_create_marks_new_maps_as_owned_themselves() -> None:
    new = configmap(metadata={"name": "x", "namespace": "d", "labels": {"app": "a"}},
                    data={"a": "b"})
    result = compare_objects(None, new, CONFIGMAP)
    assert result.removed.empty
    assert wire(result.changed.difference(STRIPPED_FIELDS)) == (
        '{"f:data":{".":{},"f:a":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}'
    )


def test_update_reports_modified_added_and_removed_leaves() -> None:
    old = configmap(data={"a": "1", "b": "2", "c": "3"})
    new = configmap(data={"a": "1", "b": "changed", "d": "4"})
    result = compare_objects(old, new, CONFIGMAP)
    assert paths(result.changed) == [".data.b", ".data.d"]
    assert paths(result.removed) == [".data.c"]


def test_compare_ignores_managed_fields_and_honours_reset() -> None:
    old = {"apiVersion": "ex.com/v1", "kind": "Widget",
           "metadata": {"name": "w", "managedFields": [{"manager": "a"}]},
           "status": {"ready": False}}
    new = {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "status": {"ready": True}}
    assert paths(compare_objects(old, new, WIDGET).changed) == [".status.ready"]
    assert compare_objects(old, new, WIDGET, reset=fs("status")).same


def test_null_is_not_absent() -> None:
    assert paths(compare_objects(configmap(), configmap(data=None), CONFIGMAP).changed) == [
        ".data"
    ]
    # null -> {a} adds the key only; absent -> {a} adds the map itself too.
    assert paths(
        compare_objects(configmap(data=None), configmap(data={"a": "b"}), CONFIGMAP).changed
    ) == [".data.a"]
    assert paths(
        compare_objects(configmap(), configmap(data={"a": "b"}), CONFIGMAP).changed
    ) == [".data", ".data.a"]


def test_list_items_are_compared_by_key() -> None:
    def widget(ports: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"ports": ports, "tags": ["a"]}}

    old = widget([{"name": "a", "port": 1}, {"name": "b", "port": 2, "note": "x"}])
    new = widget([{"name": "b", "port": 2, "note": "y"}, {"name": "c", "port": 3}])
    result = compare_objects(old, new, WIDGET)
    assert paths(result.changed) == [
        '.spec.ports[name="c",port=3]',
        '.spec.ports[name="b",port=2].note',
        '.spec.ports[name="c",port=3].name', '.spec.ports[name="c",port=3].port',
    ]
    assert paths(result.removed) == [
        '.spec.ports[name="a",port=1]',
        '.spec.ports[name="a",port=1].name', '.spec.ports[name="a",port=1].port',
    ]
    tags = compare_objects(widget([]), {**widget([]), "spec": {"ports": [], "tags": ["b"]}},
                           WIDGET)
    # An atomic list changes as a whole.
    assert paths(tags.changed) == [".spec.tags"]
