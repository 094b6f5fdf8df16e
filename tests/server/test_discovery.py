"""Discovery documents, checked against upstream's values and the official client's models."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import kubernetes.client
import pytest

from kplane.registry.builtin import (
    BUILTIN_RESOURCES,
    CONFIGMAPS,
    EVENTS,
    EVENTS_V1,
    NAMESPACES,
    SERVICEACCOUNTS,
)
from kplane.registry.resources import ResourceType
from kplane.server import discovery
from kplane.server.discovery import (
    AGGREGATED_CONTENT_TYPE,
    aggregated_discovery,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    content_hash,
    encode_document,
    etag,
    storage_version_hash,
    version_priority,
    wants_aggregated,
)

CLIENT_GO_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


def assert_fields_known(model: str, data: Any) -> None:
    """Every key of ``data`` is a field of the official client's model, recursively."""
    klass = getattr(kubernetes.client, model)
    known = {wire: attr for attr, wire in klass.attribute_map.items()}
    assert isinstance(data, dict)
    for key, value in data.items():
        assert key in known, f"{model} has no field {key!r}"
        declared = klass.openapi_types[known[key]]
        if declared.startswith("List[V"):
            for item in value:
                assert_fields_known(declared[5:-1], item)
        elif declared.startswith("V"):
            assert_fields_known(declared, value)


def deserialize(model: str, data: Any) -> Any:
    client = kubernetes.client.ApiClient()
    return client.deserialize(json.dumps(data), model, "application/json")


# Upstream serves serviceaccounts/token; make sure it is in the list under test whether or
# not the built-in catalog serves it yet.
SERVED = tuple(
    dataclasses.replace(rt, subresources=("token",)) if rt == SERVICEACCOUNTS else rt
    for rt in BUILTIN_RESOURCES
)


class TestStorageVersionHash:
    @pytest.mark.parametrize(
        ("rt", "expected"),
        [
            (CONFIGMAPS, "qFsyl6wFWjQ="),
            (NAMESPACES, "Q3oi5N2YM8M="),
            (SERVICEACCOUNTS, "pbx9ZvyFpBE="),
            (EVENTS, "r2yiGXH7wu8="),
        ],
    )
    def test_matches_upstream_values(self, rt: ResourceType, expected: str) -> None:
        assert storage_version_hash(rt) == expected

    def test_rbac_and_coordination_match_upstream(self) -> None:
        by_resource = {rt.resource: rt for rt in BUILTIN_RESOURCES if rt.group}
        assert storage_version_hash(by_resource["roles"]) == "7FuwZcIIItM="
        assert storage_version_hash(by_resource["clusterrolebindings"]) == "48tpQ8gZHFc="
        assert storage_version_hash(by_resource["leases"]) == "gqkMMb/YqFM="

    def test_events_served_in_two_groups_share_the_stored_hash(self) -> None:
        stored_in_core = dataclasses.replace(EVENTS_V1, storage_group="")
        assert storage_version_hash(stored_in_core) == "r2yiGXH7wu8="


