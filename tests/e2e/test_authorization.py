"""The authorization matrix, end to end: users x verbs x resources x two workspaces.

Four users hold different grants in two sibling workspaces (the same names, other rights
in each). Every cell is asserted three ways that must agree with one model of upstream's
default ClusterRoles: ``kubectl auth can-i`` with the user's own minted kubeconfig,
``kubectl auth can-i`` by the admin impersonating the user (``--as``), and the real request
sent with the user's client certificate. Two full rows also run as real kubectl commands.
Refusals must be upstream-worded 403 Status objects naming user, verb, resource and
workspace. The helpers at the top (minting identities, binding roles) are shared with the
other security tests.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import KUBECTL, KplaneProcess
from tests.e2e.test_workspaces import eventually, ready_workspace

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

RBAC = "apis/rbac.authorization.k8s.io/v1"
NAMESPACE = "team"
USERS = ("ws-admin", "editor", "viewer", "outsider")
VERBS = ("get", "list", "create", "update", "delete", "watch")
RESOURCES = ("configmaps", "secrets", "roles", "namespaces")
WS_A = "root:authz-a"
WS_B = "root:authz-b"

# Grants per workspace: "cluster-admin", "view" (cluster-wide), "edit@team" (RoleBinding in
# the team namespace); every user with a grant also gets the workspace access role.
GRANTS: dict[str, dict[str, str | None]] = {
    WS_A: {"ws-admin": "cluster-admin", "editor": "edit@team", "viewer": "view",
           "outsider": None},
    WS_B: {"ws-admin": "view", "editor": None, "viewer": "cluster-admin",
           "outsider": "edit@team"},
}
READ = frozenset({"get", "list", "watch"})


# Helpers shared with the other security tests ---------------------------------------------


def mint_kubeconfig(kplane: KplaneProcess, *, workspace: str, user: str,
                    groups: tuple[str, ...] = (), out: Path, expires: str = "1h") -> Path:
    """A kubeconfig for ``workspace`` with a fresh client certificate for ``user``."""
    group_args = list(itertools.chain.from_iterable(("--group", g) for g in groups))
    subprocess.run(
        [sys.executable, "-m", "kplane.cli.main", "kubeconfig", workspace, "--user", user,
         *group_args, "--expires", expires, "--data-dir", str(kplane.data_dir),
         "-o", str(out), "--kubeconfig", str(kplane.kubeconfig)],
        check=True, capture_output=True, text=True, timeout=30)
    return out


def minted_cert(kplane: KplaneProcess, kubeconfig: Path) -> tuple[str, str]:
    """The client certificate and key of a minted kubeconfig, written next to it."""
    config = yaml.safe_load(kubeconfig.read_text())
    user = config["users"][0]["user"]
    cert, key = kubeconfig.with_suffix(".crt"), kubeconfig.with_suffix(".key")
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return str(cert), str(key)


def user_client(kplane: KplaneProcess, cert: tuple[str, str] | None = None,
                **kwargs: Any) -> httpx.Client:
    """An httpx client trusting kplane's CA, with the given client certificate (or none)."""
    context = ssl.create_default_context(cafile=kplane.ca)
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.Client(base_url=kplane.url, verify=context, timeout=10.0, **kwargs)


def run_kubectl(kubeconfig: Path, *args: str, input: str | None = None,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECACHEDIR": str(kubeconfig.parent / "kubecache")}
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args], input=input,
                          capture_output=True, text=True, timeout=timeout, env=env)


def bind_cluster_role(http: httpx.Client, *, workspace: str, name: str, role: str,
                      user: str = "", group: str = "") -> None:
    subject = {"kind": "User", "name": user} if user else {"kind": "Group", "name": group}
    response = http.post(f"/clusters/{workspace}/{RBAC}/clusterrolebindings", json={
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **subject}]})
    assert response.status_code == 201, response.text


def bind_role_in_namespace(http: httpx.Client, *, workspace: str, namespace: str, name: str,
                           role: str, user: str) -> None:
    response = http.post(
        f"/clusters/{workspace}/{RBAC}/namespaces/{namespace}/rolebindings", json={
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]})
    assert response.status_code == 201, response.text


