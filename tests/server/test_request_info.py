"""Parsing request paths into RequestInfo: every URL shape Kubernetes clients send."""

from __future__ import annotations

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.server.request_info import DEFAULT_CLUSTER, RequestInfo, parse_request


def get(path: str, *, watch: bool = False) -> RequestInfo:
    return parse_request("GET", path, watch=watch)


@pytest.mark.parametrize(("path", "prefix", "group", "version"), [
    ("/api", "api", "", ""),
    ("/api/v1", "api", "", "v1"),
    ("/apis", "apis", "", ""),
    ("/apis/rbac.authorization.k8s.io", "apis", "rbac.authorization.k8s.io", ""),
    ("/apis/rbac.authorization.k8s.io/v1", "apis", "rbac.authorization.k8s.io", "v1"),
    ("/api/v1/", "api", "", "v1"),
])
def test_discovery_paths_are_not_resource_requests(path: str, prefix: str, group: str,
                                                   version: str) -> None:
    info = get(path)
    assert info == RequestInfo(cluster=DEFAULT_CLUSTER, path=path.rstrip("/"),
                               is_resource_request=False, api_prefix=prefix, group=group,
                               version=version)


@pytest.mark.parametrize("path", ["/", "/version", "/healthz", "/openapi/v3/api/v1", "/metrics"])
def test_non_api_paths_are_non_resource_requests(path: str) -> None:
    info = get(path)
    assert info == RequestInfo(cluster="root", path=path, is_resource_request=False)


def test_namespaced_collection() -> None:
    info = get("/api/v1/namespaces/default/configmaps")
    assert info == RequestInfo(
        cluster="root", path="/api/v1/namespaces/default/configmaps", is_resource_request=True,
        api_prefix="api", group="", version="v1", resource="configmaps", namespace="default",
        verb="list", parts=("configmaps",))


def test_namespaced_object_and_subresource_in_a_group() -> None:
    info = parse_request("PUT", "/apis/apps/v1/namespaces/ns1/deployments/web/scale",
                         watch=False)
    assert (info.group, info.version, info.namespace, info.resource, info.name,
            info.subresource, info.verb) == ("apps", "v1", "ns1", "deployments", "web",
                                             "scale", "update")
    assert info.parts == ("deployments", "web", "scale")


def test_cluster_scoped_collection_object_and_subresource() -> None:
    collection = get("/apis/rbac.authorization.k8s.io/v1/clusterroles")
    assert (collection.resource, collection.name, collection.namespace, collection.verb) == (
        "clusterroles", "", "", "list")
    obj = get("/apis/rbac.authorization.k8s.io/v1/clusterroles/admin")
    assert (obj.resource, obj.name, obj.verb) == ("clusterroles", "admin", "get")
    sub = parse_request("PATCH", "/api/v1/nodes/n1/status", watch=False)
    assert (sub.resource, sub.name, sub.subresource, sub.verb) == ("nodes", "n1", "status",
                                                                    "patch")


def test_all_namespaces_collection_has_no_namespace() -> None:
    info = get("/api/v1/configmaps")
    assert (info.resource, info.namespace, info.verb) == ("configmaps", "", "list")


def test_the_namespaces_resource_itself() -> None:
    collection = get("/api/v1/namespaces")
    assert (collection.resource, collection.name, collection.namespace) == ("namespaces", "",
                                                                            "")
    obj = get("/api/v1/namespaces/team-a")
    assert (obj.resource, obj.name, obj.namespace, obj.subresource) == ("namespaces", "team-a",
                                                                        "", "")


def test_namespaces_inside_a_namespace_keep_the_namespace() -> None:
    # So the handler can refuse it (namespaces are cluster-scoped) rather than list them all.
    info = get("/api/v1/namespaces/default/namespaces")
    assert (info.namespace, info.resource, info.name) == ("default", "namespaces", "")


@pytest.mark.parametrize("subresource", ["status", "finalize"])
def test_namespace_subresources(subresource: str) -> None:
    info = parse_request("PUT", f"/api/v1/namespaces/team-a/{subresource}", watch=False)
    assert (info.resource, info.name, info.namespace, info.subresource, info.verb) == (
        "namespaces", "team-a", "", subresource, "update")


