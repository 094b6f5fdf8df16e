"""The create fast path of field ownership: ``created_fields`` and the entry it writes.

Both must agree exactly (same fields, same wire order) with the general comparison that
updates use, over real-world objects (the Gateway API examples with their CRD schemas)
and built-in kinds with every list flavour: list-maps with defaulted and duplicate keys,
sets, atomic lists, values of the wrong JSON type, empty and null values.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kplane.apimachinery.apply import track_update
from kplane.apimachinery.builtin_schemas import GroupVersionKind, type_node
from kplane.apimachinery.fieldpath import compare_objects, created_fields, encode
from kplane.apimachinery.typeinfo import TypeNode

GATEWAY = Path("/work/shared/testdata/crds/gateway-api")
NOW = "2026-01-02T03:04:05Z"


def _gateway_cases() -> list[tuple[str, dict[str, Any], TypeNode]]:
    schemas: dict[tuple[str, str, str], TypeNode] = {}
    for path in GATEWAY.glob("crds/*.yaml"):
        crd = next(d for d in yaml.safe_load_all(path.read_text()) if d)
        for version in crd["spec"]["versions"]:
            key = (crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])
            schemas[key] = TypeNode(version["schema"]["openAPIV3Schema"])
    cases = []
    for path in sorted(GATEWAY.glob("examples/**/*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj:
                continue
            group, _, version = obj["apiVersion"].rpartition("/")
            node = schemas.get((group, version, obj["kind"]))
            if node is not None:
                cases.append((f"{path.name}:{obj['kind']}:{obj['metadata']['name']}", obj, node))
    return cases


def _builtin(group: str, version: str, kind: str) -> TypeNode:
    node = type_node(GroupVersionKind(group, version, kind))
    assert node is not None
    return node


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                 "annotations": {"a": "b"}, "finalizers": ["x/y", "x/y", "z/w"],
                 "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o",
                                      "uid": "u-1"}],
                 "managedFields": [{"manager": "someone", "operation": "Apply"}]},
    "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx",
                     "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"},
                               {"containerPort": 443, "name": "https"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"},
                             {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                     "args": ["--a", "--a"], "resources": {}},
                    {"name": "side", "image": "busybox", "command": None},
                ],
                "volumes": [], "tolerations": [{"key": "k", "operator": "Exists"}],
            },
        },
        "strategy": "not-a-map",
    },
    "status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]},
}

BUILTIN_CASES = [
    ("deployment", DEPLOYMENT, _builtin("apps", "v1", "Deployment")),
    ("configmap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"z": "1", "a": "2", "m.properties": "x=y"}, "binaryData": {}},
     _builtin("", "v1", "ConfigMap")),
    ("service", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                 "spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "UDP"}, 7],
                          "selector": None}},
     _builtin("", "v1", "Service")),
    ("role", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": "r", "labels": {}},
              "rules": [{"verbs": ["get"], "resources": ["pods"]}, {"verbs": ["list"]}]},
     _builtin("rbac.authorization.k8s.io", "v1", "Role")),
    ("nothing-but-stripped", {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "s", "namespace": "n", "uid": "x"}},
     _builtin("", "v1", "Secret")),
]
CASES = _gateway_cases() + BUILTIN_CASES


def test_the_corpus_is_real() -> None:
    assert len(CASES) > 40


@pytest.mark.parametrize(("obj", "node"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_created_fields_match_the_general_comparison_in_wire_order(
        obj: dict[str, Any], node: TypeNode) -> None:
    general = encode(compare_objects(None, obj, node, strip=True).changed)
    assert orjson.dumps(created_fields(obj, node)) == orjson.dumps(general)


@pytest.mark.parametrize(("obj", "node"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_create_records_the_same_entry_as_the_general_path(
        obj: dict[str, Any], node: TypeNode) -> None:
    fast = copy.deepcopy(obj)
    fast["metadata"].pop("managedFields", None)
    # An explicit reset ([]) takes the general path and must end in the same entry.
    general = copy.deepcopy(obj)
    general["metadata"]["managedFields"] = []
    for target in (fast, general):
        track_update(None, target, node=node, manager="kubectl-create",
                     api_version=obj["apiVersion"], now=NOW)
    assert orjson.dumps(fast["metadata"].get("managedFields")) == \
        orjson.dumps(general["metadata"].get("managedFields"))


def test_a_create_that_sets_only_stripped_fields_records_no_entry() -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "uid": "x"}}
    track_update(None, obj, node=_builtin("", "v1", "Secret"), manager="m",
                 api_version="v1", now=NOW)
    assert "managedFields" not in obj["metadata"]


def test_a_create_owns_the_keys_of_a_listmap_and_each_duplicate_whole() -> None:
    fields = created_fields(DEPLOYMENT, _builtin("apps", "v1", "Deployment"))
    containers = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    web = containers['k:{"name":"web"}']
    assert list(containers) == [".", 'k:{"name":"side"}', 'k:{"name":"web"}']
    # Two env items named A: the element is owned whole, with no children.
    assert web["f:env"]['k:{"name":"A"}'] == {}
    # ObjectFieldSelector is an atomic struct upstream: owned whole, not field by field.
    assert web["f:env"]['k:{"name":"B"}'] == {
        ".": {}, "f:name": {}, "f:valueFrom": {".": {}, "f:fieldRef": {}}}
    assert "f:managedFields" not in fields["f:metadata"]