def assert_forbidden_status(response: httpx.Response, *, user: str, verb: str,
                            resource: str, workspace: str) -> None:
    """A 403 Status worded as kube-apiserver's, naming who, what and where."""
    assert response.status_code == 403, (response.status_code, response.text)
    status = response.json()
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure" and status["reason"] == "Forbidden"
    assert status["code"] == 403
    message = status["message"]
    assert f'User "{user}"' in message, message
    assert f'workspace "{workspace}"' in message, message
    if "needs the verb \"access\"" not in message:
        assert f'cannot {verb} resource "{resource}"' in message, message


# The model ---------------------------------------------------------------------------------


def expected(workspace: str, user: str, verb: str, resource: str) -> bool:
    """What upstream's default ClusterRoles allow, given GRANTS."""
    grant = GRANTS[workspace][user]
    if grant == "cluster-admin":
        return True
    if grant == "view":
        return verb in READ and resource in {"configmaps", "namespaces"}
    if grant == "edit@team":
        # edit reads and writes configmaps and secrets; namespaces are cluster-scoped, so a
        # RoleBinding in one namespace does not reach them; edit has no rights on roles.
        return resource in {"configmaps", "secrets"}
    return False


@dataclass(frozen=True)
class Identity:
    user: str
    workspace: str
    kubeconfig: Path
    cert: tuple[str, str]


@dataclass(frozen=True)
class Matrix:
    identities: dict[tuple[str, str], Identity]
    admin_kubeconfigs: dict[str, Path]


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        yield session


def _grant(http: httpx.Client, workspace: str, user: str, grant: str | None) -> None:
    if grant is None:
        return
    bind_cluster_role(http, workspace=workspace, name=f"{user}-access",
                      role="system:kcp:workspace:access", user=user)
    if grant == "edit@team":
        bind_role_in_namespace(http, workspace=workspace, namespace=NAMESPACE,
                               name=f"{user}-edit", role="edit", user=user)
    else:
        bind_cluster_role(http, workspace=workspace, name=f"{user}-{grant}", role=grant,
                          user=user)


def _seed_targets(http: httpx.Client, workspace: str) -> None:
    """One object per (user, verb needing a name, resource), so cells do not interfere."""
    for user, verb, resource in itertools.product(USERS, ("get", "update", "delete"),
                                                  RESOURCES):
        response = http.post(collection_url(workspace, resource),
                             json=body_for(resource, target_name(user, verb, resource)))
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def matrix(kplane: KplaneProcess, http: httpx.Client,
           tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    base = tmp_path_factory.mktemp("authz")
    identities = {}
    admins = {}
    for workspace in (WS_A, WS_B):
        parent, _, name = workspace.rpartition(":")
        ready_workspace(http, parent, name)
        created = http.post(f"/clusters/{workspace}/api/v1/namespaces",
                            json={"metadata": {"name": NAMESPACE}})
        assert created.status_code == 201, created.text
        for user in USERS:
            _grant(http, workspace, user, GRANTS[workspace][user])
            path = base / f"{user}-{name}.kubeconfig"
            mint_kubeconfig(kplane, workspace=workspace, user=user, out=path)
            identities[(workspace, user)] = Identity(user, workspace, path,
                                                     minted_cert(kplane, path))
        _seed_targets(http, workspace)
        admin = base / f"admin-{name}.kubeconfig"
        subprocess.run([sys.executable, "-m", "kplane.cli.main", "kubeconfig", workspace,
                        "-o", str(admin), "--kubeconfig", str(kplane.kubeconfig)],
                       check=True, capture_output=True, timeout=30)
        admins[workspace] = admin
    return Matrix(identities, admins)


def target_name(user: str, verb: str, resource: str) -> str:
    prefix = "authz-" if resource == "namespaces" else ""
    return f"{prefix}{user}-{verb}"


def collection_url(workspace: str, resource: str) -> str:
    if resource == "namespaces":
        return f"/clusters/{workspace}/api/v1/namespaces"
    group = RBAC if resource == "roles" else "api/v1"
    return f"/clusters/{workspace}/{group}/namespaces/{NAMESPACE}/{resource}"


def body_for(resource: str, name: str) -> dict[str, Any]:
    meta = {"name": name}
    if resource == "configmaps":
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}
    if resource == "secrets":
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                "stringData": {"k": "v"}}
    if resource == "roles":
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


CELLS = list(itertools.product((WS_A, WS_B), USERS, VERBS, RESOURCES))


