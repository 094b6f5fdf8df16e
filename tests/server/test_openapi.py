"""OpenAPI v3 documents, read the way kubectl reads them."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest

from kplane.apimachinery.builtin_schemas import definitions
from kplane.registry.builtin import (
    BUILTIN_RESOURCES,
    CONFIGMAPS,
    NAMESPACES,
    SERVICEACCOUNTS,
)
from kplane.registry.resources import ResourceType
from kplane.server.openapi import (
    builtin_schema_for,
    convert_definition,
    document_hash,
    index_key,
    openapi_v3_document,
    openapi_v3_index,
    openapi_v3_index_for_hashes,
    served_group_versions,
)

# The upstream Kubernetes kinds (kcp's tenancy kinds have schemas of kplane's own).
SERVED = tuple(
    dataclasses.replace(rt, subresources=("token",)) if rt == SERVICEACCOUNTS else rt
    for rt in BUILTIN_RESOURCES if not rt.group.endswith(".kcp.io")
)
GROUP_VERSIONS = [
    "v1", "events.k8s.io/v1", "coordination.k8s.io/v1", "rbac.authorization.k8s.io/v1",
    "apiextensions.k8s.io/v1", "authorization.k8s.io/v1", "authentication.k8s.io/v1",
]
OBJECT_META_REF = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
OPERATION_METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def core() -> dict[str, Any]:
    return openapi_v3_document("v1", SERVED)


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, Mapping):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def operations(document: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in OPERATION_METHODS:
            if method in item:
                yield path, method, item[method]


def supports_field_validation(document: Mapping[str, Any], gvk: dict[str, str]) -> bool:
    """kubectl's check: the first PATCH for the kind must take fieldValidation in the query."""
    for item in document["paths"].values():
        patch = item.get("patch")
        if patch is None or patch.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(
            p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"]
        )
    return False


def schema_by_gvk(document: Mapping[str, Any], gvk: dict[str, str]) -> str:
    """How kubectl explain finds a kind's schema."""
    found = [
        name for name, schema in document["components"]["schemas"].items()
        if gvk in schema.get("x-kubernetes-group-version-kind", [])
    ]
    assert len(found) == 1, found
    return str(found[0])


