"""Workspaces end to end: creation, lifecycle, WorkspaceTypes, initializers and deletion.

A real server process, driven by the real kubectl, the official Python client and plain
HTTPS, checks what kcp's tenancy API promises: a Workspace becomes a Ready logical cluster
reachable by path and by cluster name, types decide what may nest where, initializers hold
a workspace until they let go, and deleting a workspace removes everything below it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kplane.auth.pki import ensure_pki
from tests.e2e.server import KplaneProcess

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

TENANCY = "apis/tenancy.kcp.io/v1alpha1"
CORE_KCP = "apis/core.kcp.io/v1alpha1"
CLUSTER_NAME = re.compile(r"^[0-9a-z]{16}$")
READY_TIMEOUT = 10.0


# Helpers shared with the isolation tests ------------------------------------------------


def workspace_body(name: str, *, type_name: str | None = None,
                   type_path: str = "root") -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                            "metadata": {"name": name}, "spec": {}}
    if type_name:
        body["spec"]["type"] = {"name": type_name, "path": type_path}
    return body


def create_workspace(http: httpx.Client, parent: str, name: str, *,
                     type_name: str | None = None, type_path: str = "root") -> httpx.Response:
    return http.post(f"/clusters/{parent}/{TENANCY}/workspaces",
                     json=workspace_body(name, type_name=type_name, type_path=type_path))


def get_workspace(http: httpx.Client, parent: str, name: str) -> dict[str, Any]:
    response = http.get(f"/clusters/{parent}/{TENANCY}/workspaces/{name}")
    assert response.status_code == 200, response.text
    workspace: dict[str, Any] = response.json()
    return workspace


def eventually(check: Callable[[], Any], *, timeout: float = READY_TIMEOUT,
               what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def wait_phase(http: httpx.Client, parent: str, name: str, phase: str) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        workspace = get_workspace(http, parent, name)
        return workspace if (workspace.get("status") or {}).get("phase") == phase else None

    found: dict[str, Any] = eventually(current, what=f"{parent}:{name} phase {phase}")
    return found


def ready_workspace(http: httpx.Client, parent: str, name: str, *,
                    type_name: str | None = None, type_path: str = "root") -> dict[str, Any]:
    """Create a workspace and wait until it is Ready; returns the Ready Workspace."""
    response = create_workspace(http, parent, name, type_name=type_name, type_path=type_path)
    assert response.status_code == 201, response.text
    return wait_phase(http, parent, name, "Ready")


def wait_gone(http: httpx.Client, url: str) -> None:
    eventually(lambda: http.get(url).status_code == 404, what=f"{url} gone")


@contextlib.contextmanager
def admin_api(kplane: KplaneProcess, reference: str) -> Iterator[client.ApiClient]:
    """The official client with the admin kubeconfig, pointed at one workspace path."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kplane.kubeconfig))
    api.configuration.host = f"{kplane.url}/clusters/{reference}"
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        yield session


# Creation -------------------------------------------------------------------------------


def test_kubectl_creates_a_workspace_that_becomes_ready(
        kplane: KplaneProcess, http: httpx.Client, tmp_path: Path) -> None:
    manifest = tmp_path / "ws.yaml"
    manifest.write_text(
        "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: made\n"
        "spec:\n  type:\n    name: organization\n    path: root\n")
    out = kplane.kubectl("create", "-f", str(manifest))
    assert out.stdout.strip() == "workspace.tenancy.kcp.io/made created"
    ready = wait_phase(http, "root", "made", "Ready")
    assert CLUSTER_NAME.match(ready["spec"]["cluster"]), ready["spec"]
    assert ready["spec"]["URL"] == f"{kplane.url}/clusters/root:made"
    assert ready["spec"]["type"] == {"name": "organization", "path": "root"}
    # kubectl reads it back by name, short name and in a table.
    assert kplane.kubectl_json("get", "ws", "made")["spec"]["cluster"] == ready["spec"]["cluster"]
    assert "made" in kplane.kubectl("get", "workspaces").stdout

    # The same manifest inside the new workspace creates a grandchild there.
    nested = tmp_path / "nested.yaml"
    nested.write_text(manifest.read_text().replace("made", "inner").replace(
        "organization", "team"))
    kplane.kubectl("create", "-f", str(nested), server=f"{kplane.url}/clusters/root:made")
    inner = wait_phase(http, "root:made", "inner", "Ready")
    assert inner["spec"]["URL"] == f"{kplane.url}/clusters/root:made:inner"
    assert CLUSTER_NAME.match(inner["spec"]["cluster"])
    assert inner["spec"]["cluster"] != ready["spec"]["cluster"]
    # It lives in its parent's logical cluster, not in root.
    assert inner["metadata"]["annotations"]["kcp.io/cluster"] == ready["spec"]["cluster"]
    assert http.get(f"/clusters/root/{TENANCY}/workspaces/inner").status_code == 404