def _can_i_args(verb: str, resource: str) -> list[str]:
    namespace = [] if resource == "namespaces" else ["-n", NAMESPACE]
    return ["auth", "can-i", verb, resource, *namespace]


def _can_i_answer(result: subprocess.CompletedProcess[str]) -> bool:
    """kubectl prints yes/no; a 403 on the review itself (no workspace access) means no."""
    if result.returncode == 0:
        assert result.stdout.strip() == "yes", result
        return True
    assert result.returncode == 1, result
    assert result.stdout.strip() == "no" or "Forbidden" in result.stderr, result
    return False


def test_can_i_with_each_users_own_kubeconfig_matches_the_model(matrix: Matrix) -> None:
    def ask(cell: tuple[str, str, str, str]) -> tuple[tuple[str, str, str, str], bool]:
        workspace, user, verb, resource = cell
        identity = matrix.identities[(workspace, user)]
        return cell, _can_i_answer(run_kubectl(identity.kubeconfig,
                                               *_can_i_args(verb, resource)))

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = dict(pool.map(ask, CELLS))
    wrong = {cell: got for cell, got in answers.items() if got != expected(*cell)}
    assert not wrong, wrong
    assert sum(answers.values()) == sum(expected(*cell) for cell in CELLS) > 0


def test_can_i_through_impersonation_matches_the_model(matrix: Matrix) -> None:
    def ask(cell: tuple[str, str, str, str]) -> tuple[tuple[str, str, str, str], bool]:
        workspace, user, verb, resource = cell
        result = run_kubectl(matrix.admin_kubeconfigs[workspace], "--as", user,
                             *_can_i_args(verb, resource))
        return cell, _can_i_answer(result)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = dict(pool.map(ask, CELLS))
    wrong = {cell: got for cell, got in answers.items() if got != expected(*cell)}
    assert not wrong, wrong


def _real_request(http: httpx.Client, workspace: str, user: str, verb: str,
                  resource: str) -> httpx.Response:
    collection = collection_url(workspace, resource)
    item = f"{collection}/{target_name(user, verb, resource)}"
    if verb == "get":
        return http.get(item)
    if verb == "list":
        return http.get(collection)
    if verb == "create":
        return http.post(collection, json=body_for(resource, f"new-{user}"))
    if verb == "update":
        body = body_for(resource, target_name(user, verb, resource))
        body["metadata"]["labels"] = {"touched": "yes"}
        return http.put(item, json=body)
    if verb == "delete":
        return http.delete(item)
    with http.stream("GET", collection, params={"watch": "1", "timeoutSeconds": "1"}) as stream:
        stream.read() if stream.status_code != 200 else None
        return stream


def test_real_requests_with_minted_certificates_match_the_model(
        kplane: KplaneProcess, matrix: Matrix) -> None:
    def run(cell: tuple[str, str, str, str]) -> tuple[tuple[str, str, str, str], int]:
        workspace, user, verb, resource = cell
        identity = matrix.identities[(workspace, user)]
        with user_client(kplane, identity.cert) as http:
            response = _real_request(http, workspace, user, verb, resource)
            if response.status_code == 403:
                assert_forbidden_status(response, user=user, verb=verb, resource=resource,
                                        workspace=workspace)
            return cell, response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = dict(pool.map(run, CELLS))
    wrong = {cell: code for cell, code in codes.items()
             if (200 <= code < 300) != expected(*cell) or code not in (200, 201, 403)}
    assert not wrong, wrong


@pytest.mark.parametrize(("workspace", "user"), [(WS_A, "editor"), (WS_B, "viewer"),
                                                 (WS_A, "viewer")])
def test_a_full_row_with_real_kubectl_commands(matrix: Matrix, workspace: str,
                                               user: str) -> None:
    kubeconfig = matrix.identities[(workspace, user)].kubeconfig

    def run(cell: tuple[str, str]) -> tuple[tuple[str, str], subprocess.CompletedProcess[str]]:
        verb, resource = cell
        return cell, run_kubectl(kubeconfig, *_kubectl_command(user, verb, resource),
                                 input=_kubectl_input(user, verb, resource))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = dict(pool.map(run, itertools.product(VERBS, RESOURCES)))
    for (verb, resource), result in results.items():
        if expected(workspace, user, verb, resource):
            assert result.returncode == 0, (verb, resource, result.stderr)
        else:
            assert result.returncode != 0, (verb, resource, result.stdout)
            assert "Error from server (Forbidden)" in result.stderr, result.stderr
            assert f'User "{user}" cannot {verb}' in result.stderr, result.stderr
            assert f'in workspace "{workspace}"' in result.stderr, result.stderr