def test_cluster_prefix_is_removed_from_the_path() -> None:
    info = get("/clusters/root:org:team/api/v1/namespaces/default/configmaps/c1")
    assert info.cluster == "root:org:team"
    assert info.path == "/api/v1/namespaces/default/configmaps/c1"
    assert (info.namespace, info.resource, info.name, info.verb) == ("default", "configmaps",
                                                                     "c1", "get")
    assert get("/clusters/abc/version") == RequestInfo(cluster="abc", path="/version",
                                                       is_resource_request=False)
    assert get("/clusters/abc/apis").api_prefix == "apis"


def test_clusters_without_a_name_is_an_ordinary_path() -> None:
    info = get("/clusters")
    assert (info.cluster, info.path, info.is_resource_request) == ("root", "/clusters", False)


def test_legacy_watch_prefix() -> None:
    collection = get("/api/v1/watch/namespaces/default/configmaps")
    assert (collection.verb, collection.namespace, collection.resource, collection.name) == (
        "watch", "default", "configmaps", "")
    obj = get("/apis/rbac.authorization.k8s.io/v1/watch/clusterroles/admin")
    assert (obj.verb, obj.resource, obj.name) == ("watch", "clusterroles", "admin")
    assert obj.parts == ("clusterroles", "admin")


def test_watch_query_turns_get_and_list_into_watch() -> None:
    assert get("/api/v1/configmaps", watch=True).verb == "watch"
    assert get("/api/v1/namespaces/default/configmaps/c1", watch=True).verb == "watch"
    # watch=true on a write is still the write.
    assert parse_request("POST", "/api/v1/namespaces/default/configmaps", watch=True).verb == (
        "create")


@pytest.mark.parametrize(("method", "path", "verb"), [
    ("GET", "/api/v1/namespaces/default/configmaps/c1", "get"),
    ("HEAD", "/api/v1/namespaces/default/configmaps/c1", "get"),
    ("GET", "/api/v1/namespaces/default/configmaps", "list"),
    ("POST", "/api/v1/namespaces/default/configmaps", "create"),
    ("PUT", "/api/v1/namespaces/default/configmaps/c1", "update"),
    ("PATCH", "/api/v1/namespaces/default/configmaps/c1", "patch"),
    ("DELETE", "/api/v1/namespaces/default/configmaps/c1", "delete"),
    ("DELETE", "/api/v1/namespaces/default/configmaps", "deletecollection"),
    ("OPTIONS", "/api/v1/namespaces/default/configmaps", "options"),
])
def test_verbs_from_methods(method: str, path: str, verb: str) -> None:
    assert parse_request(method, path, watch=False).verb == verb


def test_percent_encoded_segments_are_decoded_once() -> None:
    info = get("/api/v1/namespaces/def%61ult/config%6Daps/a%2541")
    assert (info.namespace, info.resource, info.name) == ("default", "configmaps", "a%41")


def test_an_encoded_slash_cannot_smuggle_a_segment() -> None:
    # A "/" inside one segment would let a name or namespace address another key.
    with pytest.raises(StatusError) as caught:
        get("/api/v1/namespaces/default%2Fother/configmaps")
    assert caught.value.code == 404
    with pytest.raises(StatusError) as caught:
        get("/clusters/a%2Fb/api/v1/configmaps")
    assert caught.value.code == 404


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/default/configmaps/c1/status/extra",
    "/apis/g/v1/namespaces/default/things/t1/status/more/segments",
    "/api/v1/nodes/n1/status/extra",
    "/api/v1/namespaces/team-a/status/extra",
])
def test_too_many_segments_are_not_found(path: str) -> None:
    with pytest.raises(StatusError) as caught:
        get(path)
    assert (caught.value.code, caught.value.reason) == (404, "NotFound")
    assert caught.value.message == "the server could not find the requested resource"


def test_watch_prefix_alone_is_not_found() -> None:
    with pytest.raises(StatusError) as caught:
        get("/api/v1/watch")
    assert caught.value.code == 404


def test_overlong_path_is_414() -> None:
    long_name = "a" * 9000
    with pytest.raises(StatusError) as caught:
        get(f"/api/v1/namespaces/default/configmaps/{long_name}")
    assert (caught.value.code, caught.value.reason) == (414, "RequestURITooLong")
    # Just under the limit parses normally.
    ok = get("/api/v1/namespaces/default/configmaps/" + "a" * 8000)
    assert len(ok.name) == 8000
