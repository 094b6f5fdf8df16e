"""kcp's apis.kcp.io kinds: their rules through the Strategy and a real Store, in both
served versions of APIExport and APIBinding (the conversion itself is tested in
test_apis_conversion.py)."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.apimachinery.errors import Cause, StatusError
from kplane.registry import builtin
from kplane.registry.kinds import strategy_for
from kplane.registry.kinds.apis import (
    APIBindingStrategy,
    APIBindingV1Alpha1Strategy,
    APIExportEndpointSliceStrategy,
    APIExportStrategy,
    APIExportV1Alpha1Strategy,
    APIResourceSchemaStrategy,
)
from kplane.registry.kinds.apis_conversion import (
    ACCEPTABLE_CLAIMS_ANNOTATION,
    PERMISSION_CLAIMS_ANNOTATION,
    RESOURCE_SCHEMAS_ANNOTATION,
    binding_to_v1alpha1,
)
from kplane.registry.options import WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import MERGE_PATCH, Store, Target
from kplane.registry.tables import table_for_kind
from tests.registry.kinds.test_apis_conversion import (
    V1_BINDING,
    V1_EXPORT,
    V2_BINDING,
    V2_EXPORT,
)
from tests.registry.test_store import running_store

ROOT = "root"
V1 = "apis.kcp.io/v1alpha1"
V2 = "apis.kcp.io/v1alpha2"


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    async with running_store(tmp_path) as running:
        yield running


def causes(found: list[Cause]) -> list[tuple[str, str, str]]:
    return [(c.reason, c.field, c.message) for c in found]


def fields(found: list[Cause]) -> list[str]:
    return [c.field for c in found]


def target(rt: ResourceType, name: str = "") -> Target:
    return Target(rt, ROOT, "", name)


async def read_as(store: Store, rt: ResourceType, name: str) -> dict[str, Any]:
    """An object as a GET through ``rt`` answers it (stored bytes, then the read form)."""
    cached = await store.get(target(rt, name))
    result: dict[str, Any] = orjson.loads(store.catalog.strategy(rt).read_bytes(cached.raw))
    return result


# --- APIResourceSchema ---------------------------------------------------------------------


def widget_schema(name: str = "v1.widgets.example.io", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": V1, "kind": "APIResourceSchema", "metadata": {"name": name},
        "spec": {
            "group": "example.io",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
            }],
            **spec,
        },
    }


SCHEMAS = APIResourceSchemaStrategy(builtin.API_RESOURCE_SCHEMAS)


def test_a_valid_schema_passes_and_gets_kcps_defaults() -> None:
    obj = widget_schema()
    del obj["spec"]["versions"][0]["served"]
    SCHEMAS.prepare_for_create(obj)
    assert obj["spec"]["versions"][0]["served"] is True
    assert obj["spec"]["nameValidation"] == "DNS1123Subdomain"
    assert SCHEMAS.validate(obj) == []


def test_a_schema_pattern_must_compile() -> None:
    obj = widget_schema()
    size = obj["spec"]["versions"][0]["schema"]["properties"]["spec"]["properties"]
    size["code"] = {"type": "string", "pattern": "(["}
    [cause] = SCHEMAS.validate(obj)
    assert cause.field.endswith("properties[spec].properties[code].pattern")
    assert "must be a valid regular expression" in cause.message


@pytest.mark.parametrize(("name", "message"), [
    ("widgets.example.io", "must end in .widgets.example.io"),
    ("v1.gadgets.example.io", "must end in .widgets.example.io"),
    ("V1.widgets.example.io", "must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ in front of "
                              ".widgets.example.io"),
])
def test_the_name_must_be_prefix_plural_group(name: str, message: str) -> None:
    assert causes(SCHEMAS.validate(widget_schema(name))) == [
        ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {message}')]


def test_the_core_group_is_empty_and_named_core() -> None:
    core = widget_schema("v1.widgets.core", group="")
    assert SCHEMAS.validate(core) == []
    named_core = widget_schema("v1.widgets.core", group="core")
    assert causes(SCHEMAS.validate(named_core)) == [
        ("FieldValueInvalid", "spec.group",
         'Invalid value: "core": must be empty string for the core group')]
    assert fields(SCHEMAS.validate(widget_schema("v1.widgets.example", group="example"))) == [
        "spec.group"]


def test_the_spec_is_checked_like_a_crd_spec() -> None:
    no_versions = widget_schema(versions=[])
    assert causes(SCHEMAS.validate(no_versions)) == [
        ("FieldValueInvalid", "spec.versions",
         'Invalid value: "null": must have exactly one version marked as storage version')]
    two_storage = widget_schema()
    two_storage["spec"]["versions"].append(
        {"name": "v2", "served": True, "storage": True, "schema": {"type": "object"}})
    assert ("FieldValueInvalid", "spec.versions",
            "Invalid value: 2: must have exactly one version marked as storage version") in (
        causes(SCHEMAS.validate(two_storage)))
    untyped = widget_schema()
    del untyped["spec"]["versions"][0]["schema"]["properties"]["spec"]["type"]
    assert fields(SCHEMAS.validate(untyped)) == [
        "spec.versions[0].schema.properties[spec].type"]
    no_schema = widget_schema()
    del no_schema["spec"]["versions"][0]["schema"]
    assert fields(SCHEMAS.validate(no_schema)) == ["spec.versions[0].schema"]
    bad_column = widget_schema()
    bad_column["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = "color"
    assert fields(SCHEMAS.validate(bad_column)) == [
        "spec.versions[0].additionalPrinterColumns[0].type"]
    bad_scope = widget_schema(scope="Galaxy")
    assert fields(SCHEMAS.validate(bad_scope)) == ["spec.scope"]


def test_all_four_names_are_required_as_in_kcp() -> None:
    obj = widget_schema(names={"plural": "widgets", "kind": "Widget"})
    assert causes(SCHEMAS.validate(obj)) == [
        ("FieldValueRequired", "spec.names.singular", "Required value"),
        ("FieldValueRequired", "spec.names.listKind", "Required value")]


def test_the_spec_is_immutable() -> None:
    old = widget_schema()
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert SCHEMAS.validate_update(new, old) == []
    new["spec"]["scope"] = "Cluster"
    found = SCHEMAS.validate_update(new, old)
    assert fields(found) == ["spec"]
    assert found[0].message.endswith(": field is immutable")


async def test_schemas_through_the_store(store: Store) -> None:
    rt = builtin.API_RESOURCE_SCHEMAS
    created = await store.create(target(rt), widget_schema(), WriteOptions())
    assert created["spec"]["nameValidation"] == "DNS1123Subdomain"
    with pytest.raises(StatusError) as bad_name:
        await store.create(target(rt), widget_schema("v1.things.example.io"), WriteOptions())
    assert bad_name.value.code == 422
    assert bad_name.value.message == (
        'APIResourceSchema.apis.kcp.io "v1.things.example.io" is invalid: metadata.name: '
        'Invalid value: "v1.things.example.io": must end in .widgets.example.io')
    with pytest.raises(StatusError) as changed:
        await store.patch(target(rt, "v1.widgets.example.io"), MERGE_PATCH,
                          {"spec": {"scope": "Cluster"}}, WriteOptions())
    assert changed.value.code == 422
    assert "field is immutable" in changed.value.message
    labelled = await store.patch(target(rt, "v1.widgets.example.io"), MERGE_PATCH,
                                 {"metadata": {"labels": {"team": "a"}}}, WriteOptions())
    assert labelled["metadata"]["labels"] == {"team": "a"}
    # A PUT of the original manifest (without the defaults) is no change to the spec.
    again = widget_schema()
    again["metadata"]["resourceVersion"] = labelled["metadata"]["resourceVersion"]
    updated = await store.update(target(rt, "v1.widgets.example.io"), again, WriteOptions())
    assert updated["spec"] == created["spec"]


# --- APIExport -----------------------------------------------------------------------------

EXPORTS = APIExportStrategy(builtin.API_EXPORTS)
EXPORTS_V1 = APIExportV1Alpha1Strategy(builtin.API_EXPORTS_V1ALPHA1)


def test_valid_exports_pass_in_both_versions() -> None:
    assert EXPORTS.validate(V2_EXPORT) == []
    assert EXPORTS_V1.validate(V1_EXPORT) == []
    assert EXPORTS.validate({"metadata": {"name": "empty"}}) == []


def test_export_resources_need_group_name_and_a_matching_schema() -> None:
    obj = {"spec": {"resources": [
        {"name": "widgets", "schema": "v1.widgets.example.io"},
        {"group": "example.io", "schema": "v1.widgets.example.io"},
        {"group": "example.io", "name": "widgets"},
        {"group": "example.io", "name": "widgets", "schema": "v1.gadgets.example.io"},
        {"group": "", "name": "configmaps", "schema": "v1.configmaps"},
        {"group": "example.io", "name": "widgets", "schema": "V1.widgets.example.io"},
    ]}}
    assert causes(EXPORTS.validate(obj)) == [
        ("FieldValueRequired", "spec.resources[0].group", "Required value"),
        ("FieldValueRequired", "spec.resources[1].name", "Required value"),
        ("FieldValueRequired", "spec.resources[2].schema", "Required value"),
        ("FieldValueInvalid", "spec.resources[3].schema",
         'Invalid value: "v1.gadgets.example.io": must end in .widgets.example.io'),
        ("FieldValueDuplicate", "spec.resources[3]",
         'Duplicate value: {"group":"example.io","name":"widgets"}'),
        ("FieldValueInvalid", "spec.resources[4].schema",
         'Invalid value: "v1.configmaps": must end in .configmaps.core'),
        ("FieldValueInvalid", "spec.resources[5].schema",
         'Invalid value: "V1.widgets.example.io": must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ '
         "in front of .widgets.example.io"),
        ("FieldValueDuplicate", "spec.resources[5]",
         'Duplicate value: {"group":"example.io","name":"widgets"}'),
    ]


def test_export_resources_are_stored_as_crds_only() -> None:
    base = {"group": "example.io", "name": "widgets", "schema": "v1.widgets.example.io"}
    virtual = {**base, "storage": {"virtual": {"reference": {"kind": "K", "name": "n"}}}}
    both = {**base, "storage": {"crd": {}, "virtual": {}}}
    assert fields(EXPORTS.validate({"spec": {"resources": [virtual]}})) == [
        "spec.resources[0].storage.virtual"]
    assert fields(EXPORTS.validate({"spec": {"resources": [both]}})) == [
        "spec.resources[0].storage"]


def test_export_claims_need_a_resource_and_verbs_and_no_duplicates() -> None:
    obj = {"spec": {"permissionClaims": [
        {"group": "", "verbs": ["*"]},
        {"group": "", "resource": "secrets"},
        {"group": "", "resource": "secrets", "verbs": ["get", "get"]},
        {"group": "", "resource": "Not A Resource", "verbs": ["*"]},
        {"group": "core.kcp.io", "resource": "logicalclusters", "verbs": ["*"]},
    ]}}
    assert fields(EXPORTS.validate(obj)) == [
        "spec.permissionClaims[0].resource",
        "spec.permissionClaims[1].verbs",
        "spec.permissionClaims[2].verbs[1]",
        "spec.permissionClaims[2]",
        "spec.permissionClaims[3].resource",
        "spec.permissionClaims[4]",
    ]
    assert causes(EXPORTS.validate(obj))[3] == (
        "FieldValueDuplicate", "spec.permissionClaims[2]",
        'Duplicate value: {"group":"","resource":"secrets"}')


def test_v1alpha1_export_rules() -> None:
    obj = {"spec": {
        "latestResourceSchemas": ["widgets.example", "v1.widgets.example.io",
                                  "v1.widgets.example.io"],
        "permissionClaims": [
            {"group": "", "resource": "secrets"},
            {"group": "", "resource": "configmaps", "resourceSelector": [{"name": "a"}]},
        ],
    }}
    assert causes(EXPORTS_V1.validate(obj)) == [
        ("FieldValueInvalid", "spec.latestResourceSchemas[0]",
         'Invalid value: "widgets.example": must be an APIResourceSchema name, '
         "<prefix>.<plural>.<group>"),
        ("FieldValueDuplicate", "spec.latestResourceSchemas[2]",
         'Duplicate value: "v1.widgets.example.io"'),
        ("FieldValueRequired", "spec.permissionClaims[0].all",
         'Required value: either "all" or "resourceSelector" must be set'),
        ("FieldValueForbidden", "spec.permissionClaims[1].resourceSelector",
         "Forbidden: kplane does not support resourceSelector: a claim covers all objects "
         "of its resource (all: true)"),
        ("FieldValueRequired", "spec.permissionClaims[1].all",
         'Required value: either "all" or "resourceSelector" must be set'),
    ]


def test_a_v1alpha1_export_with_a_broken_stash_is_refused() -> None:
    obj = copy.deepcopy(V1_EXPORT)
    obj["metadata"]["annotations"][RESOURCE_SCHEMAS_ANNOTATION] = "not json"
    assert fields(EXPORTS_V1.validate(obj)) == [
        f"metadata.annotations[{RESOURCE_SCHEMAS_ANNOTATION}]"]
    obj["metadata"]["annotations"][RESOURCE_SCHEMAS_ANNOTATION] = orjson.dumps(
        [{"group": "example.io", "name": "gizmos"}]).decode()
    # The stashed entry is checked as it would be stored.
    assert fields(EXPORTS_V1.validate(obj)) == ["spec.resources[2].schema"]


def test_export_defaults_and_identity_hash_immutability() -> None:
    obj: dict[str, Any] = {"spec": {
        "permissionClaims": [{"resource": "secrets", "verbs": ["*"]}],
        "resources": [{"group": "example.io", "name": "widgets",
                       "schema": "v1.widgets.example.io"}]},
        "status": {"identityHash": "x"}}
    EXPORTS.prepare_for_create(obj)
    assert "status" not in obj
    assert obj["spec"]["permissionClaims"] == [
        {"resource": "secrets", "verbs": ["*"], "group": "", "identityHash": ""}]
    assert obj["spec"]["resources"][0]["storage"] == {"crd": {}}
    unset = {**obj, "status": {}}
    assert EXPORTS.validate_update({**obj, "status": {"identityHash": "a"}}, unset) == []
    found = EXPORTS.validate_update({**obj, "status": {"identityHash": "b"}},
                                    {**obj, "status": {"identityHash": "a"}})
    assert causes(found) == [("FieldValueInvalid", "status.identityHash",
                              'Invalid value: "b": field is immutable')]


def test_export_printer_columns() -> None:
    obj = {**V2_EXPORT, "metadata": {"name": "widgets",
                                     "creationTimestamp": "2025-01-02T03:04:05Z"}}
    table = table_for_kind(EXPORTS, [obj])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    v1 = {**obj, "status": {"conditions": [
        {"type": "VirtualWorkspaceURLsReady", "status": "True",
         "lastTransitionTime": "2025-01-02T03:04:05Z"}]}}
    table = table_for_kind(EXPORTS_V1, [v1])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age", "Ready"]
    assert table["rows"][0]["cells"][2] == "True"


async def test_exports_through_the_store_in_both_versions(store: Store) -> None:
    v1_rt, v2_rt = builtin.API_EXPORTS_V1ALPHA1, builtin.API_EXPORTS
    body = copy.deepcopy(V1_EXPORT)
    del body["status"]
    created = await store.create(target(v1_rt), body, WriteOptions())
    assert created["apiVersion"] == V1
    stored = await read_as(store, v2_rt, "widgets")
    assert stored["apiVersion"] == V2
    assert stored["spec"] == V2_EXPORT["spec"]

    # A v1alpha2 client narrows a claim; a v1alpha1 client reads and writes the object back
    # (changing something else) and the narrowed verbs survive.
    await store.patch(target(v2_rt, "widgets"), MERGE_PATCH, {"spec": {"permissionClaims": [
        {"group": "", "resource": "secrets", "identityHash": "", "verbs": ["get", "list"]},
        stored["spec"]["permissionClaims"][1]]}}, WriteOptions())
    seen = await read_as(store, v1_rt, "widgets")
    assert seen["spec"]["permissionClaims"][0] == {
        "group": "", "resource": "secrets", "identityHash": "", "all": True}
    assert PERMISSION_CLAIMS_ANNOTATION in seen["metadata"]["annotations"]
    seen["spec"]["latestResourceSchemas"] = ["v1.widgets.example.io"]
    await store.update(target(v1_rt, "widgets"), seen, WriteOptions())
    after = await read_as(store, v2_rt, "widgets")
    assert after["spec"]["permissionClaims"][0]["verbs"] == ["get", "list"]
    assert [r["name"] for r in after["spec"]["resources"]] == ["widgets"]
    assert PERMISSION_CLAIMS_ANNOTATION not in after["metadata"]["annotations"]

    # status: written through the subresource, identityHash fixed once set.
    status_body = {**after, "status": {"identityHash": "f00d"}}
    written = await store.update(target(v2_rt, "widgets"), status_body, WriteOptions(),
                                 subresource="status")
    assert written["status"] == {"identityHash": "f00d"}
    with pytest.raises(StatusError) as changed:
        await store.update(target(v2_rt, "widgets"),
                           {**written, "status": {"identityHash": "beef"}}, WriteOptions(),
                           subresource="status")
    assert changed.value.code == 422
    main = await store.update(target(v2_rt, "widgets"), {**written, "status": {}},
                              WriteOptions())
    assert main["status"] == {"identityHash": "f00d"}

    with pytest.raises(StatusError) as bad:
        await store.create(target(v1_rt), {
            "apiVersion": V1, "kind": "APIExport", "metadata": {"name": "broken"},
            "spec": {"latestResourceSchemas": ["nodots"]}}, WriteOptions())
    assert bad.value.code == 422
    assert [c.field for c in bad.value.causes] == ["spec.latestResourceSchemas[0]"]


# --- APIBinding ----------------------------------------------------------------------------

BINDINGS = APIBindingStrategy(builtin.API_BINDINGS)
BINDINGS_V1 = APIBindingV1Alpha1Strategy(builtin.API_BINDINGS_V1ALPHA1)


def test_a_binding_needs_an_export_name() -> None:
    assert BINDINGS.validate(V2_BINDING) == []
    assert BINDINGS_V1.validate(V1_BINDING) == []
    assert causes(BINDINGS.validate({"metadata": {"name": "b"}})) == [
        ("FieldValueRequired", "spec", "Required value")]
    assert causes(BINDINGS.validate({"spec": {}})) == [
        ("FieldValueRequired", "spec.reference", "Required value")]
    assert causes(BINDINGS_V1.validate({"spec": {"reference": {"export": {"path": "root"}}}})
                  ) == [("FieldValueRequired", "spec.reference.export.name", "Required value")]
    assert fields(BINDINGS.validate(
        {"spec": {"reference": {"export": {"name": "x", "path": "Root/Bad"}}}})) == [
        "spec.reference.export.path"]


def test_binding_claims_rules() -> None:
    claims = [
        {"group": "", "resource": "secrets", "verbs": ["*"], "selector": {"matchAll": True}},
        {"group": "", "resource": "configmaps", "verbs": ["*"], "selector": {},
         "state": "Maybe"},
        {"group": "", "resource": "pods", "verbs": ["*"],
         "selector": {"matchAll": True, "matchLabels": {"a": "b"}}, "state": "Accepted"},
        {"group": "", "resource": "secrets", "verbs": ["*"], "selector": {"matchAll": True},
         "state": "Accepted"},
    ]
    obj = {"spec": {"reference": {"export": {"name": "e"}}, "permissionClaims": claims}}
    assert causes(BINDINGS.validate(obj)) == [
        ("FieldValueDuplicate", "spec.permissionClaims[3]",
         'Duplicate value: {"group":"","identityHash":"","resource":"secrets"}'),
        ("FieldValueRequired", "spec.permissionClaims[0].state", "Required value"),
        ("FieldValueNotSupported", "spec.permissionClaims[1].state",
         'Unsupported value: "Maybe": supported values: "Accepted", "Rejected"'),
        ("FieldValueRequired", "spec.permissionClaims[1].selector",
         "Required value: either one of matchAll, matchLabels, or matchExpressions must be "
         "set"),
        ("FieldValueInvalid", "spec.permissionClaims[2].selector.matchLabels",
         'Invalid value: {"a":"b"}: matchLabels cannot be used with matchAll'),
    ]
    v1 = {"spec": {"reference": {"export": {"name": "e"}}, "permissionClaims": [
        {"group": "", "resource": "secrets", "state": "Accepted"}]}}
    assert fields(BINDINGS_V1.validate(v1)) == ["spec.permissionClaims[0].all"]


def test_binding_reference_selectors_and_phase_only_move_forward() -> None:
    old = copy.deepcopy(V2_BINDING)
    moved = copy.deepcopy(old)
    moved["spec"]["reference"]["export"]["name"] = "other"
    assert causes(BINDINGS.validate_update(moved, old)) == [
        ("FieldValueInvalid", "spec.reference",
         'Invalid value: {"export":{"name":"other","path":"root:providers"}}: '
         "field is immutable")]
    rescoped = copy.deepcopy(old)
    rescoped["spec"]["permissionClaims"][0]["selector"] = {"matchLabels": {"a": "b"}}
    assert fields(BINDINGS.validate_update(rescoped, old)) == [
        "spec.permissionClaims[0].selector"]
    answered = copy.deepcopy(old)
    answered["spec"]["permissionClaims"][0]["state"] = "Rejected"
    assert BINDINGS.validate_update(answered, old) == []
    reset = copy.deepcopy(old)
    reset["status"]["phase"] = ""
    assert causes(BINDINGS.validate_update(reset, old)) == [
        ("FieldValueForbidden", "status.phase",
         'Forbidden: cannot transition from "Bound" to ""')]


def test_binding_printer_columns() -> None:
    obj = {**V2_BINDING, "metadata": {"name": "w", "creationTimestamp": "2025-01-02T03:04:05Z"},
           "status": {"conditions": [{"type": "Ready", "status": "False",
                                      "lastTransitionTime": "2025-01-02T03:04:05Z"}]}}
    for strategy in (BINDINGS, BINDINGS_V1):
        table = table_for_kind(strategy, [obj])
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age", "Ready"]
        assert table["rows"][0]["cells"][2] == "False"


def test_a_v1alpha1_client_cannot_rescope_a_claim_through_the_annotation() -> None:
    v2 = copy.deepcopy(V2_BINDING)
    v2["spec"]["permissionClaims"][0]["selector"] = {"matchLabels": {"share": "yes"}}
    old = binding_to_v1alpha1(v2)
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][ACCEPTABLE_CLAIMS_ANNOTATION] = orjson.dumps(
        [{"group": "", "resource": "secrets", "verbs": ["*"],
          "selector": {"matchLabels": {"share": "all"}}}]).decode()
    assert BINDINGS_V1.validate_update(old, old) == []
    assert fields(BINDINGS_V1.validate_update(new, old)) == [
        "spec.permissionClaims[0].selector"]


async def test_bindings_through_the_store_in_both_versions(store: Store) -> None:
    v1_rt, v2_rt = builtin.API_BINDINGS_V1ALPHA1, builtin.API_BINDINGS
    body = {key: value for key, value in V1_BINDING.items() if key != "status"}
    created = await store.create(target(v1_rt), body, WriteOptions())
    assert "status" not in created
    stored = await read_as(store, v2_rt, "widgets")
    assert stored["spec"] == V2_BINDING["spec"]

    with pytest.raises(StatusError) as moved:
        await store.patch(target(v1_rt, "widgets"), MERGE_PATCH,
                          {"spec": {"reference": {"export": {"name": "gadgets"}}}},
                          WriteOptions())
    assert moved.value.code == 422
    assert [c.field for c in moved.value.causes] == ["spec.reference"]
    assert "field is immutable" in moved.value.message

    # The controller writes status in v1alpha2; a v1alpha1 reader sees it converted.
    await store.update(target(v2_rt, "widgets"), {**stored, "status": V2_BINDING["status"]},
                       WriteOptions(), subresource="status")
    seen = await read_as(store, v1_rt, "widgets")
    assert seen["status"] == V1_BINDING["status"]
    assert seen["spec"] == V1_BINDING["spec"]

    with pytest.raises(StatusError) as nameless:
        await store.create(target(v1_rt), {
            "apiVersion": V1, "kind": "APIBinding", "metadata": {"name": "nameless"},
            "spec": {"reference": {"export": {"path": "root:providers"}}}}, WriteOptions())
    assert nameless.value.code == 422
    assert nameless.value.message == (
        'APIBinding.apis.kcp.io "nameless" is invalid: spec.reference.export.name: '
        "Required value")


# --- APIExportEndpointSlice ----------------------------------------------------------------

SLICES = APIExportEndpointSliceStrategy(builtin.API_EXPORT_ENDPOINT_SLICES)


def test_endpoint_slices_name_an_export_for_good() -> None:
    obj = {"spec": {"export": {"path": "root:providers", "name": "widgets"}}}
    assert SLICES.validate(obj) == []
    assert causes(SLICES.validate({"spec": {"export": {}}})) == [
        ("FieldValueRequired", "spec.export.name", "Required value")]
    assert causes(SLICES.validate({"spec": {}})) == [
        ("FieldValueRequired", "spec.export", "Required value")]
    moved = {"spec": {"export": {"path": "root:providers", "name": "gadgets"}}}
    assert fields(SLICES.validate_update(moved, obj)) == ["spec.export"]
    partitioned = {"spec": {**obj["spec"], "partition": "p"}}
    assert SLICES.validate_update(partitioned, obj) == []


async def test_endpoint_slice_status_through_the_store(store: Store) -> None:
    rt = builtin.API_EXPORT_ENDPOINT_SLICES
    created = await store.create(target(rt), {
        "apiVersion": V1, "kind": "APIExportEndpointSlice", "metadata": {"name": "widgets"},
        "spec": {"export": {"name": "widgets"}},
        "status": {"endpoints": [{"url": "https://ignored"}]}}, WriteOptions())
    assert "status" not in created
    url = "https://127.0.0.1:6443/services/apiexport/root/widgets"
    updated = await store.update(target(rt, "widgets"),
                                 {**created, "status": {"endpoints": [{"url": url}]}},
                                 WriteOptions(), subresource="status")
    assert updated["status"] == {"endpoints": [{"url": url}]}
    table = table_for_kind(store.catalog.strategy(rt), [updated])
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Export", "Partition", "Age"]
    assert table["rows"][0]["cells"][1] == "widgets"


# --- registration --------------------------------------------------------------------------


@pytest.mark.parametrize(("rt", "cls", "definition"), [
    (builtin.API_RESOURCE_SCHEMAS, APIResourceSchemaStrategy,
     "io.kcp.apis.v1alpha1.APIResourceSchema"),
    (builtin.API_EXPORTS, APIExportStrategy, "io.kcp.apis.v1alpha2.APIExport"),
    (builtin.API_EXPORTS_V1ALPHA1, APIExportV1Alpha1Strategy,
     "io.kcp.apis.v1alpha1.APIExport"),
    (builtin.API_BINDINGS, APIBindingStrategy, "io.kcp.apis.v1alpha2.APIBinding"),
    (builtin.API_BINDINGS_V1ALPHA1, APIBindingV1Alpha1Strategy,
     "io.kcp.apis.v1alpha1.APIBinding"),
    (builtin.API_EXPORT_ENDPOINT_SLICES, APIExportEndpointSliceStrategy,
     "io.kcp.apis.v1alpha1.APIExportEndpointSlice"),
])
def test_every_apis_kind_has_its_strategy_and_published_schema(
        rt: ResourceType, cls: type, definition: str) -> None:
    strategy = strategy_for(rt)
    assert type(strategy) is cls
    published = strategy.published_schema()
    assert published is not None and published[0] == definition
    assert strategy.name_validator("Not_A_Subdomain")