def _kubectl_command(user: str, verb: str, resource: str) -> list[str]:
    # "row-" names never clash with the objects the httpx cells use.
    namespace = [] if resource == "namespaces" else ["-n", NAMESPACE]
    kind = {"configmaps": "configmap", "secrets": "secret",
            "roles": "role.rbac.authorization.k8s.io", "namespaces": "namespace"}[resource]
    name = target_name(f"row-{user}", verb, resource)
    if verb == "get":
        return ["get", kind, name, *namespace]
    if verb == "list":
        return ["get", resource, *namespace]
    if verb in ("create", "update"):
        return ["create" if verb == "create" else "replace", "-f", "-", *namespace]
    if verb == "delete":
        return ["delete", kind, name, *namespace, "--wait=false"]
    path = collection_url("x", resource).split("/", 3)[3]
    return ["get", "--raw", f"/{path}?watch=1&timeoutSeconds=1"]


def _kubectl_input(user: str, verb: str, resource: str) -> str | None:
    if verb not in ("create", "update"):
        return None
    name = target_name(f"row-{user}", verb, resource)
    return json.dumps(body_for(resource, name if verb == "update" else f"{name}-made"))


@pytest.fixture(scope="module", autouse=True)
def _row_targets(http: httpx.Client, matrix: Matrix) -> None:
    """Objects the kubectl rows get, replace and delete."""
    for workspace, user in ((WS_A, "editor"), (WS_B, "viewer"), (WS_A, "viewer")):
        for verb, resource in itertools.product(("get", "update", "delete"), RESOURCES):
            name = target_name(f"row-{user}", verb, resource)
            response = http.post(collection_url(workspace, resource),
                                 json=body_for(resource, name))
            assert response.status_code == 201, response.text


def test_rights_in_one_workspace_confer_nothing_in_the_other(
        kplane: KplaneProcess, matrix: Matrix) -> None:
    # editor is edit in A and nothing in B; with A's certificate pointed at B, B's answer.
    identity = matrix.identities[(WS_A, "editor")]
    with user_client(kplane, identity.cert) as http:
        in_a = http.get(collection_url(WS_A, "configmaps"))
        in_b = http.get(collection_url(WS_B, "configmaps"))
    assert in_a.status_code == 200, in_a.text
    assert_forbidden_status(in_b, user="editor", verb="list", resource="configmaps",
                            workspace=WS_B)
    assert 'access to workspace "root:authz-b" is forbidden' in in_b.json()["message"]


def test_forbidden_message_is_upstreams_wording(kplane: KplaneProcess, matrix: Matrix) -> None:
    identity = matrix.identities[(WS_A, "viewer")]
    with user_client(kplane, identity.cert) as http:
        response = http.delete(f"{collection_url(WS_A, 'configmaps')}/viewer-delete")
    assert response.status_code == 403
    status = response.json()
    assert status["message"] == (
        'configmaps "viewer-delete" is forbidden: User "viewer" cannot delete resource '
        '"configmaps" in API group "" in the namespace "team" in workspace "root:authz-a"')
    assert status["details"] == {"name": "viewer-delete", "kind": "configmaps"}


# Beyond the matrix (these change RBAC objects, so they run after it) -----------------------


def test_non_resource_urls_follow_upstreams_default_policy(
        kplane: KplaneProcess, http: httpx.Client, matrix: Matrix) -> None:
    viewer = matrix.identities[(WS_A, "viewer")]
    outsider = matrix.identities[(WS_A, "outsider")]
    assert http.get(f"/clusters/{WS_A}/metrics").status_code == 200
    with user_client(kplane, viewer.cert) as client:
        for path in ("api", "api/v1", "apis", "version", "healthz", "openapi/v3"):
            response = client.get(f"/clusters/{WS_A}/{path}")
            assert response.status_code == 200, (path, response.text[:200])
        metrics = client.get(f"/clusters/{WS_A}/metrics")
        assert metrics.status_code == 403, metrics.text
        assert metrics.json()["message"] == (
            f'forbidden: User "viewer" cannot get path "/metrics" in workspace "{WS_A}"')
    with user_client(kplane, outsider.cert) as client:
        # No access to the workspace: even discovery is closed; health stays open.
        assert client.get(f"/clusters/{WS_A}/api").status_code == 403
        assert client.get("/healthz").status_code == 200