def test_a_new_workspace_has_its_logical_cluster_and_default_namespace(
        http: httpx.Client) -> None:
    workspace = ready_workspace(http, "root", "fresh")
    cluster = workspace["spec"]["cluster"]
    for reference in ("root:fresh", cluster):
        logical = http.get(f"/clusters/{reference}/{CORE_KCP}/logicalclusters/cluster").json()
        assert logical["kind"] == "LogicalCluster"
        assert logical["metadata"]["annotations"]["kcp.io/path"] == "root:fresh"
        assert logical["metadata"]["annotations"]["kcp.io/cluster"] == cluster
        assert logical["status"]["phase"] == "Ready"
        assert logical["spec"]["owner"]["name"] == "fresh"
        assert logical["spec"]["owner"]["uid"] == workspace["metadata"]["uid"]
        namespaces = http.get(f"/clusters/{reference}/api/v1/namespaces").json()["items"]
        assert [ns["metadata"]["name"] for ns in namespaces] == ["default"]
        assert namespaces[0]["metadata"]["annotations"]["kcp.io/cluster"] == cluster


def test_path_and_cluster_name_address_the_same_objects(http: httpx.Client) -> None:
    cluster = ready_workspace(http, "root", "twin")["spec"]["cluster"]
    created = http.post("/clusters/root:twin/api/v1/namespaces/default/configmaps",
                        json={"metadata": {"name": "shared"}, "data": {"k": "v"}})
    assert created.status_code == 201, created.text
    by_name = http.get(f"/clusters/{cluster}/api/v1/namespaces/default/configmaps/shared")
    assert by_name.status_code == 200
    assert by_name.json()["metadata"]["uid"] == created.json()["metadata"]["uid"]
    assert by_name.json()["metadata"]["annotations"]["kcp.io/cluster"] == cluster


def test_python_client_works_inside_a_nested_workspace(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    ready_workspace(http, "root", "pyorg", type_name="organization")
    cluster = ready_workspace(http, "root:pyorg", "pyteam", type_name="team")["spec"]["cluster"]
    with admin_api(kplane, "root:pyorg:pyteam") as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
        made: Any = core.create_namespaced_config_map("py", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cm"), data={"a": "b"}))
        assert made.metadata.annotations["kcp.io/cluster"] == cluster
        namespaces: Any = core.list_namespace()
        names = sorted(ns.metadata.name for ns in namespaces.items)
        assert names == ["default", "py"]
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_cluster_role(client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name="team-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"],
                                       verbs=["get"])]))
        roles: Any = rbac.list_cluster_role()
        assert [r.metadata.name for r in roles.items] == ["team-reader"]


