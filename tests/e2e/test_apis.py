"""Exports, bindings and the APIExport virtual workspace, end to end with real clients.

Two provider workspaces export the same group and resource (``widgets.example.io``) with
different identities; three consumers bind them (one rejects the Secrets claim). The tests
drive kubectl, the official Python client and plain HTTPS against one kplane process, on
SQLite and on etcd. A third provider (``tool-provider``) takes its exports and bindings apart
under open watches, which must end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kubernetes
import pytest

from tests.e2e.server import KplaneProcess
from tests.e2e.test_authorization import (
    bind_cluster_role,
    mint_kubeconfig,
    minted_cert,
    user_client,
)

pytestmark = pytest.mark.both_backends

APIS = "/apis/apis.kcp.io/v1alpha2"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
T = TypeVar("T")

SCHEMA = {
    "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
    "metadata": {"name": "v1.widgets.example.io"},
    "spec": {
        "group": "example.io",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                  "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }},
        }],
    },
}


def export_body(name: str) -> dict[str, Any]:
    return {"apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport",
            "metadata": {"name": name},
            "spec": {"resources": [{"group": "example.io", "name": "widgets",
                                    "schema": "v1.widgets.example.io", "storage": {"crd": {}}}],
                     "permissionClaims": [{"group": "", "resource": "secrets",
                                           "verbs": ["*"]}]}}


def binding_body(path: str, export: str, *, accept_secrets: bool) -> dict[str, Any]:
    return {"apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
            "metadata": {"name": export},
            "spec": {"reference": {"export": {"path": path, "name": export}},
                     "permissionClaims": [{
                         "group": "", "resource": "secrets", "verbs": ["*"],
                         "selector": {"matchAll": True},
                         "state": "Accepted" if accept_secrets else "Rejected"}]}}


def widget(name: str, size: int = 1) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"size": size}}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class World:
    http: httpx.Client
    clusters: dict[str, str]          # workspace name -> logical cluster name
    endpoints: dict[str, str]         # export workspace -> virtual workspace URL


def create_workspace(http: httpx.Client, name: str) -> str:
    response = http.post("/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces",
                         json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text

    def ready() -> str | None:
        ws = http.get(f"/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/{name}").json()
        return ws["spec"].get("cluster") if ws.get("status", {}).get("phase") == "Ready" \
            else None

    return wait_for(f"workspace {name}", ready)


def binding_status(http: httpx.Client, workspace: str, name: str) -> dict[str, Any]:
    response = http.get(f"/clusters/root:{workspace}{APIS}/apibindings/{name}")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json().get("status") or {}
    return status


def wait_bound(http: httpx.Client, workspace: str, name: str) -> dict[str, Any]:
    return wait_for(f"binding {workspace}/{name} Bound", lambda: (
        binding_status(http, workspace, name)
        if binding_status(http, workspace, name).get("phase") == "Bound" else None))


@pytest.fixture(scope="module")
def world(kplane: KplaneProcess) -> Iterator[World]:
    http = kplane.client()
    clusters = {name: create_workspace(http, name) for name in (
        "provider-a", "provider-b", "consumer-1", "consumer-2", "consumer-3")}
    endpoints = {}
    for provider in ("provider-a", "provider-b"):
        base = f"/clusters/root:{provider}"
        response = http.post(f"{base}/apis/apis.kcp.io/v1alpha1/apiresourceschemas",
                             json=SCHEMA)
        assert response.status_code == 201, response.text
        response = http.post(f"{base}{APIS}/apiexports", json=export_body("widgets"))
        assert response.status_code == 201, response.text

        def endpoint(base: str = base) -> str | None:
            response = http.get(f"{base}/apis/apis.kcp.io/v1alpha1/apiexportendpointslices/"
                                "widgets")
            if response.status_code != 200:
                return None
            found = (response.json().get("status") or {}).get("endpoints") or []
            return found[0]["url"] if found else None

        endpoints[provider] = wait_for(f"{provider} endpoint", endpoint)
    for consumer, provider, accept in (("consumer-1", "provider-a", True),
                                       ("consumer-2", "provider-a", False),
                                       ("consumer-3", "provider-b", True)):
        response = http.post(f"/clusters/root:{consumer}{APIS}/apibindings",
                             json=binding_body(f"root:{provider}", "widgets",
                                               accept_secrets=accept))
        assert response.status_code == 201, response.text
        wait_bound(http, consumer, "widgets")
        response = http.post(f"/clusters/root:{consumer}/api/v1/namespaces",
                             json={"metadata": {"name": "team"}})
        assert response.status_code == 201, response.text
    try:
        yield World(http, clusters, endpoints)
    finally:
        http.close()


def vw_get(world: World, provider: str, path: str) -> httpx.Response:
    url = world.endpoints[provider] + path
    return world.http.get(url)


def test_an_export_gets_an_identity_and_an_endpoint(world: World) -> None:
    http = world.http
    export = http.get(f"/clusters/root:provider-a{APIS}/apiexports/widgets").json()
    secret = http.get("/clusters/root:provider-a/api/v1/namespaces/kcp-system/secrets/"
                      "widgets").json()
    key = base64.b64decode(secret["data"]["key"])
    assert export["status"]["identityHash"] == hashlib.sha256(key).hexdigest()
    other = http.get(f"/clusters/root:provider-b{APIS}/apiexports/widgets").json()
    assert other["status"]["identityHash"] != export["status"]["identityHash"]
    assert world.endpoints["provider-a"].endswith(
        f"/services/apiexport/{world.clusters['provider-a']}/widgets")
    # v1alpha1 is served too, converted from the stored v1alpha2 form.
    old = http.get("/clusters/root:provider-a/apis/apis.kcp.io/v1alpha1/apiexports/widgets")
    assert old.status_code == 200, old.text
    assert old.json()["spec"]["latestResourceSchemas"] == ["v1.widgets.example.io"]


def test_a_binding_is_bound_and_its_kind_is_served(kplane: KplaneProcess,
                                                   world: World) -> None:
    status = binding_status(world.http, "consumer-1", "widgets")
    assert status["phase"] == "Bound"
    assert status["apiExportClusterName"] == world.clusters["provider-a"]
    (bound,) = status["boundResources"]
    assert (bound["group"], bound["resource"]) == ("example.io", "widgets")
    assert bound["schema"]["name"] == "v1.widgets.example.io"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == conditions["InitialBindingCompleted"] == "True"
    assert status["appliedPermissionClaims"][0]["resource"] == "secrets"
    assert binding_status(world.http, "consumer-2", "widgets")["appliedPermissionClaims"] == []
    server = f"{kplane.url}/clusters/root:consumer-1"
    resources = kplane.kubectl("api-resources", "--api-group=example.io", server=server).stdout
    assert "widgets" in resources and "Widget" in resources
    kplane.kubectl("-n", "team", "create", "-f", "-", server=server,
                   input=json.dumps(widget("from-kubectl", 2)))
    got = kplane.kubectl_json("--server", server, "-n", "team", "get", "widget", "from-kubectl")
    assert got["spec"]["size"] == 2
    # A workspace that bound nothing does not serve the kind.
    bare = world.http.get("/clusters/root:provider-a/apis/example.io/v1/widgets")
    assert bare.status_code == 404


def test_objects_of_two_exports_never_mix(world: World) -> None:
    http = world.http
    for consumer in ("consumer-1", "consumer-3"):
        response = http.post(f"/clusters/root:{consumer}/apis/example.io/v1/namespaces/team/"
                             "widgets", json=widget(f"w-{consumer}"))
        assert response.status_code == 201, response.text
    a = vw_get(world, "provider-a", "/clusters/*/apis/example.io/v1/widgets").json()
    b = vw_get(world, "provider-b", "/clusters/*/apis/example.io/v1/widgets").json()
    seen_a = {(i["metadata"]["annotations"]["kcp.io/cluster"], i["metadata"]["name"])
              for i in a["items"]}
    seen_b = {(i["metadata"]["annotations"]["kcp.io/cluster"], i["metadata"]["name"])
              for i in b["items"]}
    assert (world.clusters["consumer-1"], "w-consumer-1") in seen_a
    assert (world.clusters["consumer-3"], "w-consumer-3") in seen_b
    assert all(cluster != world.clusters["consumer-3"] for cluster, _ in seen_a)
    assert all(cluster == world.clusters["consumer-3"] for cluster, _ in seen_b)


def test_the_provider_sees_claimed_secrets_only_where_accepted(world: World) -> None:
    http = world.http
    for consumer in ("consumer-1", "consumer-2"):
        response = http.post(f"/clusters/root:{consumer}/api/v1/namespaces/team/secrets",
                             json={"metadata": {"name": f"s-{consumer}"},
                                   "stringData": {"k": "v"}})
        assert response.status_code == 201, response.text
    listed = vw_get(world, "provider-a", "/clusters/*/api/v1/secrets").json()
    names = {i["metadata"]["name"] for i in listed["items"]}
    assert "s-consumer-1" in names
    assert "s-consumer-2" not in names
    # Nothing of the provider's own workspace (its identity secret) shows either.
    assert "widgets" not in names
    refused = vw_get(world, "provider-a",
                     f"/clusters/{world.clusters['consumer-2']}/api/v1/namespaces/team/secrets")
    assert refused.status_code == 403, refused.text
    unclaimed = vw_get(world, "provider-a", "/clusters/*/api/v1/configmaps")
    assert unclaimed.status_code == 404


def test_a_watch_by_name_across_consumers_sees_only_accepted_claims(world: World) -> None:
    # consumer-1 accepted provider-a's claim on secrets; consumer-2 did not.
    for consumer in ("consumer-1", "consumer-2"):
        response = world.http.post(f"/clusters/root:{consumer}/api/v1/namespaces/team/secrets",
                                   json={"metadata": {"name": f"named-{consumer}"}})
        assert response.status_code == 201, response.text

    def named_watch(name: str) -> list[dict[str, Any]]:
        url = world.endpoints["provider-a"] + f"/clusters/*/api/v1/namespaces/team/secrets/{name}"
        with world.http.stream("GET", url, params={"watch": "1", "resourceVersion": "0",
                                                   "timeoutSeconds": "1"}) as stream:
            assert stream.status_code == 200
            return [json.loads(line) for line in stream.iter_lines() if line]

    seen = named_watch("named-consumer-1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [
        ("ADDED", "named-consumer-1")]
    assert named_watch("named-consumer-2") == []


def test_the_provider_writes_status_through_one_consumer(world: World) -> None:
    http = world.http
    consumer = world.clusters["consumer-1"]
    url = (world.endpoints["provider-a"] + f"/clusters/{consumer}/apis/example.io/v1/"
           "namespaces/team/widgets/w-consumer-1/status")
    response = http.patch(url, json={"status": {"ready": True}},
                          headers={"Content-Type": "application/merge-patch+json"})
    assert response.status_code == 200, response.text
    seen = http.get("/clusters/root:consumer-1/apis/example.io/v1/namespaces/team/widgets/"
                    "w-consumer-1").json()
    assert seen["status"] == {"ready": True}
    across = world.http.post(world.endpoints["provider-a"] +
                             "/clusters/*/apis/example.io/v1/namespaces/team/widgets",
                             json=widget("nope"))
    assert across.status_code == 405
    # A consumer of the other export is not reachable through this one.
    other = world.endpoints["provider-a"] + (
        f"/clusters/{world.clusters['consumer-3']}/apis/example.io/v1/namespaces/team/widgets")
    assert http.get(other).status_code == 403


def test_kubectl_and_the_python_client_work_against_the_virtual_workspace(
        kplane: KplaneProcess, world: World) -> None:
    server = world.endpoints["provider-a"] + "/clusters/*"
    resources = kplane.kubectl("api-resources", server=server).stdout
    assert "widgets" in resources and "secrets" in resources
    assert "configmaps" not in resources
    configuration = kubernetes.client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = kplane.ca
    configuration.cert_file, configuration.key_file = kplane.admin_cert
    with kubernetes.client.ApiClient(configuration) as api:
        objects = kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object(
            "example.io", "v1", "widgets")
        assert "w-consumer-1" in {i["metadata"]["name"] for i in objects["items"]}
        secrets = kubernetes.client.CoreV1Api(api).list_secret_for_all_namespaces()
        assert "s-consumer-1" in {s.metadata.name for s in secrets.items}


def test_a_watch_across_consumers_sees_new_objects(world: World) -> None:
    url = world.endpoints["provider-a"] + "/clusters/*/apis/example.io/v1/widgets"
    listed = world.http.get(url).json()
    rv = listed["metadata"]["resourceVersion"]
    with world.http.stream("GET", url, params={"watch": "1", "resourceVersion": rv,
                                               "timeoutSeconds": "10"}) as stream:
        created = world.http.post("/clusters/root:consumer-2/apis/example.io/v1/namespaces/"
                                  "team/widgets", json=widget("watched"))
        assert created.status_code == 201, created.text
        for line in stream.iter_lines():
            event = json.loads(line)
            if event["object"]["metadata"]["name"] == "watched":
                assert event["type"] == "ADDED"
                assert event["object"]["metadata"]["annotations"]["kcp.io/cluster"] == \
                    world.clusters["consumer-2"]
                break
        else:
            raise AssertionError("the watch ended without the new object")


def test_the_virtual_workspace_needs_apiexports_content(kplane: KplaneProcess, world: World,
                                                        tmp_path: Path) -> None:
    kubeconfig = mint_kubeconfig(kplane, workspace="root:provider-a", user="carol",
                                 out=tmp_path / "carol.kubeconfig")
    cert = minted_cert(kplane, kubeconfig)
    url = world.endpoints["provider-a"] + "/clusters/*/apis/example.io/v1/widgets"
    with user_client(kplane, cert) as carol:
        refused = carol.get(url)
        assert refused.status_code == 403, refused.text
        assert "apiexports/content" in refused.json()["message"]
        role = world.http.post(f"/clusters/root:provider-a{RBAC}/clusterroles", json={
            "metadata": {"name": "widgets-content"},
            "rules": [{"apiGroups": ["apis.kcp.io"], "resources": ["apiexports/content"],
                       "resourceNames": ["widgets"], "verbs": ["get", "list", "watch"]}]})
        assert role.status_code == 201, role.text
        bind_cluster_role(world.http, workspace="root:provider-a", name="carol-content",
                          role="widgets-content", user="carol")
        allowed = wait_for("carol's access", lambda: (
            response if (response := carol.get(url)).status_code == 200 else None))
        assert allowed.json()["items"]
        # get/list/watch only: changing objects needs more verbs.
        consumer = world.clusters["consumer-1"]
        write = carol.delete(world.endpoints["provider-a"] + f"/clusters/{consumer}/apis/"
                             "example.io/v1/namespaces/team/widgets/w-consumer-1")
        assert write.status_code == 403


def test_binding_needs_the_bind_verb_on_the_export(kplane: KplaneProcess, world: World,
                                                   tmp_path: Path) -> None:
    create_workspace(world.http, "consumer-4")
    bind_cluster_role(world.http, workspace="root:consumer-4", name="dave-admin",
                      role="cluster-admin", user="dave")
    kubeconfig = mint_kubeconfig(kplane, workspace="root:consumer-4", user="dave",
                                 out=tmp_path / "dave.kubeconfig")
    cert = minted_cert(kplane, kubeconfig)
    body = binding_body("root:provider-a", "widgets", accept_secrets=True)
    with user_client(kplane, cert) as dave:
        refused = dave.post(f"/clusters/root:consumer-4{APIS}/apibindings", json=body)
        assert refused.status_code == 403, refused.text
        assert '"bind"' in refused.json()["message"]
        missing = dave.post(f"/clusters/root:consumer-4{APIS}/apibindings", json=binding_body(
            "root:no-such-workspace", "widgets", accept_secrets=True))
        assert missing.status_code == 403
        malformed = dave.post(f"/clusters/root:consumer-4{APIS}/apibindings", json=binding_body(
            "root::x", "widgets", accept_secrets=True))
        assert malformed.status_code == 422, malformed.text
        assert "spec.reference.export.path" in malformed.json()["message"]
        role = world.http.post(f"/clusters/root:provider-a{RBAC}/clusterroles", json={
            "metadata": {"name": "bind-widgets"},
            "rules": [{"apiGroups": ["apis.kcp.io"], "resources": ["apiexports"],
                       "resourceNames": ["widgets"], "verbs": ["bind"]}]})
        assert role.status_code == 201, role.text
        bind_cluster_role(world.http, workspace="root:provider-a", name="dave-bind",
                          role="bind-widgets", user="dave")
        allowed = wait_for("dave may bind", lambda: (
            response if (response := dave.post(
                f"/clusters/root:consumer-4{APIS}/apibindings", json=body)).status_code == 201
            else None))
        assert allowed.json()["spec"]["reference"]["export"]["name"] == "widgets"
    wait_bound(world.http, "consumer-4", "widgets")


def test_names_already_held_are_not_bound(world: World) -> None:
    http = world.http
    create_workspace(http, "consumer-5")
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.io"},
           "spec": {"group": "example.io", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {
                                      "type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True}}}]}}
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert http.post(f"/clusters/root:consumer-5{crds}", json=crd).status_code == 201
    wait_for("CRD established", lambda: any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (http.get(f"/clusters/root:consumer-5{crds}/widgets.example.io").json()
                  .get("status") or {}).get("conditions") or []))
    response = http.post(f"/clusters/root:consumer-5{APIS}/apibindings",
                         json=binding_body("root:provider-a", "widgets", accept_secrets=True))
    assert response.status_code == 201, response.text

    def conflict() -> dict[str, Any] | None:
        status = binding_status(http, "consumer-5", "widgets")
        by_type = {c["type"]: c for c in status.get("conditions") or []}
        reason = by_type.get("BindingUpToDate", {}).get("reason")
        return status if reason == "NamingConflicts" else None

    status = wait_for("NamingConflicts", conflict)
    assert status["phase"] != "Bound"
    # The other way round: a bound workspace refuses a CRD for the bound names.
    assert http.post(f"/clusters/root:consumer-1{crds}", json=crd).status_code == 201

    def refused() -> dict[str, Any] | None:
        conditions = (http.get(f"/clusters/root:consumer-1{crds}/widgets.example.io").json()
                      .get("status") or {}).get("conditions") or []
        names = next((c for c in conditions if c["type"] == "NamesAccepted"), None)
        return names if names and names["status"] == "False" else None

    assert "APIBinding" in wait_for("CRD refused", refused)["message"]
    # The bound kind is still the export's.
    listed = http.get("/clusters/root:consumer-1/apis/example.io/v1/namespaces/team/widgets")
    assert "w-consumer-1" in {i["metadata"]["name"] for i in listed.json()["items"]}


def test_deleting_a_binding_removes_its_kind_and_objects(world: World) -> None:
    http = world.http
    base = "/clusters/root:consumer-3"
    assert http.get(f"{base}/apis/example.io/v1/namespaces/team/widgets/w-consumer-3"
                    ).status_code == 200
    assert http.delete(f"{base}{APIS}/apibindings/widgets").status_code == 200
    wait_for("binding gone", lambda: http.get(f"{base}{APIS}/apibindings/widgets"
                                              ).status_code == 404)
    wait_for("kind gone", lambda: http.get(f"{base}/apis/example.io/v1/widgets"
                                           ).status_code == 404)
    listed = vw_get(world, "provider-b", "/clusters/*/apis/example.io/v1/widgets").json()
    assert listed["items"] == []


# Open watches through the virtual workspace end when what they watch is no longer exported.
# A provider of its own (``tool-provider``) exports cluster-scoped "tools" to two more
# consumers, one export per test, so that each test can take its export apart.

TOOLS = "tools.example.io"
ENDED_WITHIN = 10.0


def tool_schema(plural: str) -> dict[str, Any]:
    kind = plural[:-1].capitalize()
    return {
        "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
        "metadata": {"name": f"v1.{plural}.{TOOLS}"},
        "spec": {
            "group": TOOLS, "scope": "Cluster",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind,
                      "listKind": f"{kind}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "integer"}}}}}}],
        },
    }


def tool_resource(plural: str) -> dict[str, Any]:
    return {"group": TOOLS, "name": plural, "schema": f"v1.{plural}.{TOOLS}",
            "storage": {"crd": {}}}


def tool(plural: str, name: str) -> dict[str, Any]:
    return {"apiVersion": f"{TOOLS}/v1", "kind": plural[:-1].capitalize(),
            "metadata": {"name": name}, "spec": {"size": 1}}


@dataclass
class Tools:
    kplane: KplaneProcess
    http: httpx.Client
    clusters: dict[str, str]

    def export(self, name: str, plurals: Sequence[str], *, claim_configmaps: bool = False,
               consumers: Sequence[str] = ("tool-user-1",)) -> str:
        """Export ``plurals`` as ``name``, bind it in ``consumers``; its endpoint URL."""
        base = "/clusters/root:tool-provider"
        spec: dict[str, Any] = {"resources": [tool_resource(p) for p in plurals]}
        if claim_configmaps:
            spec["permissionClaims"] = [{"group": "", "resource": "configmaps",
                                         "verbs": ["*"]}]
        response = self.http.post(f"{base}{APIS}/apiexports", json={
            "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport",
            "metadata": {"name": name}, "spec": spec})
        assert response.status_code == 201, response.text

        def endpoint() -> str | None:
            response = self.http.get(f"{base}/apis/apis.kcp.io/v1alpha1/"
                                     f"apiexportendpointslices/{name}")
            found = (response.json().get("status") or {}).get("endpoints") or [] \
                if response.status_code == 200 else []
            return str(found[0]["url"]) if found else None

        url = wait_for(f"{name} endpoint", endpoint)
        for consumer in consumers:
            binding: dict[str, Any] = {
                "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
                "metadata": {"name": name},
                "spec": {"reference": {"export": {"path": "root:tool-provider", "name": name}}}}
            if claim_configmaps:
                binding["spec"]["permissionClaims"] = [{
                    "group": "", "resource": "configmaps", "verbs": ["*"],
                    "selector": {"matchAll": True}, "state": "Accepted"}]
            response = self.http.post(f"/clusters/root:{consumer}{APIS}/apibindings",
                                      json=binding)
            assert response.status_code == 201, response.text
            wait_bound(self.http, consumer, name)
        return url


class OpenWatch:
    """One watch over real HTTP streaming, read by a thread: its events, and whether the
    server ended it."""

    def __init__(self, kplane: KplaneProcess, url: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.status = 0
        self._client = httpx.Client(verify=kplane.tls_context(with_client_cert=True),
                                    timeout=httpx.Timeout(10.0, read=None))
        # The server's own timeout bounds a watch that is never ended (the test's failure).
        self._params = {"watch": "1", "timeoutSeconds": "60"}
        self._url = url
        threading.Thread(target=self._read, daemon=True).start()
        if not self.opened.wait(10.0):
            raise AssertionError(f"the watch of {url} did not open")
        assert self.status == 200, self.status

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._url, params=self._params) as response:
                self.status = response.status_code
                self.opened.set()
                for line in response.iter_lines():
                    if line:
                        self.events.append(json.loads(line))
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def saw(self, event_type: str, name: str) -> bool:
        return any(e["type"] == event_type and e["object"]["metadata"]["name"] == name
                   for e in list(self.events))

    def names(self) -> list[str]:
        return [e["object"]["metadata"]["name"] for e in list(self.events)]


def wait_ended(watch: OpenWatch, what: str) -> None:
    wait_for(f"{what} to end", watch.ended.is_set, timeout=ENDED_WITHIN)


@pytest.fixture(scope="module")
def tools(kplane: KplaneProcess, world: World) -> Tools:
    http = world.http
    clusters = {name: create_workspace(http, name)
                for name in ("tool-provider", "tool-user-1", "tool-user-2")}
    for plural in ("gadgets", "gizmos", "sprockets", "cogs"):
        response = http.post("/clusters/root:tool-provider/apis/apis.kcp.io/v1alpha1/"
                             "apiresourceschemas", json=tool_schema(plural))
        assert response.status_code == 201, response.text
    for consumer in ("tool-user-1", "tool-user-2"):
        response = http.post(f"/clusters/root:{consumer}/api/v1/namespaces",
                             json={"metadata": {"name": "team"}})
        assert response.status_code == 201, response.text
    return Tools(kplane, http, clusters)


def test_a_consumer_leaving_ends_only_the_watches_of_that_consumer(tools: Tools) -> None:
    http, c4, c5 = tools.http, tools.clusters["tool-user-1"], tools.clusters["tool-user-2"]
    url = tools.export("gadgets", ["gadgets"], claim_configmaps=True,
                       consumers=("tool-user-1", "tool-user-2"))
    gadgets = f"/apis/{TOOLS}/v1/gadgets"
    configmaps = "/api/v1/namespaces/team/configmaps"
    response = http.post(f"/clusters/root:tool-user-2{gadgets}", json=tool("gadgets", "g-5"))
    assert response.status_code == 201, response.text
    leaving = OpenWatch(tools.kplane, f"{url}/clusters/{c5}{gadgets}")
    leaving_claimed = OpenWatch(tools.kplane, f"{url}/clusters/{c5}{configmaps}")
    staying = OpenWatch(tools.kplane, f"{url}/clusters/{c4}{gadgets}")
    everyone = OpenWatch(tools.kplane, f"{url}/clusters/*{gadgets}")
    everyone_claimed = OpenWatch(tools.kplane, f"{url}/clusters/*/api/v1/configmaps")

    assert http.delete(f"/clusters/root:tool-user-2{APIS}/apibindings/gadgets"
                       ).status_code == 200
    wait_for("binding gone", lambda: http.get(
        f"/clusters/root:tool-user-2{APIS}/apibindings/gadgets").status_code == 404)
    wait_ended(leaving, "the leaving consumer's watch")
    wait_ended(leaving_claimed, "the leaving consumer's watch of a claimed resource")
    # The binding's deletion deleted the consumer's objects first; that still went out.
    assert leaving.saw("DELETED", "g-5") and everyone.saw("DELETED", "g-5")
    assert http.get(f"{url}/clusters/{c5}{gadgets}").status_code == 403

    # Watches across all consumers go on, without the consumer that left.
    for name, consumer in (("cm-5", "tool-user-2"), ("cm-4", "tool-user-1")):
        response = http.post(f"/clusters/root:{consumer}{configmaps}",
                             json={"metadata": {"name": name}})
        assert response.status_code == 201, response.text
    response = http.post(f"/clusters/root:tool-user-1{gadgets}", json=tool("gadgets", "g-4"))
    assert response.status_code == 201, response.text
    wait_for("cm-4 across consumers", lambda: everyone_claimed.saw("ADDED", "cm-4"))
    # Events arrive in revision order: cm-5, written first, would have come before cm-4.
    assert "cm-5" not in everyone_claimed.names()
    wait_for("g-4 across consumers", lambda: everyone.saw("ADDED", "g-4"))
    wait_for("g-4 in tool-user-1", lambda: staying.saw("ADDED", "g-4"))
    assert not (staying.ended.is_set() or everyone.ended.is_set()
                or everyone_claimed.ended.is_set())


def test_dropping_a_resource_from_the_export_ends_its_watches(tools: Tools) -> None:
    http, c4 = tools.http, tools.clusters["tool-user-1"]
    url = tools.export("pair", ["gizmos", "sprockets"])
    gizmos, sprockets = f"/apis/{TOOLS}/v1/gizmos", f"/apis/{TOOLS}/v1/sprockets"
    dropped_everyone = OpenWatch(tools.kplane, f"{url}/clusters/*{gizmos}")
    dropped_one = OpenWatch(tools.kplane, f"{url}/clusters/{c4}{gizmos}")
    kept = OpenWatch(tools.kplane, f"{url}/clusters/*{sprockets}")

    path = f"/clusters/root:tool-provider{APIS}/apiexports/pair"
    export = http.get(path).json()
    export["spec"]["resources"] = [tool_resource("sprockets")]
    response = http.put(path, json=export)
    assert response.status_code == 200, response.text
    wait_ended(dropped_everyone, "the watch across consumers of the dropped resource")
    wait_ended(dropped_one, "the consumer's watch of the dropped resource")
    assert http.get(f"{url}/clusters/*{gizmos}").status_code == 404

    response = http.post(f"/clusters/root:tool-user-1{sprockets}",
                         json=tool("sprockets", "s-4"))
    assert response.status_code == 201, response.text
    wait_for("s-4 across consumers", lambda: kept.saw("ADDED", "s-4"))
    assert not kept.ended.is_set()


def test_deleting_the_export_ends_its_watches(tools: Tools, world: World) -> None:
    http, c4 = tools.http, tools.clusters["tool-user-1"]
    url = tools.export("cogs", ["cogs"])
    cogs = f"/apis/{TOOLS}/v1/cogs"
    everyone = OpenWatch(tools.kplane, f"{url}/clusters/*{cogs}")
    one = OpenWatch(tools.kplane, f"{url}/clusters/{c4}{cogs}")
    other_export = OpenWatch(
        tools.kplane, world.endpoints["provider-a"] + "/clusters/*/apis/example.io/v1/widgets")

    response = http.delete(f"/clusters/root:tool-provider{APIS}/apiexports/cogs")
    assert response.status_code == 200, response.text
    wait_ended(everyone, "the watch across consumers of the deleted export")
    wait_ended(one, "the consumer's watch of the deleted export")
    assert http.get(f"{url}/clusters/*{cogs}").status_code == 404

    response = http.post("/clusters/root:consumer-1/apis/example.io/v1/namespaces/team/"
                         "widgets", json=widget("after-cogs"))
    assert response.status_code == 201, response.text
    wait_for("a new widget through another export",
             lambda: other_export.saw("ADDED", "after-cogs"))
    assert not other_export.ended.is_set()