def test_the_all_clusters_view_is_for_masters_only(kplane: KplaneProcess,
                                                   matrix: Matrix) -> None:
    admin_of_a = matrix.identities[(WS_A, "ws-admin")]
    with user_client(kplane, admin_of_a.cert) as client:
        response = client.get("/clusters/*/api/v1/configmaps")
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "Forbidden"


def _eventually_code(client: httpx.Client, url: str, code: int) -> None:
    eventually(lambda: client.get(url).status_code == code, what=f"{url} -> {code}")


def test_an_aggregated_rule_extends_view_in_its_own_workspace_only(
        kplane: KplaneProcess, http: httpx.Client, matrix: Matrix) -> None:
    created = http.post(f"/clusters/{WS_A}/{RBAC}/clusterroles", json={
        "metadata": {"name": "secrets-to-view",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]})
    assert created.status_code == 201, created.text
    secrets_a = collection_url(WS_A, "secrets")
    secrets_b = collection_url(WS_B, "secrets")
    with user_client(kplane, matrix.identities[(WS_A, "viewer")].cert) as viewer:
        _eventually_code(viewer, secrets_a, 200)
    with user_client(kplane, matrix.identities[(WS_B, "ws-admin")].cert) as view_in_b:
        assert view_in_b.get(secrets_b).status_code == 403
    # A custom aggregating ClusterRole picks up the same label through its selector.
    aggregating = http.post(f"/clusters/{WS_A}/{RBAC}/clusterroles", json={
        "metadata": {"name": "collects-view-extras"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {
            "rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}})
    assert aggregating.status_code == 201, aggregating.text
    bind_cluster_role(http, workspace=WS_A, name="outsider-access",
                      role="system:kcp:workspace:access", user="outsider")
    bind_cluster_role(http, workspace=WS_A, name="outsider-collects",
                      role="collects-view-extras", user="outsider")
    with user_client(kplane, matrix.identities[(WS_A, "outsider")].cert) as outsider:
        _eventually_code(outsider, secrets_a, 200)
        # Only the aggregated rule, not the rest of view.
        assert outsider.get(collection_url(WS_A, "configmaps")).status_code == 403


def test_a_stored_builtin_name_overrides_it_in_that_workspace_only(
        kplane: KplaneProcess, http: httpx.Client, matrix: Matrix) -> None:
    override = http.post(f"/clusters/{WS_B}/{RBAC}/clusterroles", json={
        "metadata": {"name": "view"}, "rules": []})
    assert override.status_code == 201, override.text
    with user_client(kplane, matrix.identities[(WS_B, "ws-admin")].cert) as view_in_b, \
            user_client(kplane, matrix.identities[(WS_A, "viewer")].cert) as view_in_a:
        _eventually_code(view_in_b, collection_url(WS_B, "configmaps"), 403)
        assert view_in_a.get(collection_url(WS_A, "configmaps")).status_code == 200
        deleted = http.delete(f"/clusters/{WS_B}/{RBAC}/clusterroles/view")
        assert deleted.status_code == 200, deleted.text
        _eventually_code(view_in_b, collection_url(WS_B, "configmaps"), 200)


def test_a_binding_to_a_role_of_another_workspace_grants_nothing(
        kplane: KplaneProcess, http: httpx.Client, matrix: Matrix) -> None:
    # "secrets-to-view" exists only in A; a binding to it in B must not reach A's rules.
    bind_cluster_role(http, workspace=WS_B, name="ws-admin-foreign",
                      role="secrets-to-view", user="ws-admin")
    with user_client(kplane, matrix.identities[(WS_B, "ws-admin")].cert) as client:
        assert client.get(collection_url(WS_B, "configmaps")).status_code == 200
        assert client.get(collection_url(WS_B, "secrets")).status_code == 403
    review = http.post(
        f"/clusters/{WS_B}/apis/authorization.k8s.io/v1/subjectaccessreviews", json={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "ws-admin", "resourceAttributes": {
                "verb": "list", "resource": "secrets", "namespace": NAMESPACE}}})
    assert review.status_code == 201 and review.json()["status"]["allowed"] is False