def test_the_server_owns_spec_cluster_and_type_is_immutable(http: httpx.Client) -> None:
    workspace = ready_workspace(http, "root", "fixed")
    url = f"/clusters/root/{TENANCY}/workspaces/fixed"
    moved = http.patch(url, json={"spec": {"cluster": "aaaaaaaaaaaaaaaa", "URL": "x"}},
                       headers={"Content-Type": "application/merge-patch+json"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["spec"]["cluster"] == workspace["spec"]["cluster"]
    assert moved.json()["spec"]["URL"] == workspace["spec"]["URL"]
    retyped = http.patch(url, json={"spec": {"type": {"name": "organization", "path": "root"}}},
                         headers={"Content-Type": "application/merge-patch+json"})
    assert retyped.status_code == 422, retyped.text
    assert retyped.json()["details"]["causes"][0]["field"] == "spec.type"


def test_two_workspaces_created_at_once_get_distinct_clusters(http: httpx.Client) -> None:
    first = ready_workspace(http, "root", "race-a")
    second = ready_workspace(http, "root", "race-b")
    assert first["spec"]["cluster"] != second["spec"]["cluster"]
    duplicate = create_workspace(http, "root", "race-a")
    assert duplicate.status_code == 409
    assert duplicate.json()["reason"] == "AlreadyExists"


# WorkspaceTypes -------------------------------------------------------------------------


def test_builtin_types_exist_in_root(kplane: KplaneProcess) -> None:
    names = kplane.kubectl("get", "workspacetypes", "-o", "name").stdout.split()
    assert set(names) >= {f"workspacetype.tenancy.kcp.io/{n}"
                          for n in ("root", "organization", "team", "universal")}


def test_type_defaults_to_the_parents_default_child_type(http: httpx.Client) -> None:
    assert ready_workspace(http, "root", "plain")["spec"]["type"] == {
        "name": "universal", "path": "root"}
    ready_workspace(http, "root", "deforg", type_name="organization")
    assert ready_workspace(http, "root:deforg", "under")["spec"]["type"] == {
        "name": "universal", "path": "root"}
    logical = http.get(f"/clusters/root:deforg:under/{CORE_KCP}/logicalclusters/cluster").json()
    assert logical["metadata"]["annotations"]["tenancy.kcp.io/workspace-type"] == \
        "root:universal"


@pytest.mark.parametrize(("parent", "type_name", "needle"), [
    ("root", "team", "only allows parents"),            # team wants an organization or team
    ("root", "root", "only allows parents"),            # root is never a child
    ("root:allowed-org", "organization", "only allows parents"),  # organizations sit in root
])
def test_both_sides_must_allow_the_pair(http: httpx.Client, parent: str, type_name: str,
                                        needle: str) -> None:
    missing_parent = http.get(f"/clusters/root/{TENANCY}/workspaces/allowed-org")
    if parent != "root" and missing_parent.status_code == 404:
        ready_workspace(http, "root", "allowed-org", type_name="organization")
    refused = create_workspace(http, parent, "refused", type_name=type_name)
    assert refused.status_code == 403, refused.text
    status = refused.json()
    assert (status["kind"], status["reason"]) == ("Status", "Forbidden")
    assert needle in status["message"]
    assert http.get(f"/clusters/{parent}/{TENANCY}/workspaces/refused").status_code == 404


def test_user_defined_types_with_allowed_children_and_parents(http: httpx.Client) -> None:
    ready_workspace(http, "root", "typed", type_name="organization")
    types_url = f"/clusters/root:typed/{TENANCY}/workspacetypes"

    def make_type(name: str, spec: dict[str, Any]) -> None:
        made = http.post(types_url, json={"apiVersion": "tenancy.kcp.io/v1alpha1",
                                          "kind": "WorkspaceType",
                                          "metadata": {"name": name}, "spec": spec})
        assert made.status_code == 201, made.text

    make_type("leaf", {"limitAllowedChildren": {"none": True}})
    make_type("picky", {
        "limitAllowedChildren": {"types": [{"name": "leaf", "path": "root:typed"}]},
        "defaultChildWorkspaceType": {"name": "leaf", "path": "root:typed"}})
    make_type("only-under-picky", {
        "limitAllowedParents": {"types": [{"name": "picky", "path": "root:typed"}]}})

    picky = ready_workspace(http, "root:typed", "p", type_name="picky", type_path="root:typed")
    assert picky["spec"]["type"] == {"name": "picky", "path": "root:typed"}
    # The default child type of picky is leaf.
    assert ready_workspace(http, "root:typed:p", "l1")["spec"]["type"] == {
        "name": "leaf", "path": "root:typed"}
    # picky's children list refuses universal even though universal accepts any parent.
    refused = create_workspace(http, "root:typed:p", "u", type_name="universal")
    assert refused.status_code == 403
    assert "is not allowed as a child" in refused.json()["message"]
    # leaf allows no children at all.
    none = create_workspace(http, "root:typed:p:l1", "x", type_name="universal")
    assert none.status_code == 403
    # only-under-picky refuses an organization parent...
    wrong_parent = create_workspace(http, "root:typed", "o", type_name="only-under-picky",
                                    type_path="root:typed")
    assert wrong_parent.status_code == 403
    assert "only allows parents" in wrong_parent.json()["message"]
    # ...and under picky, picky's own list does not name it: both sides must agree.
    both = create_workspace(http, "root:typed:p", "o", type_name="only-under-picky",
                            type_path="root:typed")
    assert both.status_code == 403
    # A type that does not exist is refused, not defaulted.
    missing = create_workspace(http, "root:typed", "m", type_name="nope", type_path="root:typed")
    assert missing.status_code == 403
    assert "does not exist" in missing.json()["message"]


def test_additional_workspace_labels_are_applied(http: httpx.Client) -> None:
    made = http.post(f"/clusters/root/{TENANCY}/workspacetypes", json={
        "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType",
        "metadata": {"name": "labelled"},
        "spec": {"additionalWorkspaceLabels": {"tier": "gold"}}})
    assert made.status_code == 201, made.text
    workspace = ready_workspace(http, "root", "shiny", type_name="labelled")
    assert workspace["metadata"]["labels"]["tier"] == "gold"


# Initializers ---------------------------------------------------------------------------


def test_an_initializer_holds_the_workspace_until_it_removes_itself(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    ready_workspace(http, "root", "init-org", type_name="organization")
    made = http.post(f"/clusters/root:init-org/{TENANCY}/workspacetypes", json={
        "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType",
        "metadata": {"name": "gated"}, "spec": {"initializer": True}})
    assert made.status_code == 201, made.text
    created = create_workspace(http, "root:init-org", "held", type_name="gated",
                               type_path="root:init-org")
    assert created.status_code == 201, created.text
    held = wait_phase(http, "root:init-org", "held", "Initializing")
    assert held["status"]["initializers"] == ["root:init-org:gated"]
    status_url = f"/clusters/root:init-org:held/{CORE_KCP}/logicalclusters/cluster/status"
    logical = http.get(status_url).json()
    assert logical["status"]["phase"] == "Initializing"
    assert logical["status"]["initializers"] == ["root:init-org:gated"]
    # The workspace stays held: it is not a timer.
    time.sleep(0.5)
    assert get_workspace(http, "root:init-org", "held")["status"]["phase"] == "Initializing"

    # The initializer does its work inside the workspace, then lets go (a PUT of status).
    setup = kplane.kubectl("create", "configmap", "set-up-by-initializer",
                           server=f"{kplane.url}/clusters/root:init-org:held")
    assert "created" in setup.stdout
    logical["status"]["initializers"] = []
    released = http.put(status_url, json=logical)
    assert released.status_code == 200, released.text
    ready = wait_phase(http, "root:init-org", "held", "Ready")
    assert "initializers" not in ready["status"]
    final = http.get(status_url).json()
    assert final["status"]["phase"] == "Ready"
    assert final["spec"]["initializers"] == ["root:init-org:gated"]


def test_initializers_of_extended_types_all_have_to_let_go(http: httpx.Client) -> None:
    ready_workspace(http, "root", "ext-org", type_name="organization")
    types_url = f"/clusters/root:ext-org/{TENANCY}/workspacetypes"
    for name, spec in (("base", {"initializer": True}),
                       ("derived", {"initializer": True,
                                    "extend": {"with": [{"name": "base",
                                                         "path": "root:ext-org"}]}})):
        made = http.post(types_url, json={"apiVersion": "tenancy.kcp.io/v1alpha1",
                                          "kind": "WorkspaceType",
                                          "metadata": {"name": name}, "spec": spec})
        assert made.status_code == 201, made.text
    create_workspace(http, "root:ext-org", "both", type_name="derived", type_path="root:ext-org")
    held = wait_phase(http, "root:ext-org", "both", "Initializing")
    assert sorted(held["status"]["initializers"]) == ["root:ext-org:base",
                                                      "root:ext-org:derived"]
    status_url = f"/clusters/root:ext-org:both/{CORE_KCP}/logicalclusters/cluster/status"
    merge = {"Content-Type": "application/merge-patch+json"}
    one = http.patch(status_url, json={"status": {"initializers": ["root:ext-org:base"]}},
                     headers=merge)
    assert one.status_code == 200, one.text
    time.sleep(0.3)
    still = get_workspace(http, "root:ext-org", "both")
    assert still["status"]["phase"] == "Initializing"
    assert still["status"]["initializers"] == ["root:ext-org:base"]
    two = http.patch(status_url, json={"status": {"initializers": []}}, headers=merge)
    assert two.status_code == 200, two.text
    wait_phase(http, "root:ext-org", "both", "Ready")


# Deletion and unknown paths --------------------------------------------------------------


def test_deleting_a_workspace_deletes_everything_below_it(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    org = ready_workspace(http, "root", "doomed", type_name="organization")
    team = ready_workspace(http, "root:doomed", "t", type_name="team")
    deeper = ready_workspace(http, "root:doomed:t", "d")
    clusters = [w["spec"]["cluster"] for w in (org, team, deeper)]
    for path in ("root:doomed", "root:doomed:t", "root:doomed:t:d"):
        kplane.kubectl("create", "namespace", "stuff", server=f"{kplane.url}/clusters/{path}")
        kplane.kubectl("create", "configmap", "c", "-n", "stuff",
                       server=f"{kplane.url}/clusters/{path}")
    survivor = ready_workspace(http, "root", "survivor")

    out = kplane.kubectl("delete", "workspace", "doomed")
    assert 'workspace.tenancy.kcp.io "doomed" deleted' in out.stdout
    wait_gone(http, f"/clusters/root/{TENANCY}/workspaces/doomed")
    for reference in ["root:doomed", "root:doomed:t", "root:doomed:t:d", *clusters]:
        gone = http.get(f"/clusters/{reference}/api/v1/namespaces")
        assert gone.status_code in (403, 404), (reference, gone.text)
        assert gone.json()["kind"] == "Status"
    everything = http.get("/clusters/*/api/v1/configmaps").json()["items"]
    left = {cm["metadata"]["annotations"]["kcp.io/cluster"] for cm in everything}
    assert not left & set(clusters)
    for rt in ("api/v1/namespaces", f"{TENANCY}/workspaces", f"{CORE_KCP}/logicalclusters"):
        items = http.get(f"/clusters/*/{rt}").json()["items"]
        assert not {i["metadata"]["annotations"]["kcp.io/cluster"] for i in items} & \
            set(clusters), rt
    # A sibling is untouched.
    assert http.get("/clusters/root:survivor/api/v1/namespaces/default").status_code == 200
    assert survivor["spec"]["cluster"] not in clusters
    # The name can be used again, for a brand-new logical cluster.
    again = ready_workspace(http, "root", "doomed")
    assert again["spec"]["cluster"] not in clusters
    assert http.get("/clusters/root:doomed/api/v1/namespaces/stuff").status_code == 404


def test_unknown_paths_get_a_clear_status(http: httpx.Client) -> None:
    for reference in ("root:nowhere", "root:nowhere:deeper", "zzzzzzzzzzzzzzzz"):
        response = http.get(f"/clusters/{reference}/api/v1/namespaces")
        assert response.status_code == 404, reference
        status = response.json()
        assert (status["kind"], status["status"], status["reason"]) == (
            "Status", "Failure", "NotFound")
        assert reference in status["message"]
    bad = http.get("/clusters/Not_A:Path/api/v1/namespaces")
    assert bad.status_code in (400, 404)
    assert bad.json()["kind"] == "Status"


def test_kubectl_reports_an_unknown_workspace(kplane: KplaneProcess) -> None:
    result = kplane.kubectl("get", "configmaps", check=False,
                            server=f"{kplane.url}/clusters/root:missing")
    assert result.returncode != 0
    # kubectl fails at discovery already and prints the Status reason it got.
    assert "Error from server (NotFound)" in result.stderr


# Across all logical clusters -------------------------------------------------------------


def test_wildcard_is_list_and_watch_only(http: httpx.Client) -> None:
    listed = http.get("/clusters/*/api/v1/namespaces")
    assert listed.status_code == 200
    assert listed.json()["kind"] == "NamespaceList"
    written = http.post("/clusters/*/api/v1/namespaces", json={"metadata": {"name": "x"}})
    assert written.status_code == 405, written.text
    assert written.json()["kind"] == "Status"


def test_wildcard_is_refused_to_non_masters(kplane: KplaneProcess, tmp_path: Path) -> None:
    pki = ensure_pki(kplane.data_dir, hosts=["127.0.0.1"])
    cert, key = pki.issue_client_certificate(user="alice", groups=["developers"],
                                             expires_in=timedelta(hours=1))
    (tmp_path / "alice.crt").write_bytes(cert)
    (tmp_path / "alice.key").write_bytes(key)
    context = kplane.tls_context(with_client_cert=False)
    context.load_cert_chain(str(tmp_path / "alice.crt"), str(tmp_path / "alice.key"))
    with httpx.Client(base_url=kplane.url, verify=context, timeout=10.0) as alice:
        for path in ("/clusters/*/api/v1/configmaps", "/clusters/*/api/v1/secrets"):
            refused = alice.get(path)
            assert refused.status_code == 403, refused.text
            assert refused.json()["reason"] == "Forbidden"
        watch = alice.get("/clusters/*/api/v1/configmaps", params={"watch": "1"})
        assert watch.status_code == 403


def test_python_client_lists_through_the_wildcard_but_cannot_get(kplane: KplaneProcess) -> None:
    with admin_api(kplane, "*") as api:
        core = client.CoreV1Api(api)
        listed: Any = core.list_namespace()
        clusters = {ns.metadata.annotations["kcp.io/cluster"] for ns in listed.items}
        assert "root" in clusters and len(clusters) > 1
        with pytest.raises(ApiException) as refused:
            core.read_namespace("default")
        assert refused.value.status == 405
        assert json.loads(str(refused.value.body))["kind"] == "Status"


# A workspace being deleted takes no new content ------------------------------------------

MERGE = {"Content-Type": "application/merge-patch+json"}


def configmap_url(path: str, name: str = "") -> str:
    return f"/clusters/{path}/api/v1/namespaces/default/configmaps" + (f"/{name}" if name
                                                                       else "")


def test_a_terminating_workspace_and_its_children_refuse_new_content(
        http: httpx.Client) -> None:
    ready_workspace(http, "root", "fam", type_name="organization")
    ready_workspace(http, "root:fam", "kid", type_name="team")
    # A finalizer nobody removes yet keeps the deletion going while we look.
    held = http.post(configmap_url("root:fam:kid"), json={
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    assert held.status_code == 201, held.text
    deleted = http.delete(f"/clusters/root/{TENANCY}/workspaces/fam")
    assert deleted.status_code == 200, deleted.text
    wait_phase(http, "root", "fam", "Terminating")

    # The controller marks the LogicalClusters of the subtree before it says Terminating.
    for path in ("root:fam", "root:fam:kid"):
        refused = http.post(configmap_url(path), json={"metadata": {"name": "late"}})
        assert refused.status_code == 403, refused.text
        status = refused.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
        assert status["message"] == (
            f'configmaps "late" is forbidden: unable to create new content in workspace '
            f"{path} because it is being terminated")
        for url, body in ((f"/clusters/{path}/api/v1/namespaces", {"metadata": {"name": "ns"}}),
                          (f"/clusters/{path}/{TENANCY}/workspaces", workspace_body("more"))):
            other = http.post(url, json=body)
            assert other.status_code == 403, other.text
            assert "because it is being terminated" in other.json()["message"]
        logical = http.get(f"/clusters/{path}/{CORE_KCP}/logicalclusters/cluster").json()
        assert logical["metadata"]["deletionTimestamp"]
        assert "core.kcp.io/logicalcluster-deletion" in logical["metadata"]["finalizers"]

    # Updates and finalizer removal still work; the last one lets the deletion finish.
    url = configmap_url("root:fam:kid", "held")
    updated = http.patch(url, json={"data": {"k": "v"}}, headers=MERGE)
    assert updated.status_code == 200, updated.text
    released = http.patch(url, json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert released.status_code == 200, released.text
    wait_gone(http, f"/clusters/root/{TENANCY}/workspaces/fam")
    assert http.get("/clusters/root:fam/api/v1/namespaces").status_code == 404


def test_deletion_completes_while_a_client_keeps_creating(kplane: KplaneProcess,
                                                          http: httpx.Client) -> None:
    ready_workspace(http, "root", "busy")
    ready_workspace(http, "root:busy", "kid")
    outcomes: dict[int, int] = {}
    stop = threading.Event()
    started = threading.Event()

    def keep_creating() -> None:
        with kplane.client() as own:
            number = 0
            while not stop.is_set():
                number += 1
                path = "root:busy" if number % 2 else "root:busy:kid"
                if number % 3:
                    response = own.post(configmap_url(path), json={
                        "metadata": {"name": f"cm-{number}"}})
                else:
                    response = create_workspace(own, path, f"ws-{number}")
                outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
                if outcomes.get(201, 0) >= 20:
                    started.set()

    creator = threading.Thread(target=keep_creating)
    creator.start()
    try:
        assert started.wait(timeout=30), outcomes
        deleted = http.delete(f"/clusters/root/{TENANCY}/workspaces/busy")
        assert deleted.status_code == 200, deleted.text
        eventually(lambda: http.get(f"/clusters/root/{TENANCY}/workspaces/busy").status_code
                   == 404, timeout=60, what="root:busy gone while the client keeps creating")
        assert creator.is_alive()  # the client was still at it when the deletion finished
    finally:
        stop.set()
        creator.join(timeout=30)
    assert outcomes.get(403, 0) > 0, outcomes
    assert set(outcomes) <= {201, 403, 404}, outcomes


# Who may use a WorkspaceType --------------------------------------------------------------

RBAC = "apis/rbac.authorization.k8s.io/v1"
USE_DENIED = ("unable to use cluster workspace type {}: missing verb='use' permission on "
              "workspacetype")


def until_response(send: Callable[[], httpx.Response], accept: Callable[[httpx.Response], bool],
                   *, what: str) -> httpx.Response:
    """Repeat a request until its response is accepted (RBAC grants apply asynchronously)."""
    def attempt() -> httpx.Response | None:
        response = send()
        return response if accept(response) else None

    found: httpx.Response = eventually(attempt, what=what)
    return found


def rbac_settled(response: httpx.Response) -> bool:
    """Not refused by RBAC itself (which a grant just written may still be)."""
    return ("cannot create resource" not in response.text
            and "access to workspace" not in response.text)


def as_user(http: httpx.Client, user: str) -> dict[str, str]:
    """Headers acting as ``user`` (the admin may impersonate anyone)."""
    return {"Impersonate-User": user}


def grant(http: httpx.Client, workspace: str, name: str, rules: list[dict[str, Any]],
          user: str) -> None:
    role = http.post(f"/clusters/{workspace}/{RBAC}/clusterroles",
                     json={"metadata": {"name": name}, "rules": rules})
    assert role.status_code == 201, role.text
    binding = http.post(f"/clusters/{workspace}/{RBAC}/clusterrolebindings", json={
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    assert binding.status_code == 201, binding.text


@pytest.fixture(scope="module")
def provider_type(http: httpx.Client) -> str:
    """root:prov with a WorkspaceType ``private``; alice administers root:alice-ws only."""
    ready_workspace(http, "root", "prov", type_name="organization")
    made = http.post(f"/clusters/root:prov/{TENANCY}/workspacetypes", json={
        "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType",
        "metadata": {"name": "private"}, "spec": {}})
    assert made.status_code == 201, made.text
    ready_workspace(http, "root", "alice-ws")
    grant(http, "root:alice-ws", "alice-admin", [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]}], "alice")
    until_response(lambda: http.get(f"/clusters/root:alice-ws/{TENANCY}/workspaces",
                                    headers=as_user(http, "alice")),
                   lambda r: r.status_code == 200, what="alice's grant in effect")
    return "root:prov"


def test_a_type_in_another_workspace_needs_use(http: httpx.Client, provider_type: str) -> None:
    alice = as_user(http, "alice")
    url = f"/clusters/root:alice-ws/{TENANCY}/workspaces"
    refused = http.post(url, json=workspace_body("p1", type_name="private",
                                                  type_path=provider_type), headers=alice)
    assert refused.status_code == 403, refused.text
    status = refused.json()
    assert (status["kind"], status["reason"]) == ("Status", "Forbidden")
    assert status["message"] == ('workspaces.tenancy.kcp.io "p1" is forbidden: '
                                 + USE_DENIED.format("root:prov:private"))
    # Server-side apply creates through the same check.
    applied = http.patch(f"{url}/p1", params={"fieldManager": "alice"},
                         content=json.dumps(workspace_body(
                             "p1", type_name="private", type_path=provider_type)),
                         headers={**alice, "Content-Type": "application/apply-patch+yaml"})
    assert applied.status_code == 403, applied.text
    assert applied.json()["message"] == status["message"]
    assert http.get(f"{url}/p1").status_code == 404

    grant(http, provider_type, "alice-uses-private", [
        {"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"],
         "resourceNames": ["private"], "verbs": ["use"]}], "alice")
    made = until_response(
        lambda: http.post(url, json=workspace_body("p1", type_name="private",
                                                   type_path=provider_type), headers=alice),
        lambda r: r.status_code != 403, what="alice allowed to use root:prov:private")
    assert made.status_code == 201, made.text
    assert made.json()["spec"]["type"] == {"name": "private", "path": "root:prov"}
    assert made.json()["metadata"]["annotations"][
        "experimental.tenancy.kcp.io/owner"].startswith('{"username":"alice"')
    # bob has no such grant.
    bob = http.post(url, json=workspace_body("p2", type_name="private",
                                             type_path=provider_type), headers=as_user(http, "bob"))
    assert bob.status_code == 403, bob.text


@pytest.mark.parametrize(("type_name", "type_path"), [
    ("private", "root:prov"),        # exists, no permission
    ("missing", "root:prov"),        # does not exist
    ("private", "root:nowhere"),     # no such workspace
])
def test_a_missing_type_gets_the_same_answer_as_a_forbidden_one(
        http: httpx.Client, provider_type: str, type_name: str, type_path: str) -> None:
    carol = as_user(http, "carol")
    grant_name = "carol-admin"
    if http.get(f"/clusters/root:alice-ws/{RBAC}/clusterrolebindings/{grant_name}"
                ).status_code == 404:
        grant(http, "root:alice-ws", grant_name, [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}], "carol")
    response = until_response(
        lambda: http.post(f"/clusters/root:alice-ws/{TENANCY}/workspaces",
                          json=workspace_body("c", type_name=type_name, type_path=type_path),
                          headers=carol),
        rbac_settled, what="carol's grant in effect")
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "Forbidden"
    assert response.json()["message"] == ('workspaces.tenancy.kcp.io "c" is forbidden: '
                                          + USE_DENIED.format(f"{type_path}:{type_name}"))


def test_roots_builtin_types_are_usable_by_whoever_may_create_workspaces(
        http: httpx.Client, provider_type: str) -> None:
    alice = as_user(http, "alice")
    url = f"/clusters/root:alice-ws/{TENANCY}/workspaces"
    plain = http.post(url, json=workspace_body("plain-child"), headers=alice)
    assert plain.status_code == 201, plain.text
    assert plain.json()["spec"]["type"] == {"name": "universal", "path": "root"}
    explicit = http.post(url, json=workspace_body("explicit-child", type_name="universal"),
                         headers=alice)
    assert explicit.status_code == 201, explicit.text
    # dave may create workspaces in root, and nothing else: organizations are his to make.
    grant(http, "root", "dave-creates-workspaces", [
        {"apiGroups": ["tenancy.kcp.io"], "resources": ["workspaces"],
         "verbs": ["create", "get"]},
        {"nonResourceURLs": ["/"], "verbs": ["access"]}], "dave")
    org = until_response(
        lambda: http.post(f"/clusters/root/{TENANCY}/workspaces",
                          json=workspace_body("daves-org", type_name="organization"),
                          headers=as_user(http, "dave")),
        rbac_settled, what="dave's grant in effect")
    assert org.status_code == 201, org.text
    assert org.json()["spec"]["type"] == {"name": "organization", "path": "root"}
    wait_phase(http, "root", "daves-org", "Ready")