class TestLegacy:
    def test_api_versions(self) -> None:
        document = api_versions("10.0.0.1:6443")
        assert document == {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"},
            ],
        }
        assert deserialize("V1APIVersions", document).versions == ["v1"]

    def test_group_list_names_every_named_group_once(self) -> None:
        document = api_group_list(BUILTIN_RESOURCES)
        assert document["kind"] == "APIGroupList"
        assert [g["name"] for g in document["groups"]] == [
            "events.k8s.io", "coordination.k8s.io", "rbac.authorization.k8s.io",
            "tenancy.kcp.io", "core.kcp.io", "apiextensions.k8s.io", "apis.kcp.io",
            "authorization.k8s.io",
            "authentication.k8s.io",
        ]
        rbac = document["groups"][2]
        assert rbac["versions"] == [
            {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"},
        ]
        assert rbac["preferredVersion"] == rbac["versions"][0]
        assert_fields_known("V1APIGroupList", document)
        parsed = deserialize("V1APIGroupList", document)
        assert parsed.groups[1].preferred_version.group_version == "coordination.k8s.io/v1"

    def test_group_versions_are_in_preference_order(self) -> None:
        versions = [
            ResourceType(group="example.com", version=v, resource="widgets", kind="Widget",
                         namespaced=True)
            for v in ("v1alpha1", "v1", "v2beta1", "v1beta2", "v2")
        ]
        document = api_group("example.com", versions)
        assert document is not None
        assert [v["version"] for v in document["versions"]] == [
            "v2", "v1", "v2beta1", "v1beta2", "v1alpha1",
        ]
        assert document["preferredVersion"]["version"] == "v2"
        assert document["kind"] == "APIGroup"
        assert api_group("nope.io", versions) is None
        assert api_group("", BUILTIN_RESOURCES) is None

    def test_version_priority_puts_odd_versions_last(self) -> None:
        assert sorted(["foo", "v1", "v10", "v1beta1"], key=version_priority) == [
            "v10", "v1", "v1beta1", "foo",
        ]

    def test_core_resource_list_matches_upstream_shape(self) -> None:
        document = api_resource_list("v1", SERVED)
        assert document is not None
        assert document["kind"] == "APIResourceList"
        assert document["apiVersion"] == "v1"
        assert document["groupVersion"] == "v1"
        names = [r["name"] for r in document["resources"]]
        assert names == [
            "configmaps", "events", "limitranges", "namespaces", "namespaces/finalize",
            "namespaces/status", "resourcequotas", "resourcequotas/status", "secrets",
            "serviceaccounts", "serviceaccounts/token",
        ]
        by_name = {r["name"]: r for r in document["resources"]}
        assert by_name["configmaps"] == {
            "name": "configmaps",
            "singularName": "configmap",
            "namespaced": True,
            "kind": "ConfigMap",
            "verbs": [
                "create", "delete", "deletecollection", "get", "list", "patch", "update",
                "watch",
            ],
            "shortNames": ["cm"],
            "storageVersionHash": "qFsyl6wFWjQ=",
        }
        assert by_name["namespaces"]["namespaced"] is False
        assert "deletecollection" not in by_name["namespaces"]["verbs"]

    def test_subresources_have_their_kinds_and_verbs(self) -> None:
        document = api_resource_list("v1", SERVED)
        assert document is not None
        by_name = {r["name"]: r for r in document["resources"]}
        assert by_name["serviceaccounts/token"] == {
            "name": "serviceaccounts/token",
            "singularName": "",
            "namespaced": True,
            "group": "authentication.k8s.io",
            "version": "v1",
            "kind": "TokenRequest",
            "verbs": ["create"],
        }
        assert by_name["namespaces/finalize"] == {
            "name": "namespaces/finalize", "singularName": "", "namespaced": False,
            "kind": "Namespace", "verbs": ["update"],
        }
        assert by_name["namespaces/status"]["verbs"] == ["get", "patch", "update"]
        assert by_name["resourcequotas/status"]["kind"] == "ResourceQuota"
        assert by_name["resourcequotas/status"]["namespaced"] is True

    def test_resource_list_deserializes_with_the_official_client(self) -> None:
        document = api_resource_list("rbac.authorization.k8s.io/v1", BUILTIN_RESOURCES)
        assert document is not None
        assert_fields_known("V1APIResourceList", document)
        parsed = deserialize("V1APIResourceList", document)
        assert parsed.group_version == "rbac.authorization.k8s.io/v1"
        assert [r.name for r in parsed.resources] == [
            "clusterrolebindings", "clusterroles", "rolebindings", "roles",
        ]
        assert parsed.resources[3].singular_name == "role"

    def test_unknown_group_version_gives_none(self) -> None:
        assert api_resource_list("apps/v1", BUILTIN_RESOURCES) is None

    def test_categories_are_listed_only_when_present(self) -> None:
        widget = ResourceType(group="example.com", version="v1", resource="widgets",
                              kind="Widget", namespaced=True, categories=("all",))
        document = api_resource_list("example.com/v1", [widget])
        assert document is not None
        assert document["resources"][0]["categories"] == ["all"]
        assert "shortNames" not in document["resources"][0]


class TestAggregated:
    def test_core_document(self) -> None:
        document = aggregated_discovery(SERVED, legacy_core=True)
        assert document["kind"] == "APIGroupDiscoveryList"
        assert document["apiVersion"] == "apidiscovery.k8s.io/v2"
        assert document["metadata"] == {}
        [core] = document["items"]
        assert core["metadata"] == {"name": ""}
        [v1] = core["versions"]
        assert v1["version"] == "v1"
        assert v1["freshness"] == "Current"
        by_resource = {r["resource"]: r for r in v1["resources"]}
        assert list(by_resource) == [
            "configmaps", "events", "limitranges", "namespaces", "resourcequotas", "secrets",
            "serviceaccounts",
        ]
        assert by_resource["namespaces"] == {
            "resource": "namespaces",
            "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
            "scope": "Cluster",
            "singularResource": "namespace",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": ["ns"],
            "subresources": [
                {
                    "subresource": "finalize",
                    "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                    "verbs": ["update"],
                },
                {
                    "subresource": "status",
                    "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                    "verbs": ["get", "patch", "update"],
                },
            ],
        }
        token = by_resource["serviceaccounts"]["subresources"][0]
        assert token == {
            "subresource": "token",
            "responseKind": {
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
            },
            "verbs": ["create"],
        }
        assert by_resource["configmaps"]["scope"] == "Namespaced"
        assert "subresources" not in by_resource["configmaps"]

    def test_named_groups_document(self) -> None:
        document = aggregated_discovery(BUILTIN_RESOURCES, legacy_core=False)
        names = [item["metadata"]["name"] for item in document["items"]]
        assert names == ["events.k8s.io", "coordination.k8s.io", "rbac.authorization.k8s.io",
                         "tenancy.kcp.io", "core.kcp.io", "apiextensions.k8s.io", "apis.kcp.io",
                         "authorization.k8s.io", "authentication.k8s.io"]
        rbac = document["items"][2]["versions"][0]["resources"]
        assert [r["resource"] for r in rbac] == [
            "clusterrolebindings", "clusterroles", "rolebindings", "roles",
        ]
        assert rbac[0]["responseKind"] == {
            "group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRoleBinding",
        }

    @pytest.mark.parametrize("legacy_core", [True, False])
    def test_deserializes_with_the_official_client(self, legacy_core: bool) -> None:
        document = aggregated_discovery(BUILTIN_RESOURCES, legacy_core=legacy_core)
        assert_fields_known("V2APIGroupDiscoveryList", document)
        parsed = deserialize("V2APIGroupDiscoveryList", document)
        first = parsed.items[0].versions[0].resources[0]
        assert first.response_kind.kind
        assert first.scope in ("Namespaced", "Cluster")

    def test_versions_in_preference_order(self) -> None:
        widgets = [
            ResourceType(group="example.com", version=v, resource="widgets", kind="Widget",
                         namespaced=False)
            for v in ("v1beta1", "v1")
        ]
        document = aggregated_discovery(widgets, legacy_core=False)
        assert [v["version"] for v in document["items"][0]["versions"]] == ["v1", "v1beta1"]
        assert aggregated_discovery(widgets, legacy_core=True)["items"] == []


class TestNegotiation:
    def test_client_go_accept_gets_aggregated(self) -> None:
        assert wants_aggregated(CLIENT_GO_ACCEPT)

    @pytest.mark.parametrize(
        "accept",
        [
            None,
            "",
            "application/json",
            "*/*",
            "application/json, */*",
            # Obsolete v2beta1 first: fall through to plain JSON.
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
            "application/json",
            "application/yaml",
            # Declared but refused.
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0",
            # Preferred by quality: plain JSON outranks it.
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,"
            "application/json",
        ],
    )
    def test_other_requests_get_legacy(self, accept: str | None) -> None:
        assert not wants_aggregated(accept)

    def test_spacing_and_extra_parameters_are_tolerated(self) -> None:
        assert wants_aggregated(
            "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList;"
            " profile=nopeer, application/json",
        )

    def test_content_type_constant_is_parsed_as_aggregated(self) -> None:
        assert wants_aggregated(AGGREGATED_CONTENT_TYPE)


class TestCaching:
    def test_same_input_gives_identical_bytes_and_hash(self) -> None:
        first = encode_document(aggregated_discovery(BUILTIN_RESOURCES, legacy_core=False))
        again = encode_document(aggregated_discovery(list(BUILTIN_RESOURCES), legacy_core=False))
        assert first == again
        assert content_hash(first) == content_hash(again)
        assert len(content_hash(first)) == 128
        assert content_hash(first) == content_hash(first).upper()
        assert etag(first) == f'"{content_hash(first)}"'

    def test_changed_resources_change_the_hash(self) -> None:
        before = encode_document(aggregated_discovery(BUILTIN_RESOURCES, legacy_core=False))
        widget = ResourceType(group="example.com", version="v1", resource="widgets",
                              kind="Widget", namespaced=True)
        after = encode_document(
            aggregated_discovery([*BUILTIN_RESOURCES, widget], legacy_core=False),
        )
        assert content_hash(before) != content_hash(after)


def test_unknown_subresource_defaults_to_parent_kind_and_get() -> None:
    assert discovery.subresource_verbs("log") == ("get",)
    assert discovery.subresource_kind(CONFIGMAPS, "log") == CONFIGMAPS.gvk
    assert discovery.subresource_kind(CONFIGMAPS, "scale").kind == "Scale"
