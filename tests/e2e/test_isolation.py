"""Isolation between workspaces, end to end: nothing crosses from one logical cluster to another.

Three workspaces (two sibling organizations and a team nested in the first) hold objects
with identical names: a namespace, configmaps, secrets, service accounts, roles, role
bindings and cluster roles. Every way of reading (get, list, selectors, watches from now
and from a resourceVersion, bookmarks, discovery, OpenAPI, kubectl) and of writing
(generateName, deletecollection, namespace deletion) must stay inside its own workspace,
while ``/clusters/*`` sees all of them.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.server import KplaneProcess
from tests.e2e.test_workspaces import eventually, ready_workspace

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

SHARED = "shared"
SAME = "same"
MERGE = {"Content-Type": "application/merge-patch+json"}


@dataclass(frozen=True)
class World:
    """One workspace under test: its path and its logical cluster name."""

    path: str
    cluster: str

    def url(self, rest: str) -> str:
        return f"/clusters/{self.path}/{rest}"


def _same_named_objects(world: World) -> list[tuple[str, dict[str, Any]]]:
    """(collection URL, body) of every object each workspace gets under the same name."""
    labels = {"app": SAME, "where": world.path.replace(":", "-")}
    meta = {"name": SAME, "labels": labels}
    ns = f"api/v1/namespaces/{SHARED}"
    rbac = "apis/rbac.authorization.k8s.io/v1"
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    return [
        (f"{ns}/configmaps", {"metadata": meta, "data": {"path": world.path}}),
        (f"{ns}/configmaps", {"metadata": {"name": "other"}, "data": {"n": "2"}}),
        (f"{ns}/secrets", {"metadata": meta, "stringData": {"path": world.path}}),
        (f"{ns}/serviceaccounts", {"metadata": meta}),
        (f"{rbac}/namespaces/{SHARED}/roles", {"metadata": meta, "rules": [rule]}),
        (f"{rbac}/namespaces/{SHARED}/rolebindings", {
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SAME},
            "subjects": [{"kind": "User", "name": f"user-of-{world.cluster}"}]}),
        (f"{rbac}/clusterroles", {"metadata": meta, "rules": [rule]}),
    ]


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        yield session


@pytest.fixture(scope="module")
def worlds(http: httpx.Client) -> tuple[World, World, World]:
    """Sibling ``root:iso-a`` and ``root:iso-b``, and ``root:iso-a:child`` nested in A."""
    made = []
    for parent, name, type_name in (("root", "iso-a", "organization"),
                                    ("root", "iso-b", "organization"),
                                    ("root:iso-a", "child", "team")):
        workspace = ready_workspace(http, parent, name, type_name=type_name)
        made.append(World(f"{parent}:{name}", workspace["spec"]["cluster"]))
    for world in made:
        created = http.post(world.url("api/v1/namespaces"), json={"metadata": {"name": SHARED}})
        assert created.status_code == 201, created.text
        for collection, body in _same_named_objects(world):
            response = http.post(world.url(collection), json=body)
            assert response.status_code == 201, (world, collection, response.text)
    a, b, child = made
    return a, b, child


def items(http: httpx.Client, url: str, **params: str) -> list[dict[str, Any]]:
    response = http.get(url, params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def clusters_of(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["annotations"]["kcp.io/cluster"] for o in objects}


def read_watch(http: httpx.Client, url: str, **params: str) -> list[dict[str, Any]]:
    """Every event of a watch that the server ends after ``timeoutSeconds``."""
    with http.stream("GET", url, params={"watch": "1", "timeoutSeconds": "1", **params},
                     timeout=15.0) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def list_revision(http: httpx.Client, url: str) -> str:
    revision: str = http.get(url).json()["metadata"]["resourceVersion"]
    return revision


# Objects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rest", [
    f"api/v1/namespaces/{SHARED}",
    f"api/v1/namespaces/{SHARED}/configmaps/{SAME}",
    f"api/v1/namespaces/{SHARED}/secrets/{SAME}",
    f"api/v1/namespaces/{SHARED}/serviceaccounts/{SAME}",
    f"apis/rbac.authorization.k8s.io/v1/namespaces/{SHARED}/roles/{SAME}",
    f"apis/rbac.authorization.k8s.io/v1/namespaces/{SHARED}/rolebindings/{SAME}",
    f"apis/rbac.authorization.k8s.io/v1/clusterroles/{SAME}",
])
def test_the_same_name_is_a_different_object_in_each_workspace(
        http: httpx.Client, worlds: tuple[World, World, World], rest: str) -> None:
    uids = set()
    for world in worlds:
        for reference in (world.path, world.cluster):
            response = http.get(f"/clusters/{reference}/{rest}")
            assert response.status_code == 200, (reference, response.text)
            obj = response.json()
            assert obj["metadata"]["annotations"]["kcp.io/cluster"] == world.cluster
            uids.add((world.cluster, obj["metadata"]["uid"]))
    # One uid per workspace, whether reached by path or by cluster name.
    assert len(uids) == 3
    assert len({uid for _, uid in uids}) == 3


def test_contents_come_from_the_workspace_asked(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    for world in worlds:
        cm = http.get(world.url(f"api/v1/namespaces/{SHARED}/configmaps/{SAME}")).json()
        assert cm["data"] == {"path": world.path}
        secret = http.get(world.url(f"api/v1/namespaces/{SHARED}/secrets/{SAME}")).json()
        assert base64.b64decode(secret["data"]["path"]).decode() == world.path
        binding = http.get(world.url(
            f"apis/rbac.authorization.k8s.io/v1/namespaces/{SHARED}/rolebindings/{SAME}")).json()
        assert binding["subjects"][0]["name"] == f"user-of-{world.cluster}"


def test_a_name_used_only_in_one_workspace_is_not_found_in_the_others(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    a, b, child = worlds
    made = http.post(a.url(f"api/v1/namespaces/{SHARED}/configmaps"),
                     json={"metadata": {"name": "only-in-a"}})
    assert made.status_code == 201
    for world in (b, child):
        missing = http.get(world.url(f"api/v1/namespaces/{SHARED}/configmaps/only-in-a"))
        assert missing.status_code == 404
        assert missing.json()["reason"] == "NotFound"
    # Writes addressed to another workspace cannot reach A's object either.
    for world in (b, child):
        assert http.patch(world.url(f"api/v1/namespaces/{SHARED}/configmaps/only-in-a"),
                          json={"data": {"x": "y"}}, headers=MERGE).status_code == 404
        assert http.delete(
            world.url(f"api/v1/namespaces/{SHARED}/configmaps/only-in-a")).status_code == 404
    assert http.get(a.url(f"api/v1/namespaces/{SHARED}/configmaps/only-in-a")).json().get(
        "data") is None
    # A namespace of A does not exist in B, so B cannot create into it.
    http.post(a.url("api/v1/namespaces"), json={"metadata": {"name": "a-only-ns"}})
    refused = http.post(b.url("api/v1/namespaces/a-only-ns/configmaps"),
                        json={"metadata": {"name": "x"}})
    assert refused.status_code == 404, refused.text


# Lists and selectors ---------------------------------------------------------------------


@pytest.mark.parametrize("rest", [
    "api/v1/namespaces",
    "api/v1/configmaps",
    f"api/v1/namespaces/{SHARED}/configmaps",
    "api/v1/secrets",
    "api/v1/serviceaccounts",
    "apis/rbac.authorization.k8s.io/v1/roles",
    "apis/rbac.authorization.k8s.io/v1/rolebindings",
    "apis/rbac.authorization.k8s.io/v1/clusterroles",
    "apis/core.kcp.io/v1alpha1/logicalclusters",
])
def test_lists_hold_only_the_workspace_own_objects(
        http: httpx.Client, worlds: tuple[World, World, World], rest: str) -> None:
    everything = items(http, f"/clusters/*/{rest}")
    for world in worlds:
        listed = items(http, world.url(rest))
        assert listed, (world, rest)
        assert clusters_of(listed) == {world.cluster}
        expected = [o for o in everything
                    if o["metadata"]["annotations"]["kcp.io/cluster"] == world.cluster]
        assert sorted(o["metadata"]["uid"] for o in listed) == sorted(
            o["metadata"]["uid"] for o in expected)
    # The wildcard holds all three workspaces' objects.
    assert {w.cluster for w in worlds} <= clusters_of(everything)


def test_workspaces_list_only_the_children_of_their_own_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    a, b, child = worlds
    tenancy = "apis/tenancy.kcp.io/v1alpha1/workspaces"
    assert [w["metadata"]["name"] for w in items(http, a.url(tenancy))] == ["child"]
    assert items(http, b.url(tenancy)) == []
    assert items(http, child.url(tenancy)) == []
    root_names = {w["metadata"]["name"] for w in items(http, f"/clusters/root/{tenancy}")}
    assert {"iso-a", "iso-b"} <= root_names
    assert "child" not in root_names


def test_selectors_match_only_inside_the_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    for world in worlds:
        for params in ({"labelSelector": f"app={SAME}"},
                       {"fieldSelector": f"metadata.name={SAME}"},
                       {"fieldSelector": f"metadata.namespace={SHARED},metadata.name={SAME}"},
                       {"labelSelector": "where", "fieldSelector": f"metadata.name={SAME}"}):
            listed = items(http, world.url("api/v1/configmaps"), **params)
            assert [(o["metadata"]["name"], o["data"]["path"]) for o in listed] == [
                (SAME, world.path)], (world, params)
        # A label value that only another workspace's objects carry matches nothing here.
        others = [w for w in worlds if w != world]
        for other in others:
            where = other.path.replace(":", "-")
            assert items(http, world.url("api/v1/configmaps"),
                         labelSelector=f"where={where}") == []
    matched = items(http, "/clusters/*/api/v1/configmaps", labelSelector=f"app={SAME}",
                    fieldSelector=f"metadata.name={SAME}")
    assert {w.cluster for w in worlds} <= clusters_of(matched)


def test_paginated_lists_stay_inside_the_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    for world in worlds:
        seen: list[str] = []
        token = ""
        while True:
            params = {"limit": "1", **({"continue": token} if token else {})}
            page = http.get(world.url(f"api/v1/namespaces/{SHARED}/configmaps"), params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            assert clusters_of(body["items"]) <= {world.cluster}
            seen += [o["metadata"]["uid"] for o in body["items"]]
            token = body["metadata"].get("continue", "")
            if not token:
                break
        own = items(http, world.url(f"api/v1/namespaces/{SHARED}/configmaps"))
        assert seen == [o["metadata"]["uid"] for o in own]
    # A continue token taken from A and replayed in B continues B's list, never A's.
    a, b, _child = worlds
    token = http.get(a.url(f"api/v1/namespaces/{SHARED}/configmaps"),
                     params={"limit": "1"}).json()["metadata"]["continue"]
    replayed = http.get(b.url(f"api/v1/namespaces/{SHARED}/configmaps"),
                        params={"limit": "50", "continue": token})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["items"]
    assert clusters_of(replayed.json()["items"]) == {b.cluster}
    # Paging through /clusters/* visits every workspace's objects exactly once.
    uids: list[str] = []
    token = ""
    while True:
        page = http.get("/clusters/*/api/v1/configmaps",
                        params={"limit": "2", **({"continue": token} if token else {})}).json()
        uids += [o["metadata"]["uid"] for o in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert len(uids) == len(set(uids))
    assert sorted(uids) == sorted(o["metadata"]["uid"]
                                  for o in items(http, "/clusters/*/api/v1/configmaps"))


# Writes that pick names or touch many objects --------------------------------------------


def test_generate_name_in_each_workspace_stays_in_it(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    made: dict[str, str] = {}
    for world in worlds:
        response = http.post(world.url(f"api/v1/namespaces/{SHARED}/configmaps"), json={
            "metadata": {"generateName": "gen-", "labels": {"generated": "yes"}}})
        assert response.status_code == 201, response.text
        made[world.cluster] = response.json()["metadata"]["name"]
        assert made[world.cluster].startswith("gen-")
    for world in worlds:
        listed = items(http, world.url("api/v1/configmaps"), labelSelector="generated=yes")
        assert [o["metadata"]["name"] for o in listed] == [made[world.cluster]]
        assert clusters_of(listed) == {world.cluster}


def test_deletecollection_in_one_workspace_leaves_the_others_intact(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    for world in worlds:
        for i in range(3):
            response = http.post(world.url(f"api/v1/namespaces/{SHARED}/configmaps"), json={
                "metadata": {"name": f"bulk-{i}", "labels": {"bulk": "yes"}}})
            assert response.status_code == 201, response.text
    a, b, child = worlds
    deleted = http.delete(a.url(f"api/v1/namespaces/{SHARED}/configmaps"),
                          params={"labelSelector": "bulk=yes"})
    assert deleted.status_code == 200, deleted.text
    assert sorted(o["metadata"]["name"] for o in deleted.json()["items"]) == [
        "bulk-0", "bulk-1", "bulk-2"]
    assert clusters_of(deleted.json()["items"]) == {a.cluster}
    assert items(http, a.url("api/v1/configmaps"), labelSelector="bulk=yes") == []
    for world in (b, child):
        left = items(http, world.url("api/v1/configmaps"), labelSelector="bulk=yes")
        assert sorted(o["metadata"]["name"] for o in left) == ["bulk-0", "bulk-1", "bulk-2"]
        assert clusters_of(left) == {world.cluster}
    # Cluster-scoped deletecollection too: B's cluster roles go, A's and the child's stay.
    gone = http.delete(b.url("apis/rbac.authorization.k8s.io/v1/clusterroles"),
                       params={"labelSelector": f"app={SAME}"})
    assert gone.status_code == 200, gone.text
    assert items(http, b.url("apis/rbac.authorization.k8s.io/v1/clusterroles"),
                 labelSelector=f"app={SAME}") == []
    for world in (a, child):
        kept = items(http, world.url("apis/rbac.authorization.k8s.io/v1/clusterroles"),
                     labelSelector=f"app={SAME}")
        assert [(o["metadata"]["name"], clusters_of([o])) for o in kept] == [
            (SAME, {world.cluster})]


def test_deleting_a_namespace_in_one_workspace_keeps_the_same_namespace_elsewhere(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    a, b, child = worlds
    for world in worlds:
        made = http.post(world.url("api/v1/namespaces"), json={"metadata": {"name": "brief"}})
        assert made.status_code == 201, made.text
        http.post(world.url("api/v1/namespaces/brief/configmaps"),
                  json={"metadata": {"name": "inside"}})
    assert http.delete(b.url("api/v1/namespaces/brief")).status_code == 200
    eventually(lambda: http.get(b.url("api/v1/namespaces/brief")).status_code == 404,
               what="namespace brief gone from B")
    for world in (a, child):
        ns = http.get(world.url("api/v1/namespaces/brief")).json()
        assert ns["status"]["phase"] == "Active"
        assert "deletionTimestamp" not in ns["metadata"]
        assert http.get(
            world.url("api/v1/namespaces/brief/configmaps/inside")).status_code == 200


# Watches ---------------------------------------------------------------------------------


def test_a_live_watch_never_sees_another_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    a, b, child = worlds
    url = a.url(f"api/v1/namespaces/{SHARED}/configmaps")
    revision = list_revision(http, url)
    events: list[dict[str, Any]] = []
    opened = threading.Event()

    def follow() -> None:
        with http.stream("GET", url, params={"watch": "1", "resourceVersion": revision,
                                             "timeoutSeconds": "3"}, timeout=15.0) as response:
            opened.set()
            for line in response.iter_lines():
                if line.strip():
                    events.append(json.loads(line))

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        assert opened.wait(5)
        # Writes in B and in the child first, to the very same names...
        for world in (b, child):
            http.patch(world.url(f"api/v1/namespaces/{SHARED}/configmaps/{SAME}"),
                       json={"data": {"touched": "elsewhere"}}, headers=MERGE)
            http.post(world.url(f"api/v1/namespaces/{SHARED}/configmaps"),
                      json={"metadata": {"name": "live"}})
            http.delete(world.url(f"api/v1/namespaces/{SHARED}/configmaps/live"))
        # ...then one write in A, which the watch must deliver, alone.
        http.post(url, json={"metadata": {"name": "live"}, "data": {"in": "a"}})
        eventually(lambda: events, what="the event from A")
    finally:
        reader.join(timeout=10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "live")]
    assert clusters_of([e["object"] for e in events]) == {a.cluster}


def test_a_resumed_watch_replays_only_the_workspace_history(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    a, b, child = worlds
    revision = list_revision(http, b.url("api/v1/configmaps"))
    for world in (a, child, b):
        http.patch(world.url(f"api/v1/namespaces/{SHARED}/configmaps/other"),
                   json={"data": {"n": world.path}}, headers=MERGE)
    for world in worlds:
        for rest in ("api/v1/configmaps", f"api/v1/namespaces/{SHARED}/configmaps"):
            events = read_watch(http, world.url(rest), resourceVersion=revision)
            assert [(e["type"], e["object"]["metadata"]["name"],
                     e["object"]["data"]["n"]) for e in events] == [
                ("MODIFIED", "other", world.path)], (world, rest)
            assert clusters_of([e["object"] for e in events]) == {world.cluster}


def test_initial_events_and_bookmarks_stay_inside_the_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    a, b, _child = worlds
    url = a.url(f"api/v1/namespaces/{SHARED}/secrets")
    events = read_watch(http, url, sendInitialEvents="true",
                        resourceVersionMatch="NotOlderThan", allowWatchBookmarks="true")
    added = [e for e in events if e["type"] == "ADDED"]
    assert [e["object"]["metadata"]["name"] for e in added] == [SAME]
    assert clusters_of([e["object"] for e in added]) == {a.cluster}
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert len(bookmarks) == 1
    bookmark = bookmarks[0]["object"]
    assert bookmark["kind"] == "Secret"
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    # Resuming from the bookmark's resourceVersion: B's write is not replayed, A's is.
    http.post(b.url(f"api/v1/namespaces/{SHARED}/secrets"), json={"metadata": {"name": "bk"}})
    http.post(url, json={"metadata": {"name": "bk"}})
    resumed = read_watch(http, url, resourceVersion=bookmark["metadata"]["resourceVersion"],
                         allowWatchBookmarks="true")
    changes = [e for e in resumed if e["type"] != "BOOKMARK"]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in changes] == [("ADDED", "bk")]
    assert clusters_of([e["object"] for e in changes]) == {a.cluster}


def test_the_wildcard_watch_sees_every_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    revision = list_revision(http, "/clusters/*/api/v1/configmaps")
    for world in worlds:
        http.post(world.url(f"api/v1/namespaces/{SHARED}/configmaps"),
                  json={"metadata": {"name": "everywhere"}})
    events = read_watch(http, "/clusters/*/api/v1/configmaps", resourceVersion=revision,
                        fieldSelector="metadata.name=everywhere")
    assert sorted(e["type"] for e in events) == ["ADDED"] * 3
    assert clusters_of([e["object"] for e in events]) == {w.cluster for w in worlds}


# Discovery and OpenAPI -------------------------------------------------------------------


def test_discovery_and_openapi_are_served_in_every_workspace(
        http: httpx.Client, worlds: tuple[World, World, World]) -> None:
    for world in worlds:
        core = http.get(world.url("api/v1"))
        assert core.status_code == 200, core.text
        assert {"configmaps", "namespaces", "secrets"} <= {
            r["name"] for r in core.json()["resources"]}
        groups = http.get(world.url("apis")).json()
        assert {"rbac.authorization.k8s.io", "tenancy.kcp.io", "core.kcp.io"} <= {
            g["name"] for g in groups["groups"]}
        aggregated = http.get(world.url("apis"), headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
        assert aggregated.status_code == 200
        assert aggregated.json()["kind"] == "APIGroupDiscoveryList"
        paths = http.get(world.url("openapi/v3")).json()["paths"]
        assert "api/v1" in paths
        assert "apis/tenancy.kcp.io/v1alpha1" in paths
        # The OpenAPI document links stay inside the workspace that served them.
        link = paths["api/v1"]["serverRelativeURL"]
        document = http.get(link)
        assert document.status_code == 200, link
        assert "io.k8s.api.core.v1.ConfigMap" in document.json()["components"]["schemas"]
    unknown = http.get("/clusters/root:iso-nowhere/apis")
    assert unknown.status_code == 404
    assert unknown.json()["kind"] == "Status"


def test_kubectl_in_each_workspace_sees_its_own_objects(
        kplane: KplaneProcess, worlds: tuple[World, World, World]) -> None:
    uids = set()
    for world in worlds:
        server = f"{kplane.url}/clusters/{world.path}"
        got = json.loads(kplane.kubectl("get", "configmap", SAME, "-n", SHARED, "-o", "json",
                                        server=server).stdout)
        assert got["data"]["path"] == world.path
        uids.add(got["metadata"]["uid"])
        roles = kplane.kubectl("get", "roles", "-n", SHARED, "-o", "name",
                               server=server).stdout.split()
        assert roles == [f"role.rbac.authorization.k8s.io/{SAME}"]
        resources = kplane.kubectl("api-resources", "-o", "name", server=server).stdout.split()
        assert {"configmaps", "workspaces.tenancy.kcp.io"} <= set(resources)
    assert len(uids) == 3
    every = json.loads(kplane.kubectl("get", "configmaps", "-A", "-o", "json",
                                      server=f"{kplane.url}/clusters/*").stdout)["items"]
    named = [o for o in every if o["metadata"]["name"] == SAME]
    assert {w.cluster for w in worlds} <= clusters_of(named)
