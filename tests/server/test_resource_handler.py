"""Serving resource requests over ASGI: status codes, options, errors and representations."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kplane.registry import builtin
from kplane.registry.resources import ResourceType
from kplane.server.resource_handler import yaml_bytes, yaml_response
from tests.server.harness import Response, Stack, configmap

CMS = "/api/v1/namespaces/default/configmaps"
KUBECTL_TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                 "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
MERGE = [("content-type", "application/merge-patch+json")]
APPLY = [("content-type", "application/apply-patch+yaml")]


async def create(stack: Stack, name: str, **data: str) -> dict[str, Any]:
    response = await stack.request("POST", CMS, body=configmap(name, **data))
    assert response.status == 201, response.body
    created: dict[str, Any] = response.json()
    return created


def status_of(response: Response, code: int) -> dict[str, Any]:
    assert response.status == code, response.body
    body: dict[str, Any] = response.json()
    assert (body["kind"], body["apiVersion"], body["status"], body["code"]) == (
        "Status", "v1", "Failure", code)
    return body


async def test_create_is_201_with_the_stored_object(stack: Stack) -> None:
    response = await stack.request("POST", CMS, body=configmap("a", k="v"))
    assert response.status == 201
    assert response.header("content-type") == "application/json"
    obj = response.json()
    assert (obj["kind"], obj["apiVersion"], obj["data"]) == ("ConfigMap", "v1", {"k": "v"})
    meta = obj["metadata"]
    assert (meta["name"], meta["namespace"]) == ("a", "default")
    assert meta["resourceVersion"] == str(stack.cacher.revision)
    assert meta["uid"] and meta["creationTimestamp"]
    got = await stack.request("GET", f"{CMS}/a")
    assert (got.status, got.json()) == (200, obj)


async def test_create_twice_is_409(stack: Stack) -> None:
    await create(stack, "a")
    body = status_of(await stack.request("POST", CMS, body=configmap("a")), 409)
    assert (body["reason"], body["message"]) == ("AlreadyExists",
                                                 'configmaps "a" already exists')


async def test_get_missing_is_404_with_details(stack: Stack) -> None:
    body = status_of(await stack.request("GET", f"{CMS}/nope"), 404)
    assert body["message"] == 'configmaps "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "configmaps"}


async def test_update_is_200(stack: Stack) -> None:
    created = await create(stack, "a", k="v")
    created["data"] = {"k": "w"}
    response = await stack.request("PUT", f"{CMS}/a", body=created)
    assert response.status == 200
    updated = response.json()
    assert updated["data"] == {"k": "w"}
    assert int(updated["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"])


async def test_update_with_a_stale_resource_version_is_409(stack: Stack) -> None:
    created = await create(stack, "a", k="v")
    assert (await stack.request("PATCH", f"{CMS}/a", body={"data": {"k": "x"}},
                                headers=MERGE)).status == 200
    body = status_of(await stack.request("PUT", f"{CMS}/a", body=created), 409)
    assert body["reason"] == "Conflict"


@pytest.mark.parametrize(("content_type", "patch"), [
    ("application/merge-patch+json", {"data": {"k": "p"}}),
    ("application/strategic-merge-patch+json", {"data": {"k": "p"}}),
    ("application/json-patch+json", [{"op": "replace", "path": "/data/k", "value": "p"}]),
])
async def test_patch_types_are_200(stack: Stack, content_type: str, patch: Any) -> None:
    await create(stack, "a", k="v")
    response = await stack.request("PATCH", f"{CMS}/a", body=patch,
                                   headers=[("content-type", content_type)])
    assert response.status == 200
    assert response.json()["data"] == {"k": "p"}


async def test_apply_creates_with_201_then_updates_with_200(stack: Stack) -> None:
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"
    first = await stack.request("PATCH", f"{CMS}/a", query="fieldManager=me", body=doc,
                                headers=APPLY)
    assert first.status == 201
    assert first.json()["metadata"]["managedFields"][0]["manager"] == "me"
    again = await stack.request("PATCH", f"{CMS}/a", query="fieldManager=me",
                                body=doc.replace(b"k: v", b"k: w"), headers=APPLY)
    assert again.status == 200
    assert again.json()["data"] == {"k": "w"}


async def test_unknown_patch_content_type_is_415_listing_the_accepted(stack: Stack) -> None:
    await create(stack, "a")
    body = status_of(await stack.request("PATCH", f"{CMS}/a", body={},
                                         headers=[("content-type", "application/json")]), 415)
    assert body["reason"] == "UnsupportedMediaType"
    assert body["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml, "
        "application/apply-patch+cbor")


async def test_cbor_apply_is_415(stack: Stack) -> None:
    body = status_of(await stack.request(
        "PATCH", f"{CMS}/a", query="fieldManager=me", body=b"\xa0",
        headers=[("content-type", "application/apply-patch+cbor")]), 415)
    assert "application/apply-patch+cbor" not in body["message"]


async def test_strategic_merge_on_a_kind_without_it_is_415(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    widgets = dataclasses.replace(builtin.CONFIGMAPS, group="example.com", resource="widgets",
                                  kind="Widget", supports_strategic_merge=False)
    lookup = stack.catalog.lookup

    def with_widgets(cluster: str, group: str, version: str,
                     resource: str) -> ResourceType | None:
        if (group, resource) == ("example.com", "widgets"):
            return widgets
        return lookup(cluster, group, version, resource)

    monkeypatch.setattr(stack.catalog, "lookup", with_widgets)
    body = status_of(await stack.request(
        "PATCH", "/apis/example.com/v1/namespaces/default/widgets/w", body={},
        headers=[("content-type", "application/strategic-merge-patch+json")]), 415)
    assert body["message"].endswith(
        "accepted media types include: application/json-patch+json, "
        "application/merge-patch+json, application/apply-patch+yaml, "
        "application/apply-patch+cbor")


@pytest.mark.parametrize("content_type", ["text/plain", "application/merge-patch+json"])
async def test_create_with_an_unknown_content_type_is_415(stack: Stack,
                                                          content_type: str) -> None:
    body = status_of(await stack.request("POST", CMS, body=configmap("a"),
                                         headers=[("content-type", content_type)]), 415)
    assert body["message"].endswith("accepted media types include: application/json, "
                                    "application/yaml, application/vnd.kubernetes.protobuf")


async def test_create_from_yaml(stack: Stack) -> None:
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n"
    response = await stack.request("POST", CMS, body=doc,
                                   headers=[("content-type", "application/yaml")])
    assert response.status == 201
    assert response.json()["data"] == {"k": "v"}


@pytest.mark.parametrize("force", ["true", "false"])
async def test_force_with_a_non_apply_patch_is_422(stack: Stack, force: str) -> None:
    await create(stack, "a", k="v")
    body = status_of(await stack.request("PATCH", f"{CMS}/a", query=f"force={force}",
                                         body={"data": {"k": "w"}}, headers=MERGE), 422)
    assert (body["reason"], body["message"]) == (
        "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: '
        "force: Forbidden: may not be specified for non-apply patch")
    assert (await stack.request("GET", f"{CMS}/a")).json()["data"] == {"k": "v"}


async def test_force_with_apply_takes_ownership(stack: Stack) -> None:
    await create(stack, "a", k="v")
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: mine\n"
    conflict = status_of(await stack.request("PATCH", f"{CMS}/a", query="fieldManager=me",
                                             body=doc, headers=APPLY), 409)
    assert conflict["reason"] == "Conflict"
    forced = await stack.request("PATCH", f"{CMS}/a", query="fieldManager=me&force=true",
                                 body=doc, headers=APPLY)
    assert (forced.status, forced.json()["data"]) == (200, {"k": "mine"})


async def test_apply_without_field_manager_is_422_whatever_the_user_agent(
        stack: Stack) -> None:
    body = status_of(await stack.request(
        "PATCH", f"{CMS}/a", body=b"{}",
        headers=[*APPLY, ("user-agent", "kubectl/v1.35.0 (linux/amd64)")]), 422)
    assert body["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                               "Required value: is required for apply patch")
    assert (await stack.request("GET", f"{CMS}/a")).status == 404


async def test_dry_run_all_persists_nothing(stack: Stack) -> None:
    revision = stack.cacher.revision
    response = await stack.request("POST", CMS, query="dryRun=All", body=configmap("a"))
    assert response.status == 201
    assert response.json()["metadata"]["name"] == "a"
    assert await stack.backend.current_revision() == revision
    assert (await stack.request("GET", f"{CMS}/a")).status == 404


@pytest.mark.parametrize(("method", "kind"), [("POST", "CreateOptions"),
                                              ("PUT", "UpdateOptions"),
                                              ("PATCH", "PatchOptions")])
async def test_unsupported_dry_run_is_422_naming_the_options(stack: Stack, method: str,
                                                             kind: str) -> None:
    await create(stack, "a")
    path = CMS if method == "POST" else f"{CMS}/a"
    headers = MERGE if method == "PATCH" else []
    body = status_of(await stack.request(method, path, query="dryRun=Some",
                                         body=configmap("a"), headers=headers), 422)
    assert body["message"] == (f'{kind}.meta.k8s.io "" is invalid: dryRun: Unsupported '
                               'value: "Some": supported values: "All"')
    assert body["details"]["causes"] == [{
        "reason": "FieldValueNotSupported", "field": "dryRun",
        "message": 'Unsupported value: "Some": supported values: "All"'}]


async def test_unsupported_field_validation_is_422(stack: Stack) -> None:
    body = status_of(await stack.request("POST", CMS, query="fieldValidation=strict",
                                         body=configmap("a")), 422)
    assert body["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
        '"strict": supported values: "", "Ignore", "Warn", "Strict"')


async def test_field_manager_too_long_or_unprintable_is_422(stack: Stack) -> None:
    ok = await stack.request("POST", CMS, query="fieldManager=" + "m" * 128,
                             body=configmap("a"))
    assert ok.status == 201
    body = status_of(await stack.request("POST", CMS, query="fieldManager=" + "m" * 129,
                                         body=configmap("b")), 422)
    assert body["message"] == ('CreateOptions.meta.k8s.io "" is invalid: fieldManager: '
                               "Too long: must have at most 128 bytes")
    body = status_of(await stack.request("POST", CMS, query="fieldManager=a%0Ab",
                                         body=configmap("c")), 422)
    assert "must only contain printable characters" in body["message"]


async def test_field_manager_defaults_to_the_user_agent(stack: Stack) -> None:
    response = await stack.request("POST", CMS, body=configmap("a"),
                                   headers=[("user-agent", "kubectl/v1.35.0 (linux/amd64)")])
    assert response.json()["metadata"]["managedFields"][0]["manager"] == "kubectl"


async def test_unknown_fields_warn_by_default(stack: Stack) -> None:
    body = configmap("a")
    body["spec"] = {"x": 1}
    response = await stack.request("POST", CMS, body=body)
    assert response.status == 201
    assert response.header_values("warning") == ['299 - "unknown field \\"spec\\""']
    assert "spec" not in response.json()


async def test_unknown_field_with_a_newline_still_gets_a_sendable_warning(stack: Stack) -> None:
    body = configmap("a")
    body["bad\nkey"] = 1
    response = await stack.request("POST", CMS, body=body)
    assert response.status == 201
    [warning] = response.header_values("warning")
    assert "\n" not in warning
    assert "bad\\u000akey" in warning


async def test_unknown_fields_ignored_or_strict(stack: Stack) -> None:
    body = configmap("a")
    body["spec"] = {"x": 1}
    ignored = await stack.request("POST", CMS, query="fieldValidation=Ignore", body=body)
    assert (ignored.status, ignored.header_values("warning")) == (201, [])
    body["metadata"]["name"] = "b"
    strict = status_of(await stack.request("POST", CMS, query="fieldValidation=Strict",
                                           body=body), 400)
    assert strict["message"] == 'strict decoding error: unknown field "spec"'


async def test_delete_is_a_success_status_with_details(stack: Stack) -> None:
    created = await create(stack, "a")
    response = await stack.request("DELETE", f"{CMS}/a")
    assert response.status == 200
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": "a", "group": "", "kind": "configmaps",
                    "uid": created["metadata"]["uid"]},
    }
    assert (await stack.request("GET", f"{CMS}/a")).status == 404


async def test_delete_held_by_finalizers_returns_the_object(stack: Stack) -> None:
    body = configmap("a")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    assert (await stack.request("POST", CMS, body=body)).status == 201
    response = await stack.request("DELETE", f"{CMS}/a")
    assert response.status == 200
    obj = response.json()
    assert obj["kind"] == "ConfigMap"
    assert obj["metadata"]["deletionTimestamp"]
    assert obj["metadata"]["finalizers"] == ["example.com/hold"]
    still = await stack.request("GET", f"{CMS}/a")
    assert still.json()["metadata"]["deletionTimestamp"] == obj["metadata"]["deletionTimestamp"]


async def test_delete_with_options_in_the_body(stack: Stack) -> None:
    created = await create(stack, "a")
    wrong = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "nope"}}
    assert status_of(await stack.request("DELETE", f"{CMS}/a", body=wrong), 409)
    right = {"preconditions": {"uid": created["metadata"]["uid"]}, "dryRun": ["All"]}
    assert (await stack.request("DELETE", f"{CMS}/a", body=right)).status == 200
    assert (await stack.request("GET", f"{CMS}/a")).status == 200


async def test_delete_with_bad_options_is_422(stack: Stack) -> None:
    await create(stack, "a")
    body = status_of(await stack.request("DELETE", f"{CMS}/a",
                                         query="propagationPolicy=Sideways"), 422)
    assert body["message"].startswith('DeleteOptions.meta.k8s.io "" is invalid: '
                                      'propagationPolicy: Unsupported value: "Sideways"')
    assert status_of(await stack.request("DELETE", f"{CMS}/a", body=[1]), 400)


@pytest.mark.parametrize(("body", "query", "words"), [
    ({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": "x"}, "",
     "DeleteOptions.preconditions of type v1.Preconditions"),
    ({"preconditions": ["x"]}, "", "DeleteOptions.preconditions of type v1.Preconditions"),
    ({"preconditions": {"uid": 1}}, "", "DeleteOptions.preconditions.uid of type types.UID"),
    ({"preconditions": {"resourceVersion": 1}}, "",
     "DeleteOptions.preconditions.resourceVersion of type string"),
    ({"gracePeriodSeconds": "abc"}, "", "DeleteOptions.gracePeriodSeconds of type int64"),
    ({"orphanDependents": "yes"}, "", "DeleteOptions.orphanDependents of type bool"),
    ({"dryRun": "All"}, "", "DeleteOptions.dryRun of type []string"),
    ({"kind": "Pod", "apiVersion": "v1"}, "", 'no kind "Pod"'),
    (b"", "gracePeriodSeconds=abc", "gracePeriodSeconds: Invalid value"),
    (b"", "gracePeriodSeconds=99999999999999999999", "gracePeriodSeconds: Invalid value"),
])
async def test_delete_with_options_of_the_wrong_type_is_400_and_deletes_nothing(
        stack: Stack, body: Any, query: str, words: str) -> None:
    await create(stack, "a")
    response = await stack.request("DELETE", f"{CMS}/a", body=body, query=query)
    status = status_of(response, 400)
    assert status["reason"] == "BadRequest"
    assert words in status["message"]
    assert (await stack.request("GET", f"{CMS}/a")).status == 200
    collection = await stack.request("DELETE", CMS, body=body, query=query)
    assert status_of(collection, 400)["message"] == status["message"]
    assert [o["metadata"]["name"] for o in (await stack.request("GET", CMS)).json()["items"]] == [
        "a"]


@pytest.mark.parametrize(("body", "query"), [
    ({"propagationPolicy": "Sideways"}, ""),
    ({"orphanDependents": True, "propagationPolicy": "Orphan"}, ""),
    ({"dryRun": ["All", "Maybe"]}, ""),
    (b"", "dryRun=All&dryRun=Maybe"),
    (b"", "propagationPolicy="),
])
async def test_delete_with_invalid_option_values_is_422_and_deletes_nothing(
        stack: Stack, body: Any, query: str) -> None:
    await create(stack, "a")
    status = status_of(await stack.request("DELETE", f"{CMS}/a", body=body, query=query), 422)
    assert status["details"]["kind"] == "DeleteOptions"
    assert (await stack.request("GET", f"{CMS}/a")).status == 200


async def test_delete_with_a_body_ignores_the_query_as_upstream(stack: Stack) -> None:
    await create(stack, "a")
    await create(stack, "b")
    response = await stack.request("DELETE", f"{CMS}/a", body={"dryRun": ["All"]},
                                   query="gracePeriodSeconds=abc")
    assert response.status == 200
    assert (await stack.request("GET", f"{CMS}/a")).status == 200
    # ... so a dry run asked for only in the query is not one when a body comes too.
    gone = await stack.request("DELETE", f"{CMS}/b", body={}, query="dryRun=All")
    assert gone.status == 200
    assert (await stack.request("GET", f"{CMS}/b")).status == 404


async def test_delete_with_a_negative_grace_period_deletes_at_once(stack: Stack) -> None:
    await create(stack, "a")
    response = await stack.request("DELETE", f"{CMS}/a", query="gracePeriodSeconds=-5")
    assert response.json()["status"] == "Success"
    assert (await stack.request("GET", f"{CMS}/a")).status == 404


async def test_delete_options_in_an_unsupported_content_type_are_415(stack: Stack) -> None:
    await create(stack, "a")
    response = await stack.request("DELETE", f"{CMS}/a", body=b"dryRun=All",
                                   headers=[("content-type", "application/x-www-form-urlencoded")])
    assert status_of(response, 415)["reason"] == "UnsupportedMediaType"
    assert (await stack.request("GET", f"{CMS}/a")).status == 200


async def test_deletecollection_returns_the_deleted_objects(stack: Stack) -> None:
    await create(stack, "a")
    await create(stack, "b")
    response = await stack.request("DELETE", CMS)
    assert response.status == 200
    body = response.json()
    assert (body["kind"], body["apiVersion"]) == ("ConfigMapList", "v1")
    assert [o["metadata"]["name"] for o in body["items"]] == ["a", "b"]
    assert body["metadata"]["resourceVersion"] == str(stack.cacher.revision)
    assert (await stack.request("GET", CMS)).json()["items"] == []


async def test_deletecollection_on_namespaces_is_405(stack: Stack) -> None:
    body = status_of(await stack.request("DELETE", "/api/v1/namespaces"), 405)
    assert body["reason"] == "MethodNotAllowed"
    assert body["message"] == (
        "deletecollection is not supported on resources of kind namespaces")


async def test_post_to_a_named_object_is_405(stack: Stack) -> None:
    await create(stack, "a")
    assert status_of(await stack.request("POST", f"{CMS}/a", body=configmap("a")),
                     405)["reason"] == "MethodNotAllowed"


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/default/widgets",
    "/apis/example.com/v1/namespaces/default/widgets",
    "/api/v2/namespaces/default/configmaps",
    "/api/v1/namespaces/default/configmaps/a/status",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/clusterroles",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/default/clusterroles/admin",
    "/api/v1/namespaces/default/namespaces",
    "/api/v1/namespaces/default/namespaces/default",
])
async def test_unknown_resources_and_subresources_are_404(stack: Stack, path: str) -> None:
    await create(stack, "a")
    body = status_of(await stack.request("GET", path), 404)
    assert body["message"] == "the server could not find the requested resource"


async def test_list_is_a_typed_list_with_the_cache_revision(stack: Stack) -> None:
    a = await create(stack, "a")
    b = await create(stack, "b")
    response = await stack.request("GET", CMS)
    assert response.status == 200
    assert response.json() == {"kind": "ConfigMapList", "apiVersion": "v1",
                               "metadata": {"resourceVersion": str(stack.cacher.revision)},
                               "items": [a, b]}


async def test_list_pages(stack: Stack) -> None:
    for name in "abc":
        await create(stack, name)
    first = (await stack.request("GET", CMS, query="limit=2")).json()
    assert [o["metadata"]["name"] for o in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    token = first["metadata"]["continue"]
    second = (await stack.request("GET", CMS, query=f"limit=2&continue={token}")).json()
    assert [o["metadata"]["name"] for o in second["items"]] == ["c"]
    assert "continue" not in second["metadata"]


@pytest.mark.parametrize("query", [
    "limit=x", "limit=-1", "limit=", "limit=%205", "limit=1.5", "limit=99999999999999999999999",
    "timeoutSeconds=abc", "timeoutSeconds=", "timeoutSeconds=99999999999999999999",
    "limit=2&timeoutSeconds=1e3",
])
async def test_bad_integer_list_parameters_are_400(stack: Stack, query: str) -> None:
    body = status_of(await stack.request("GET", CMS, query=query), 400)
    assert body["reason"] == "BadRequest"
    assert body["message"].split(":")[0] in ("limit", "timeoutSeconds")


async def test_good_integer_list_parameters(stack: Stack) -> None:
    await create(stack, "a")
    await create(stack, "b")
    for query in ("limit=%2B1", "limit=01", "limit=1&timeoutSeconds=-5"):
        response = await stack.request("GET", CMS, query=query)
        assert response.status == 200, (query, response.body)
        assert len(response.json()["items"]) == 1
    assert len((await stack.request("GET", CMS, query="timeoutSeconds=30")).json()["items"]) == 2


async def test_watch_query_flags_convert_as_upstream(stack: Stack) -> None:
    await create(stack, "a")
    # Upstream's bool conversion: anything but "0"/"false" is true, so this is a watch.
    async with stack.watch(CMS, query="watch=maybe&timeoutSeconds=30") as watch:
        assert watch.status == 200
        [event] = await watch.events(1)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "a")
    listed = await stack.request("GET", CMS, query="watch=FALSE")
    assert listed.json()["kind"] == "ConfigMapList"


@pytest.mark.parametrize("query", ["timeoutSeconds=abc", "timeoutSeconds=-1",
                                   "timeoutSeconds=99999999999999999999", "limit=zz"])
async def test_bad_watch_parameters_are_400(stack: Stack, query: str) -> None:
    response = await stack.request("GET", CMS, query=f"watch=1&{query}")
    assert status_of(response, 400)["reason"] == "BadRequest"


async def test_yaml_output_of_one_object_and_of_a_list(stack: Stack) -> None:
    created = await create(stack, "a", k="v")
    one = await stack.request("GET", f"{CMS}/a", headers=[("accept", "application/yaml")])
    assert (one.status, one.header("content-type")) == (200, "application/yaml")
    assert yaml.safe_load(one.body) == created
    assert one.body.startswith(b"apiVersion: v1\n")
    listed = await stack.request("GET", CMS, headers=[("accept", "application/yaml")])
    assert listed.header("content-type") == "application/yaml"
    assert yaml.safe_load(listed.body)["items"] == [created]


def realistic_configmaps() -> list[dict[str, Any]]:
    """What a YAML list really holds: metadata, numbers and words as strings, scripts."""
    tricky = ["1", "0", "-1", "1.5", "1e3", "0x1F", "true", "false", "yes", "no", "on", "off",
              "null", "~", "", " ", "2024-01-02", "2024-01-02T03:04:05Z", "12:30", ".inf",
              "- item", "key: value", "# not a comment", "*star", "&amp", "!bang", "%pct",
              "@at", "`tick", "'single'", '"double"', "{a: 1}", "[1, 2]", "trailing ",
              " leading", "tab\there", "caf\u00e9", "\u2603 snow", "emoji \U0001f600",
              "\u00e9t\u00e9\nsur deux lignes", "ctrl\x07bell", "nel\x85", "bom\ufeff",
              "line1\nline2\n", "line1\nline2", "\n\nleading newlines", "ends\n\n\n",
              "  indented\n  block\n", "w " * 70, "x" * 300, "a\r\nwindows\r\n"]
    items: list[dict[str, Any]] = []
    for index, value in enumerate(tricky):
        items.append({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {
                "name": f"cm-{index}", "namespace": "default", "uid": f"6f1b-{index:04d}",
                "resourceVersion": str(100 + index), "generation": index,
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"app.kubernetes.io/name": "web", "tier": value[:20] or "x"},
                "annotations": {"kcp.io/cluster": "root:org", "note": value},
                "finalizers": [], "ownerReferences": [{"apiVersion": "apps/v1",
                                                       "kind": "Deployment", "name": "web",
                                                       "uid": "u", "controller": True}]},
            "data": {"value": value, value or "empty-key": "v", "script":
                     "#!/bin/sh\nset -eu\necho \"$HOME\" | tr a-z A-Z\n" * 3},
            "binaryData": {"blob": "aGVsbG8="}, "immutable": False,
        })
    return items


def test_yaml_from_libyaml_is_byte_identical_for_kubernetes_objects() -> None:
    doc = {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"},
           "items": realistic_configmaps()}
    expected = yaml.dump(doc, Dumper=yaml.SafeDumper, sort_keys=False).encode()
    assert yaml_bytes(doc) == expected
    assert yaml.safe_load(expected) == doc
    assert expected.startswith(b"kind: ConfigMapList\napiVersion: v1\n")


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=150),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner,
                                                                max_size=4),
    max_leaves=16)


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.text(max_size=20), _JSON_VALUES, max_size=6))
def test_yaml_from_libyaml_reads_back_as_the_same_document(doc: dict[str, Any]) -> None:
    # libyaml may lay out odd keys or long escaped strings differently from PyYAML's emitter
    # (an empty key written plainly, a long quoted key as an explicit "? " key, a line folded
    # elsewhere); the YAML still says the same thing.
    produced = yaml_bytes(doc)
    assert yaml.safe_load(produced) == doc
    assert yaml.safe_load(produced) == yaml.safe_load(
        yaml.dump(doc, Dumper=yaml.SafeDumper, sort_keys=False))


async def test_a_large_yaml_response_is_made_in_a_thread_with_the_same_bytes() -> None:
    doc = {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {},
           "items": realistic_configmaps() * 8}
    raw = orjson.dumps(doc)
    assert len(raw) > 256 * 1024
    # Parsed afresh, as a response is: the repeated items share no objects, so no anchors.
    assert await yaml_response(raw) == yaml_bytes(orjson.loads(raw))
    assert b"&id" not in await yaml_response(raw)


async def test_table_of_one_object(stack: Stack) -> None:
    created = await create(stack, "a", k="v", j="w")
    response = await stack.request("GET", f"{CMS}/a", headers=[("accept", KUBECTL_TABLE)])
    assert response.status == 200
    table = response.json()
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == {"resourceVersion": created["metadata"]["resourceVersion"]}
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    [row] = table["rows"]
    assert row["cells"][:2] == ["a", 2]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "a"


async def test_table_of_a_list_with_include_object(stack: Stack) -> None:
    a = await create(stack, "a")
    await create(stack, "b")
    response = await stack.request("GET", CMS, query="includeObject=Object&limit=1",
                                   headers=[("accept", KUBECTL_TABLE)])
    table = response.json()
    assert table["kind"] == "Table"
    assert table["metadata"]["resourceVersion"] == str(stack.cacher.revision)
    assert table["metadata"]["continue"]
    assert [r["object"] for r in table["rows"]] == [a]


async def test_v1beta1_table(stack: Stack) -> None:
    await create(stack, "a")
    header = "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    table = (await stack.request("GET", CMS, headers=[("accept", header)])).json()
    assert table["apiVersion"] == "meta.k8s.io/v1beta1"


async def test_table_for_another_group_is_406(stack: Stack) -> None:
    await create(stack, "a")
    header = "application/json;as=Table;v=v1;g=example.com"
    body = status_of(await stack.request("GET", f"{CMS}/a", headers=[("accept", header)]), 406)
    assert body["reason"] == "NotAcceptable"
    assert status_of(await stack.request(
        "GET", CMS, headers=[("accept", "application/vnd.kubernetes.protobuf")]), 406)


async def test_protobuf_first_accept_gets_json(stack: Stack) -> None:
    created = await create(stack, "a")
    response = await stack.request(
        "GET", f"{CMS}/a",
        headers=[("accept", "application/vnd.kubernetes.protobuf, application/json")])
    assert (response.status, response.json()) == (200, created)


async def test_status_subresource_and_cluster_scoped_objects(stack: Stack) -> None:
    ns = await stack.request("GET", "/api/v1/namespaces/default/status")
    assert ns.status == 200
    assert ns.json()["status"]["phase"] == "Active"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "viewer"}, "rules": []}
    created = await stack.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                                  body=role)
    assert created.status == 201
    assert "namespace" not in created.json()["metadata"]


async def test_objects_in_other_clusters_are_separate(stack: Stack) -> None:
    await create(stack, "a")
    other = await stack.request("GET", f"/clusters/other{CMS}/a")
    assert other.status == 404
    listed = orjson.loads((await stack.request("GET", f"/clusters/root{CMS}")).body)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["a"]


async def test_an_unacceptable_accept_refuses_a_write_before_it_happens(stack: Stack) -> None:
    revision = await stack.backend.current_revision()
    response = await stack.request(
        "POST", CMS, body=configmap("a"),
        headers=[("accept", "application/vnd.kubernetes.protobuf")])
    assert status_of(response, 406)
    assert await stack.backend.current_revision() == revision


async def test_all_namespaces_collection_is_read_only(stack: Stack) -> None:
    a = await create(stack, "a")
    listed = await stack.request("GET", "/api/v1/configmaps")
    assert [o["metadata"]["name"] for o in listed.json()["items"]] == ["a"]
    for method in ("POST", "DELETE"):
        body = status_of(await stack.request(method, "/api/v1/configmaps", body=configmap("b")),
                         405)
        assert body["message"] == (
            f"the server does not allow this method on the requested resource: {method}")
    assert (await stack.request("GET", f"{CMS}/a")).json() == a


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_a_namespaced_name_without_a_namespace_is_404(stack: Stack, method: str) -> None:
    await create(stack, "a")
    body = status_of(await stack.request(method, "/api/v1/configmaps/a", body={},
                                         headers=MERGE), 404)
    assert body["message"] == "the server could not find the requested resource"
    assert (await stack.request("GET", f"{CMS}/a")).status == 200