class TestKubectlRequirements:
    @pytest.mark.parametrize("group_version", GROUP_VERSIONS)
    def test_every_kind_is_validated_server_side(self, group_version: str) -> None:
        document = openapi_v3_document(group_version, SERVED)
        # Create-only kinds (access reviews) have no PATCH for kubectl to find, upstream too.
        kinds = [rt for rt in SERVED if rt.api_version == group_version and "patch" in rt.verbs]
        if group_version.startswith(("authorization.", "authentication.")):
            assert not kinds
        for rt in kinds:
            gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
            assert supports_field_validation(document, gvk), rt.kind

    @pytest.mark.parametrize("group_version", GROUP_VERSIONS)
    def test_every_ref_resolves_and_no_json_schema_dialect_is_left(
        self, group_version: str,
    ) -> None:
        document = openapi_v3_document(group_version, SERVED)
        schemas = document["components"]["schemas"]
        for node in walk(document):
            if not isinstance(node, Mapping):
                continue
            assert "$defs" not in node
            assert not isinstance(node.get("type"), list), node
            # JSONSchemaProps (the CRD schema) has a *property* named "$ref"; skip it.
            if isinstance(node.get("$ref"), str):
                ref = node["$ref"]
                assert ref.startswith("#/components/schemas/"), ref
                assert ref.removeprefix("#/components/schemas/") in schemas, ref
                assert set(node) == {"$ref"}, "siblings of $ref must be wrapped in allOf"

    def test_explain_finds_each_kind_and_its_list(self, core: dict[str, Any]) -> None:
        gvk = {"group": "", "kind": "ConfigMap", "version": "v1"}
        assert schema_by_gvk(core, gvk) == "io.k8s.api.core.v1.ConfigMap"
        list_gvk = {"group": "", "kind": "ConfigMapList", "version": "v1"}
        assert schema_by_gvk(core, list_gvk) == "io.k8s.api.core.v1.ConfigMapList"

    def test_strategic_merge_is_offered_for_built_in_kinds(self, core: dict[str, Any]) -> None:
        patch = core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
        assert list(patch["requestBody"]["content"]) == [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]
        assert patch["requestBody"]["required"] is True
        assert patch["requestBody"]["content"]["application/json-patch+json"]["schema"] == {
            "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        }

    def test_no_strategic_merge_for_kinds_without_it(self) -> None:
        widget = ResourceType(group="example.com", version="v1", resource="widgets",
                              kind="Widget", namespaced=True, supports_strategic_merge=False)
        document = openapi_v3_document("example.com/v1", [widget])
        patch = document["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
        content = patch["patch"]["requestBody"]["content"]
        assert "application/strategic-merge-patch+json" not in content
        assert "application/merge-patch+json" in content


class TestOperations:
    def test_configmap_paths_and_operation_ids(self, core: dict[str, Any]) -> None:
        ids = {
            (path, method): op["operationId"] for path, method, op in operations(core)
            if "configmaps" in path
        }
        ns = "/api/v1/namespaces/{namespace}/configmaps"
        assert ids == {
            (ns, "get"): "listCoreV1NamespacedConfigMap",
            (ns, "post"): "createCoreV1NamespacedConfigMap",
            (ns, "delete"): "deleteCoreV1CollectionNamespacedConfigMap",
            (f"{ns}/{{name}}", "get"): "readCoreV1NamespacedConfigMap",
            (f"{ns}/{{name}}", "put"): "replaceCoreV1NamespacedConfigMap",
            (f"{ns}/{{name}}", "patch"): "patchCoreV1NamespacedConfigMap",
            (f"{ns}/{{name}}", "delete"): "deleteCoreV1NamespacedConfigMap",
            ("/api/v1/configmaps", "get"): "listCoreV1ConfigMapForAllNamespaces",
            ("/api/v1/watch/namespaces/{namespace}/configmaps", "get"):
                "watchCoreV1NamespacedConfigMapList",
            ("/api/v1/watch/namespaces/{namespace}/configmaps/{name}", "get"):
                "watchCoreV1NamespacedConfigMap",
            ("/api/v1/watch/configmaps", "get"): "watchCoreV1ConfigMapListForAllNamespaces",
        }

    def test_actions_and_kinds(self, core: dict[str, Any]) -> None:
        actions = {
            op["operationId"]: op["x-kubernetes-action"] for _, _, op in operations(core)
        }
        assert actions["listCoreV1NamespacedConfigMap"] == "list"
        assert actions["createCoreV1NamespacedConfigMap"] == "post"
        assert actions["deleteCoreV1CollectionNamespacedConfigMap"] == "deletecollection"
        assert actions["replaceCoreV1NamespacedConfigMap"] == "put"
        assert actions["watchCoreV1NamespacedConfigMapList"] == "watchlist"
        assert actions["watchCoreV1NamespacedConfigMap"] == "watch"
        for _, _, op in operations(core):
            assert op["tags"] == ["core_v1"]
            assert set(op["x-kubernetes-group-version-kind"]) == {"group", "kind", "version"}

    def test_namespace_has_no_delete_collection_and_its_subresources(
        self, core: dict[str, Any],
    ) -> None:
        assert set(core["paths"]["/api/v1/namespaces"]) == {"get", "post", "parameters"}
        finalize = core["paths"]["/api/v1/namespaces/{name}/finalize"]
        assert set(finalize) == {"put", "parameters"}
        assert finalize["put"]["operationId"] == "replaceCoreV1NamespaceFinalize"
        status = core["paths"]["/api/v1/namespaces/{name}/status"]
        assert {status[m]["operationId"] for m in ("get", "put", "patch")} == {
            "readCoreV1NamespaceStatus", "replaceCoreV1NamespaceStatus",
            "patchCoreV1NamespaceStatus",
        }
        assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Namespace"

    def test_token_subresource_is_a_token_request(self, core: dict[str, Any]) -> None:
        token = core["paths"]["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]
        post = token["post"]
        assert post["operationId"] == "createCoreV1NamespacedServiceAccountToken"
        assert post["x-kubernetes-group-version-kind"] == {
            "group": "authentication.k8s.io", "kind": "TokenRequest", "version": "v1",
        }
        body_ref = post["requestBody"]["content"]["*/*"]["schema"]["$ref"]
        assert body_ref.endswith("io.k8s.api.authentication.v1.TokenRequest")
        assert "io.k8s.api.authentication.v1.TokenRequestSpec" in core["components"]["schemas"]

    def test_query_parameters(self, core: dict[str, Any]) -> None:
        def names(path: str, method: str) -> list[str]:
            return [p["name"] for p in core["paths"][path][method].get("parameters", [])]

        item = "/api/v1/namespaces/{namespace}/configmaps/{name}"
        collection = "/api/v1/namespaces/{namespace}/configmaps"
        assert names(item, "patch") == ["dryRun", "fieldManager", "fieldValidation", "force"]
        assert names(item, "put") == ["dryRun", "fieldManager", "fieldValidation"]
        assert names(collection, "post") == ["dryRun", "fieldManager", "fieldValidation"]
        assert "propagationPolicy" in names(item, "delete")
        assert "gracePeriodSeconds" in names(item, "delete")
        assert names(collection, "get") == [
            "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
            "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
            "watch",
        ]
        path_level = core["paths"][item]["parameters"]
        assert [(p["name"], p["in"]) for p in path_level] == [
            ("name", "path"), ("namespace", "path"), ("pretty", "query"),
        ]
        assert all(p["required"] for p in path_level if p["in"] == "path")
        limit = next(p for p in core["paths"][collection]["get"]["parameters"]
                     if p["name"] == "limit")
        assert limit["schema"]["type"] == "integer"

    def test_responses_reference_the_right_schemas(self, core: dict[str, Any]) -> None:
        def ref(path: str, method: str, code: str) -> str:
            content = core["paths"][path][method]["responses"][code]["content"]
            return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]

        item = "/api/v1/namespaces/{namespace}/configmaps/{name}"
        collection = "/api/v1/namespaces/{namespace}/configmaps"
        assert ref(collection, "get", "200") == "io.k8s.api.core.v1.ConfigMapList"
        assert ref(item, "get", "200") == "io.k8s.api.core.v1.ConfigMap"
        assert ref(collection, "post", "201") == "io.k8s.api.core.v1.ConfigMap"
        assert ref(item, "delete", "200") == "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
        assert ref("/api/v1/watch/configmaps", "get", "200") == (
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
        )
        list_content = core["paths"][collection]["get"]["responses"]["200"]["content"]
        assert "application/json;stream=watch" in list_content
        delete_body = core["paths"][item]["delete"]["requestBody"]
        assert delete_body["content"]["*/*"]["schema"]["$ref"].endswith("DeleteOptions")

    def test_named_group_operation_ids(self) -> None:
        document = openapi_v3_document("rbac.authorization.k8s.io/v1", SERVED)
        ids = {op["operationId"] for _, _, op in operations(document)}
        assert {
            "listRbacAuthorizationV1ClusterRole",
            "watchRbacAuthorizationV1ClusterRoleList",
            "listRbacAuthorizationV1RoleForAllNamespaces",
            "patchRbacAuthorizationV1NamespacedRoleBinding",
        } <= ids
        tags = {op["tags"][0] for _, _, op in operations(document)}
        assert tags == {"rbacAuthorization_v1"}


class TestSchemas:
    def test_document_header_and_shared_kinds(self, core: dict[str, Any]) -> None:
        assert core["openapi"] == "3.0.0"
        assert core["info"] == {"title": "Kubernetes", "version": "unversioned"}
        schemas = core["components"]["schemas"]
        for name in ("Status", "DeleteOptions", "Patch", "WatchEvent", "ObjectMeta", "ListMeta",
                     "ManagedFieldsEntry", "Time"):
            assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}" in schemas
        assert list(schemas) == sorted(schemas)

    def test_refs_with_siblings_are_wrapped_in_all_of(self, core: dict[str, Any]) -> None:
        metadata = core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"]["properties"][
            "metadata"
        ]
        assert metadata["allOf"] == [
            {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        ]
        assert metadata["description"].startswith("Standard object's metadata")

    def test_types_extensions_and_kind_enums(self, core: dict[str, Any]) -> None:
        schemas = core["components"]["schemas"]
        config_map = schemas["io.k8s.api.core.v1.ConfigMap"]
        assert config_map["type"] == "object"
        assert config_map["properties"]["data"] == {
            "additionalProperties": {"type": "string"},
            "description": config_map["properties"]["data"]["description"],
            "type": "object",
        }
        # kubernetes-validate's enum on apiVersion/kind is not part of upstream's document.
        assert "enum" not in config_map["properties"]["apiVersion"]
        assert "enum" not in schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"][
            "properties"]["apiVersion"]
        managed = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
            "managedFields"
        ]
        assert managed["x-kubernetes-list-type"] == "atomic"
        assert managed["items"] == {
            "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
        }
        assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"

    def test_int_or_string_is_published_as_upstream_does(self) -> None:
        document = openapi_v3_document("v1", SERVED)
        schemas = document["components"]["schemas"]
        quantity = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
        assert quantity["oneOf"] == [{"type": "string"}, {"type": "number"}]
        assert "type" not in quantity
        assert "io.k8s.apimachinery.pkg.util.intstr.IntOrString" not in schemas

    def test_strategic_merge_metadata_survives(self) -> None:
        document = openapi_v3_document("v1", SERVED)
        service_account = document["components"]["schemas"]["io.k8s.api.core.v1.ServiceAccount"]
        secrets = service_account["properties"]["secrets"]
        assert secrets["x-kubernetes-patch-strategy"] == "merge"
        assert secrets["x-kubernetes-patch-merge-key"] == "name"


