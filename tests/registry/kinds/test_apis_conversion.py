"""The v1alpha1 <-> v1alpha2 conversion of kcp's APIExports and APIBindings, and the
annotations that carry what v1alpha1 cannot say through a v1alpha1 round trip.

The object pairs here are also what tests/registry/kinds/test_apis.py feeds the strategies.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from kplane.registry.kinds.apis_conversion import (
    ACCEPTABLE_CLAIMS_ANNOTATION,
    PERMISSION_CLAIMS_ANNOTATION,
    RESOURCE_SCHEMAS_ANNOTATION,
    binding_to_v1alpha1,
    binding_to_v1alpha2,
    export_to_v1alpha1,
    export_to_v1alpha2,
    resource_for_schema,
)

V1 = "apis.kcp.io/v1alpha1"
V2 = "apis.kcp.io/v1alpha2"


# --- APIExport -----------------------------------------------------------------------------

V1_EXPORT: dict[str, Any] = {
    "apiVersion": V1, "kind": "APIExport",
    "metadata": {"name": "widgets", "annotations": {"kcp.io/cluster": "root"}},
    "spec": {
        "latestResourceSchemas": ["v1.widgets.example.io", "v2.configmaps.core"],
        "permissionClaims": [
            {"group": "", "resource": "secrets", "all": True},
            {"group": "example.io", "resource": "gadgets", "identityHash": "abc", "all": True},
        ],
        "identity": {"secretRef": {"namespace": "kcp-system", "name": "widgets"}},
    },
    "status": {"identityHash": "f00d"},
}
V2_EXPORT: dict[str, Any] = {
    "apiVersion": V2, "kind": "APIExport",
    "metadata": {"name": "widgets", "annotations": {"kcp.io/cluster": "root"}},
    "spec": {
        "resources": [
            {"group": "example.io", "name": "widgets", "schema": "v1.widgets.example.io",
             "storage": {"crd": {}}},
            {"group": "", "name": "configmaps", "schema": "v2.configmaps.core",
             "storage": {"crd": {}}},
        ],
        "permissionClaims": [
            {"group": "", "resource": "secrets", "verbs": ["*"]},
            {"group": "example.io", "resource": "gadgets", "identityHash": "abc",
             "verbs": ["*"]},
        ],
        "identity": {"secretRef": {"namespace": "kcp-system", "name": "widgets"}},
    },
    "status": {"identityHash": "f00d"},
}


def test_a_v1alpha1_export_converts_to_v1alpha2_and_back() -> None:
    assert export_to_v1alpha2(V1_EXPORT) == V2_EXPORT
    assert export_to_v1alpha1(V2_EXPORT) == V1_EXPORT


def test_what_v1alpha1_cannot_say_travels_in_kcps_annotations() -> None:
    v2 = copy.deepcopy(V2_EXPORT)
    virtual = {"group": "example.io", "name": "gizmos", "schema": "v1.gizmos.example.io",
               "storage": {"virtual": {"reference": {"kind": "Thing", "name": "t"}}}}
    v2["spec"]["resources"].append(virtual)
    v2["spec"]["permissionClaims"][0]["verbs"] = ["get", "list"]
    v2["spec"]["permissionClaims"][1]["defaultSelector"] = {"matchLabels": {"a": "b"}}
    v1 = export_to_v1alpha1(v2)
    assert v1["spec"]["latestResourceSchemas"] == ["v1.widgets.example.io",
                                                   "v2.configmaps.core"]
    assert v1["spec"]["permissionClaims"] == V1_EXPORT["spec"]["permissionClaims"]
    annotations = v1["metadata"]["annotations"]
    assert orjson.loads(annotations[RESOURCE_SCHEMAS_ANNOTATION]) == [virtual]
    assert orjson.loads(annotations[PERMISSION_CLAIMS_ANNOTATION]) == [
        {"group": "", "resource": "secrets", "verbs": ["get", "list"]},
        {"group": "example.io", "resource": "gadgets", "identityHash": "abc", "verbs": ["*"],
         "defaultSelector": {"matchLabels": {"a": "b"}}}]
    # Back in the stored form nothing was lost and the annotations are gone again.
    assert export_to_v1alpha2(v1) == v2


def test_a_v1alpha1_client_dropping_a_claim_drops_its_stashed_verbs() -> None:
    v2 = copy.deepcopy(V2_EXPORT)
    v2["spec"]["permissionClaims"][0]["verbs"] = ["get"]
    v1 = export_to_v1alpha1(v2)
    del v1["spec"]["permissionClaims"][0]
    assert export_to_v1alpha2(v1)["spec"]["permissionClaims"] == [
        V2_EXPORT["spec"]["permissionClaims"][1]]


@pytest.mark.parametrize(("name", "resource"), [
    ("v1.widgets.example.io", {"group": "example.io", "name": "widgets",
                               "schema": "v1.widgets.example.io", "storage": {"crd": {}}}),
    ("v2.configmaps.core", {"group": "", "name": "configmaps", "schema": "v2.configmaps.core",
                            "storage": {"crd": {}}}),
    ("widgets.example", None),
])
def test_a_schema_name_gives_the_resource_it_serves(name: str,
                                                    resource: dict[str, Any] | None) -> None:
    assert resource_for_schema(name) == resource


# --- APIBinding ----------------------------------------------------------------------------

V1_BINDING: dict[str, Any] = {
    "apiVersion": V1, "kind": "APIBinding",
    "metadata": {"name": "widgets", "annotations": {"kcp.io/cluster": "root"}},
    "spec": {
        "reference": {"export": {"path": "root:providers", "name": "widgets"}},
        "permissionClaims": [{"group": "", "resource": "secrets", "all": True,
                              "state": "Accepted"}],
    },
    "status": {
        "phase": "Bound",
        "apiExportClusterName": "2x8abc",
        "boundResources": [{"group": "example.io", "resource": "widgets",
                            "schema": {"name": "v1.widgets.example.io", "UID": "u",
                                       "identityHash": "f00d"},
                            "storageVersions": ["v1"]}],
        "exportPermissionClaims": [{"group": "", "resource": "secrets", "all": True}],
        "appliedPermissionClaims": [{"group": "", "resource": "secrets", "all": True}],
    },
}
V2_BINDING: dict[str, Any] = {
    **V1_BINDING,
    "apiVersion": V2,
    "spec": {
        "reference": {"export": {"path": "root:providers", "name": "widgets"}},
        "permissionClaims": [{"group": "", "resource": "secrets", "verbs": ["*"],
                              "selector": {"matchAll": True}, "state": "Accepted"}],
    },
    "status": {
        **V1_BINDING["status"],
        "exportPermissionClaims": [{"group": "", "resource": "secrets", "verbs": ["*"]}],
        "appliedPermissionClaims": [{"group": "", "resource": "secrets", "verbs": ["*"],
                                     "selector": {"matchAll": True}}],
    },
}


def test_a_v1alpha1_binding_converts_to_v1alpha2_and_back() -> None:
    assert binding_to_v1alpha2(V1_BINDING) == V2_BINDING
    assert binding_to_v1alpha1(V2_BINDING) == V1_BINDING


def test_a_label_selector_survives_a_v1alpha1_round_trip() -> None:
    v2 = copy.deepcopy(V2_BINDING)
    v2["spec"]["permissionClaims"][0]["selector"] = {"matchLabels": {"share": "yes"}}
    v1 = binding_to_v1alpha1(v2)
    assert v1["spec"]["permissionClaims"] == V1_BINDING["spec"]["permissionClaims"]
    assert orjson.loads(v1["metadata"]["annotations"][ACCEPTABLE_CLAIMS_ANNOTATION]) == [
        {"group": "", "resource": "secrets", "verbs": ["*"],
         "selector": {"matchLabels": {"share": "yes"}}}]
    assert binding_to_v1alpha2(v1) == v2
    # The v1alpha1 client's own answer (state) wins; the selector comes from the stash.
    v1["spec"]["permissionClaims"][0]["state"] = "Rejected"
    back = binding_to_v1alpha2(v1)["spec"]["permissionClaims"][0]
    assert (back["state"], back["selector"]) == ("Rejected", {"matchLabels": {"share": "yes"}})
