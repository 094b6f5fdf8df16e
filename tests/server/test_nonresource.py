"""The endpoints that are not resources: health, version, metrics, discovery and OpenAPI."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

import pytest

from kplane.server.discovery import AGGREGATED_CONTENT_TYPE
from tests.server.harness import Response, Stack

AGGREGATED_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json")


def not_found(response: Response) -> None:
    assert response.status == 404
    body = response.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
async def test_health_endpoints_say_ok(stack: Stack, path: str) -> None:
    response = await stack.request("GET", path)
    assert (response.status, response.body) == (200, b"ok")
    assert response.header("content-type") == "text/plain; charset=utf-8"


async def test_readyz_is_503_until_ready(stack: Stack) -> None:
    stack.ready[0] = False
    response = await stack.request("GET", "/readyz")
    assert response.status == 503
    assert response.body == b"readyz check failed: storage is not ready\n"
    # Liveness does not depend on readiness.
    assert (await stack.request("GET", "/livez")).status == 200
    stack.ready[0] = True
    assert (await stack.request("GET", "/readyz")).status == 200


async def test_version_has_integer_looking_major_and_minor(stack: Stack) -> None:
    response = await stack.request("GET", "/version")
    assert response.status == 200
    version = response.json()
    assert re.fullmatch(r"[0-9]+", version["major"])
    assert re.fullmatch(r"[0-9]+", version["minor"])
    assert version["gitVersion"].startswith(f"v{version['major']}.{version['minor']}.")
    assert set(version) >= {"major", "minor", "gitVersion", "gitCommit", "gitTreeState",
                            "buildDate", "goVersion", "compiler", "platform"}


def request_count(text: str, *, verb: str, code: int) -> float:
    pattern = (rf'^apiserver_request_total\{{code="{code}",resource="configmaps",'
               rf'verb="{verb}"\}} ([0-9.e+]+)$')
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def metrics_text(stack: Stack) -> str:
    return (await stack.request("GET", "/metrics")).body.decode()


async def test_metrics_are_prometheus_text_and_count_requests(stack: Stack) -> None:
    before = await stack.request("GET", "/metrics")
    assert before.status == 200
    assert before.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    text = before.body.decode()
    assert "# TYPE apiserver_request_total counter" in text
    assert "# TYPE apiserver_request_duration_seconds histogram" in text
    await stack.request("GET", "/api/v1/namespaces/default/configmaps")
    await stack.request("GET", "/api/v1/namespaces/default/configmaps")
    after = await metrics_text(stack)
    assert request_count(after, verb="list", code=200) == (
        request_count(text, verb="list", code=200) + 2)


async def test_legacy_core_discovery(stack: Stack) -> None:
    response = await stack.request("GET", "/api")
    assert response.header("content-type") == "application/json"
    body = response.json()
    assert (body["kind"], body["versions"]) == ("APIVersions", ["v1"])
    assert body["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
    resources = (await stack.request("GET", "/api/v1")).json()
    assert (resources["kind"], resources["groupVersion"]) == ("APIResourceList", "v1")
    names = [r["name"] for r in resources["resources"]]
    assert {"configmaps", "namespaces", "namespaces/status", "namespaces/finalize"} <= set(names)


async def test_legacy_group_discovery(stack: Stack) -> None:
    groups = (await stack.request("GET", "/apis")).json()
    assert groups["kind"] == "APIGroupList"
    assert "rbac.authorization.k8s.io" in [g["name"] for g in groups["groups"]]
    group = (await stack.request("GET", "/apis/rbac.authorization.k8s.io")).json()
    assert (group["kind"], group["name"]) == ("APIGroup", "rbac.authorization.k8s.io")
    assert group["preferredVersion"]["groupVersion"] == "rbac.authorization.k8s.io/v1"
    listed = (await stack.request("GET", "/apis/rbac.authorization.k8s.io/v1")).json()
    assert "clusterroles" in [r["name"] for r in listed["resources"]]


@pytest.mark.parametrize("path", ["/api", "/apis"])
async def test_aggregated_discovery_is_chosen_by_accept(stack: Stack, path: str) -> None:
    response = await stack.request("GET", path, headers=[("accept", AGGREGATED_ACCEPT)])
    assert response.status == 200
    assert response.header("content-type") == AGGREGATED_CONTENT_TYPE
    body = response.json()
    assert (body["kind"], body["apiVersion"]) == ("APIGroupDiscoveryList",
                                                  "apidiscovery.k8s.io/v2")
    names = [item["metadata"].get("name", "") for item in body["items"]]
    if path == "/api":
        assert names == [""]
    else:
        assert "" not in names
        assert "rbac.authorization.k8s.io" in names


@pytest.mark.parametrize("path", ["/apis/nope", "/apis/nope/v1", "/api/v2",
                                  "/apis/rbac.authorization.k8s.io/v9"])
async def test_unknown_group_versions_are_404(stack: Stack, path: str) -> None:
    not_found(await stack.request("GET", path))


async def test_openapi_index_and_documents(stack: Stack) -> None:
    index = await stack.request("GET", "/openapi/v3")
    assert index.status == 200
    paths = index.json()["paths"]
    assert {"api/v1", "apis/rbac.authorization.k8s.io/v1"} <= set(paths)
    url = urlsplit(paths["api/v1"]["serverRelativeURL"])
    assert url.path == "/openapi/v3/api/v1"
    document = await stack.request("GET", url.path, query=url.query)
    assert document.status == 200
    # The index's hash is the hash of exactly the bytes served.
    assert url.query == "hash=" + hashlib.sha512(document.body).hexdigest().upper()
    doc = document.json()
    assert doc["openapi"].startswith("3.0")
    assert "/api/v1/namespaces/{namespace}/configmaps/{name}" in doc["paths"]
    rbac = await stack.request("GET", "/openapi/v3/apis/rbac.authorization.k8s.io/v1")
    assert "/apis/rbac.authorization.k8s.io/v1/clusterroles" in rbac.json()["paths"]


async def test_openapi_index_under_a_cluster_prefix_has_no_base(stack: Stack) -> None:
    index = await stack.request("GET", "/clusters/root/openapi/v3")
    url = index.json()["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")


@pytest.mark.parametrize("path", ["/openapi/v3/apis/nope/v1", "/openapi/v3/api/v2",
                                  "/openapi/v3/apis/v1", "/openapi/v3/v1",
                                  "/openapi/v3/api/v1/extra", "/openapi/v2", "/nope"])
async def test_unknown_documents_are_404(stack: Stack, path: str) -> None:
    not_found(await stack.request("GET", path))


@pytest.mark.parametrize("path", ["/version", "/healthz", "/api", "/openapi/v3"])
async def test_post_to_non_resource_paths_is_405(stack: Stack, path: str) -> None:
    response = await stack.request("POST", path, body=b"{}")
    assert response.status == 405
    body = response.json()
    assert (body["reason"], body["message"]) == (
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource: POST")


async def test_documents_are_cached_bytes(stack: Stack) -> None:
    first = await stack.request("GET", "/openapi/v3/api/v1")
    second = await stack.request("GET", "/openapi/v3/api/v1")
    assert first.chunks[0] is second.chunks[0]


async def test_metrics_count_watches_when_they_end_and_failures_by_code(stack: Stack) -> None:
    before = await metrics_text(stack)
    async with stack.watch("/api/v1/namespaces/default/configmaps", query="watch=1"):
        pass
    await stack.request("GET", "/api/v1/namespaces/default/configmaps/nope")
    after = await metrics_text(stack)
    assert request_count(after, verb="watch", code=200) == (
        request_count(before, verb="watch", code=200) + 1)
    assert request_count(after, verb="get", code=404) == (
        request_count(before, verb="get", code=404) + 1)
    assert 'apiserver_request_duration_seconds_count{verb="watch"}' not in after