class TestCustomSchemas:
    WIDGET = ResourceType(group="example.com", version="v1", resource="widgets",
                          kind="Widget", namespaced=True, subresources=("status", "scale"),
                          supports_strategic_merge=False)

    def widget_schema(self, rt: ResourceType) -> tuple[str, Mapping[str, Any]] | None:
        return "com.example.v1.Widget", {
            "type": "object",
            "properties": {
                "metadata": {"$ref": OBJECT_META_REF},
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
            },
            "x-kubernetes-group-version-kind": [
                {"group": "example.com", "kind": "Widget", "version": "v1"},
            ],
        }

    def test_custom_schema_pulls_in_references_and_gets_a_list(self) -> None:
        document = openapi_v3_document(
            "example.com/v1", [self.WIDGET], schema_for=self.widget_schema,
        )
        schemas = document["components"]["schemas"]
        assert schemas["com.example.v1.Widget"]["properties"]["spec"]["properties"] == {
            "size": {"type": "integer"},
        }
        assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
        widget_list = schemas["com.example.v1.WidgetList"]
        assert widget_list["x-kubernetes-group-version-kind"] == [
            {"group": "example.com", "kind": "WidgetList", "version": "v1"},
        ]
        assert widget_list["properties"]["items"]["items"] == {
            "$ref": "#/components/schemas/com.example.v1.Widget",
        }
        gvk = {"group": "example.com", "kind": "Widget", "version": "v1"}
        assert supports_field_validation(document, gvk)

    def test_scale_subresource_speaks_autoscaling_scale(self) -> None:
        document = openapi_v3_document(
            "example.com/v1", [self.WIDGET], schema_for=self.widget_schema,
        )
        item = "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"
        scale = document["paths"][f"{item}/scale"]
        assert scale["get"]["operationId"] == "readExampleComV1NamespacedWidgetScale"
        assert scale["get"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
        assert "io.k8s.api.autoscaling.v1.Scale" in document["components"]["schemas"]

    def test_kind_without_schema_gets_an_open_one(self) -> None:
        document = openapi_v3_document("example.com/v1", [self.WIDGET], schema_for=lambda rt: None)
        widget = document["components"]["schemas"]["com.example.v1.Widget"]
        assert widget["x-kubernetes-preserve-unknown-fields"] is True
        assert widget["x-kubernetes-group-version-kind"] == [
            {"group": "example.com", "kind": "Widget", "version": "v1"},
        ]

    def test_builtin_schema_for(self) -> None:
        found = builtin_schema_for(CONFIGMAPS)
        assert found is not None
        assert found[0] == "io.k8s.api.core.v1.ConfigMap"
        assert builtin_schema_for(self.WIDGET) is None


class TestIndex:
    def test_index_lists_each_group_version_with_its_document_hash(self) -> None:
        index = openapi_v3_index(SERVED)
        assert list(index["paths"]) == [
            "api/v1", "apis/apiextensions.k8s.io/v1", "apis/authentication.k8s.io/v1",
            "apis/authorization.k8s.io/v1",
            "apis/coordination.k8s.io/v1", "apis/events.k8s.io/v1",
            "apis/rbac.authorization.k8s.io/v1",
        ]
        url = index["paths"]["api/v1"]["serverRelativeURL"]
        data = orjson.dumps(openapi_v3_document("v1", SERVED))
        assert url == f"/openapi/v3/api/v1?hash={hashlib.sha512(data).hexdigest().upper()}"

    def test_base_prefix(self) -> None:
        index = openapi_v3_index_for_hashes({"v1": "AB"}, base="/clusters/root")
        assert index == {
            "paths": {"api/v1": {"serverRelativeURL": "/clusters/root/openapi/v3/api/v1?hash=AB"}},
        }

    def test_helpers(self) -> None:
        assert index_key("v1") == "api/v1"
        assert index_key("rbac.authorization.k8s.io/v1") == "apis/rbac.authorization.k8s.io/v1"
        assert served_group_versions([NAMESPACES, *SERVED]) == GROUP_VERSIONS

    def test_documents_are_deterministic(self) -> None:
        first = document_hash(openapi_v3_document("v1", SERVED))
        assert document_hash(openapi_v3_document("v1", list(reversed(SERVED)))) == first


def test_int_or_string_definition_converts_like_upstream() -> None:
    name = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    converted, refs = convert_definition(name, definitions()[name])
    assert converted == {
        "oneOf": [{"type": "string"}, {"type": "integer"}],
        "format": "int-or-string",
    }
    assert refs == frozenset()
