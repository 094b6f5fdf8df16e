"""Authentication, reviews, impersonation and workspace creators, end to end.

One server started with a static token file. Each way in is exercised with the real kubectl
or raw HTTP: client certificates (CN and O), static bearer tokens, ServiceAccount tokens
from ``kubectl create token`` (bound to their workspace, dead once the SA is gone),
anonymous requests, ``kubectl auth whoami``/``can-i``/``can-i --list``, SubjectAccessReview,
TokenReview, and impersonation gated by the ``impersonate`` verb. Finally a non-master user
allowed to create workspaces becomes the admin of the workspace they create.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import KplaneProcess, free_port
from tests.e2e.test_authorization import (
    RBAC,
    bind_cluster_role,
    bind_role_in_namespace,
    mint_kubeconfig,
    minted_cert,
    run_kubectl,
    user_client,
)
from tests.e2e.test_workspaces import TENANCY, eventually, ready_workspace

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

TOKEN = "s3cr3t-token-for-tokenuser-0123456789"
WS = "root:authn"
OTHER = "root:authn-other"


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory,
           storage_args: list[str]) -> Iterator[KplaneProcess]:
    base = tmp_path_factory.mktemp("authn")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},tokenuser,uid-42,"devs,ops"\n')
    server = KplaneProcess(data_dir=base / "data", port=free_port(),
                           extra_args=["--token-auth-file", str(tokens), *storage_args])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        ready_workspace(session, "root", "authn")
        ready_workspace(session, "root", "authn-other")
        yield session


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authn-configs")


def whoami(kubeconfig: Path, *extra: str) -> dict[str, Any]:
    result = run_kubectl(kubeconfig, *extra, "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)["status"]["userInfo"]
    return status


def test_client_certificate_cn_is_the_user_and_o_the_groups(
        kplane: KplaneProcess, http: httpx.Client, base: Path) -> None:
    config = mint_kubeconfig(kplane, workspace=WS, user="alice", groups=("g1", "g2"),
                             out=base / "alice.kubeconfig")
    bind_cluster_role(http, workspace=WS, name="g1-access", role="system:kcp:workspace:access",
                      group="g1")
    info = whoami(config)
    assert info["username"] == "alice"
    assert sorted(info["groups"]) == ["g1", "g2", "system:authenticated"]


def test_anonymous_requests_get_401_except_health_and_version(kplane: KplaneProcess) -> None:
    with user_client(kplane) as anonymous:
        for path in (f"/clusters/{WS}/api/v1/namespaces", "/api", "/apis", "/openapi/v2",
                     f"/clusters/{WS}/api"):
            response = anonymous.get(path)
            assert response.status_code == 401, (path, response.text)
            status = response.json()
            assert (status["kind"], status["reason"], status["code"]) == (
                "Status", "Unauthorized", 401)
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            assert anonymous.get(path).status_code == 200, path


def test_a_certificate_from_another_ca_is_refused(kplane: KplaneProcess,
                                                  tmp_path: Path) -> None:
    other = KplaneProcess(data_dir=tmp_path / "other", port=free_port())
    other.start()
    other.stop()
    context = ssl.create_default_context(cafile=kplane.ca)
    context.load_cert_chain(*other.admin_cert)
    try:
        with httpx.Client(base_url=kplane.url, verify=context, timeout=10.0) as client:
            code = client.get(f"/clusters/{WS}/api/v1/namespaces").status_code
    except httpx.TransportError:
        code = 0  # refused during the TLS handshake: just as good
    assert code in (0, 401)


def test_static_token_user_uid_and_groups(kplane: KplaneProcess, http: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with user_client(kplane, headers=headers) as client:
        review = client.post(
            f"/clusters/{WS}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        # tokenuser has no access to WS yet: the gate refuses even the self review.
        assert review.status_code == 403, review.text
        bind_cluster_role(http, workspace=WS, name="devs-access",
                          role="system:kcp:workspace:access", group="devs")
        review = eventually(lambda: _ok(client.post(
            f"/clusters/{WS}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
            what="devs access")
    info = review.json()["status"]["userInfo"]
    assert info["username"] == "tokenuser"
    assert info["uid"] == "uid-42"
    assert sorted(info["groups"]) == ["devs", "ops", "system:authenticated"]
    with user_client(kplane, headers={"Authorization": "Bearer wrong"}) as client:
        for path in (f"/clusters/{WS}/api/v1/namespaces", "/healthz"):
            assert client.get(path).status_code == 401, path


def _ok(response: httpx.Response) -> httpx.Response | None:
    return response if response.status_code < 300 else None


def test_service_account_token_works_only_in_its_workspace_and_dies_with_the_sa(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    created = http.post(f"/clusters/{WS}/api/v1/namespaces/default/serviceaccounts",
                        json={"metadata": {"name": "robot"}})
    assert created.status_code == 201, created.text
    result = kplane.kubectl("--server", f"{kplane.url}/clusters/{WS}", "create", "token",
                            "robot", "-n", "default")
    token = result.stdout.strip()
    assert token.count(".") == 2
    headers = {"Authorization": f"Bearer {token}"}
    with user_client(kplane, headers=headers) as robot:
        me = robot.post(f"/clusters/{WS}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                        json={"kind": "SelfSubjectReview",
                              "apiVersion": "authentication.k8s.io/v1"})
        assert me.status_code == 201, me.text
        info = me.json()["status"]["userInfo"]
        assert info["username"] == "system:serviceaccount:default:robot"
        assert {"system:serviceaccounts", "system:serviceaccounts:default",
                "system:authenticated"} <= set(info["groups"])
        # In its own workspace without RBAC: past the gate, then refused by RBAC (403).
        inside = robot.get(f"/clusters/{WS}/api/v1/namespaces/default/configmaps")
        assert inside.status_code == 403, inside.text
        assert inside.json()["message"] == (
            'configmaps is forbidden: User "system:serviceaccount:default:robot" cannot list '
            'resource "configmaps" in API group "" in the namespace "default" in workspace '
            f'"{WS}"')
        elsewhere = robot.get(f"/clusters/{OTHER}/api/v1/namespaces/default/configmaps")
        assert elsewhere.status_code == 401, elsewhere.text
        binding = http.post(f"/clusters/{WS}/{RBAC}/namespaces/default/rolebindings", json={
            "metadata": {"name": "robot-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot"}]})
        assert binding.status_code == 201, binding.text
        eventually(lambda: robot.get(
            f"/clusters/{WS}/api/v1/namespaces/default/configmaps").status_code == 200,
            what="robot may list configmaps")
        deleted = http.delete(f"/clusters/{WS}/api/v1/namespaces/default/serviceaccounts/robot")
        assert deleted.status_code == 200, deleted.text
        eventually(lambda: robot.get(
            f"/clusters/{WS}/api/v1/namespaces/default/configmaps").status_code == 401,
            what="token refused after SA deletion")
        # A new ServiceAccount of the same name has another uid: the old token stays dead.
        again = http.post(f"/clusters/{WS}/api/v1/namespaces/default/serviceaccounts",
                          json={"metadata": {"name": "robot"}})
        assert again.status_code == 201, again.text
        assert robot.get(f"/clusters/{WS}/api/v1/namespaces/default/configmaps"
                         ).status_code == 401


def test_token_review_and_subject_access_review(kplane: KplaneProcess,
                                                http: httpx.Client) -> None:
    review = http.post(f"/clusters/{WS}/apis/authentication.k8s.io/v1/tokenreviews", json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": TOKEN}})
    assert review.status_code == 201, review.text
    status = review.json()["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "tokenuser"
    bad = http.post(f"/clusters/{WS}/apis/authentication.k8s.io/v1/tokenreviews", json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": "nope"}})
    assert bad.status_code == 201 and not bad.json()["status"].get("authenticated")

    def sar(user: str, groups: list[str]) -> dict[str, Any]:
        response = http.post(
            f"/clusters/{WS}/apis/authorization.k8s.io/v1/subjectaccessreviews", json={
                "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups, "resourceAttributes": {
                    "verb": "get", "resource": "namespaces"}}})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()["status"]
        return result

    bind_cluster_role(http, workspace=WS, name="ops-view", role="view", group="ops")
    allowed = eventually(lambda: (s := sar("someone", ["ops"]))["allowed"] and s,
                         what="ops may view")
    assert 'ClusterRoleBinding "ops-view"' in allowed["reason"]
    assert sar("someone", ["nobody"])["allowed"] is False


def test_can_i_and_can_i_list(kplane: KplaneProcess, http: httpx.Client, base: Path) -> None:
    config = mint_kubeconfig(kplane, workspace=WS, user="carol", groups=("g1",),
                             out=base / "carol.kubeconfig")
    bind_role_in_namespace(http, workspace=WS, namespace="default", name="carol-edit",
                           role="edit", user="carol")
    assert eventually(lambda: run_kubectl(
        config, "auth", "can-i", "create", "secrets", "-n", "default").returncode == 0,
        what="carol may create secrets")
    denied = run_kubectl(config, "auth", "can-i", "create", "secrets", "-n", "kube-system")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    listing = run_kubectl(config, "auth", "can-i", "--list", "-n", "default")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert "secrets" in rows and "create" in rows["secrets"], listing.stdout
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows, listing.stdout
    assert "roles.rbac.authorization.k8s.io" not in rows, listing.stdout


def test_impersonation_needs_the_impersonate_verb(kplane: KplaneProcess, http: httpx.Client,
                                                  base: Path) -> None:
    config = mint_kubeconfig(kplane, workspace=WS, user="dave", groups=("g1",),
                             out=base / "dave.kubeconfig")
    # whoami hides a 403 behind its own wording, so ask for something else.
    refused = run_kubectl(config, "--as", "alice", "get", "configmaps", "-n", "default")
    assert refused.returncode != 0
    assert 'users "alice" is forbidden: User "dave" cannot impersonate resource "users"' in (
        refused.stderr), refused.stderr
    role = http.post(f"/clusters/{WS}/{RBAC}/clusterroles", json={
        "metadata": {"name": "impersonate-alice"},
        "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                   "resourceNames": ["alice"]}]})
    assert role.status_code == 201, role.text
    bind_cluster_role(http, workspace=WS, name="dave-impersonates", role="impersonate-alice",
                      user="dave")
    # The gate applies to the impersonated user, who needs access of her own.
    bind_cluster_role(http, workspace=WS, name="alice-access",
                      role="system:kcp:workspace:access", user="alice")
    info = eventually(lambda: run_kubectl(config, "--as", "alice", "auth", "whoami",
                                          "-o", "json").returncode == 0 and whoami(
                                              config, "--as", "alice"),
                      what="dave may impersonate alice")
    assert info["username"] == "alice" and info["groups"] == ["system:authenticated"]
    # Groups are checked one by one: alice yes, group g9 no.
    group = run_kubectl(config, "--as", "alice", "--as-group", "g9", "get", "configmaps")
    assert group.returncode != 0 and 'groups "g9" is forbidden' in group.stderr, group.stderr
    bob = run_kubectl(config, "--as", "bob", "get", "configmaps")
    assert bob.returncode != 0 and 'users "bob" is forbidden' in bob.stderr


def test_an_impersonation_refusal_is_a_forbidden_status_about_the_resource(
        kplane: KplaneProcess, base: Path) -> None:
    config = mint_kubeconfig(kplane, workspace=WS, user="gina", groups=("g1",),
                             out=base / "gina.kubeconfig")
    with user_client(kplane, minted_cert(kplane, config)) as gina:
        response = gina.get(f"/clusters/{WS}/api/v1/namespaces",
                            headers={"Impersonate-User": "alice"})
    assert response.status_code == 403, response.text
    status = response.json()
    assert status["message"] == (
        'users "alice" is forbidden: User "gina" cannot impersonate resource "users" in API '
        'group "" at the cluster scope')
    # As upstream's NewForbidden: details.kind is the resource.
    assert status["details"] == {"name": "alice", "kind": "users"}


def test_nobody_can_impersonate_the_workspace_binding_extra(http: httpx.Client) -> None:
    response = http.get(f"/clusters/{OTHER}/api/v1/namespaces", headers={
        "Impersonate-User": "system:serviceaccount:default:robot",
        "Impersonate-Extra-kcp.io%2Fcluster": "anything"})
    assert response.status_code == 403, response.text


def test_a_workspace_creator_becomes_its_admin(kplane: KplaneProcess, http: httpx.Client,
                                               base: Path) -> None:
    role = http.post(f"/clusters/{WS}/{RBAC}/clusterroles", json={
        "metadata": {"name": "workspace-creator"},
        "rules": [{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspaces"],
                   "verbs": ["create", "get", "list", "watch"]},
                  {"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"],
                   "verbs": ["use"]}]})
    assert role.status_code == 201, role.text
    bind_cluster_role(http, workspace=WS, name="erin-creates", role="workspace-creator",
                      user="erin")
    bind_cluster_role(http, workspace=WS, name="erin-access",
                      role="system:kcp:workspace:access", user="erin")
    config = mint_kubeconfig(kplane, workspace=WS, user="erin", out=base / "erin.kubeconfig")
    cert = minted_cert(kplane, config)
    with user_client(kplane, cert) as erin:
        created = eventually(lambda: _ok(erin.post(f"/clusters/{WS}/{TENANCY}/workspaces", json={
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "erins"}, "spec": {}})), what="erin creates a workspace")
        assert created.status_code == 201
        eventually(lambda: (erin.get(f"/clusters/{WS}/{TENANCY}/workspaces/erins").json()
                            .get("status", {}).get("phase") == "Ready"), what="erins ready")
        child = f"{WS}:erins"
        made = eventually(lambda: _ok(erin.post(f"/clusters/{child}/api/v1/namespaces",
                                                json={"metadata": {"name": "mine"}})),
                          what="erin is admin in her workspace")
        assert made.status_code == 201
        crb = http.get(f"/clusters/{child}/{RBAC}/clusterrolebindings/workspace-admin")
        assert crb.status_code == 200, crb.text
        assert crb.json()["roleRef"]["name"] == "cluster-admin"
        assert crb.json()["subjects"][0]["name"] == "erin"
        # Admin of the child, still nobody in the sibling.
        sibling = erin.get(f"/clusters/{OTHER}/api/v1/namespaces")
        assert sibling.status_code == 403, sibling.text


def test_an_editor_issues_tokens_with_kubectl_create_token(
        kplane: KplaneProcess, http: httpx.Client, base: Path) -> None:
    created = http.post(f"/clusters/{WS}/api/v1/namespaces/default/serviceaccounts",
                        json={"metadata": {"name": "builder"}})
    assert created.status_code == 201, created.text
    config = mint_kubeconfig(kplane, workspace=WS, user="frank", groups=("g1",),
                             out=base / "frank.kubeconfig")
    refused = run_kubectl(config, "create", "token", "builder", "-n", "default")
    assert refused.returncode != 0
    assert ('serviceaccounts "builder" is forbidden: User "frank" cannot create resource '
            '"serviceaccounts/token"') in refused.stderr, refused.stderr
    bind_role_in_namespace(http, workspace=WS, namespace="default", name="frank-edit",
                           role="edit", user="frank")
    issued = eventually(lambda: (r := run_kubectl(config, "create", "token", "builder", "-n",
                                                  "default")).returncode == 0 and r,
                        what="frank may issue tokens")
    with user_client(kplane, headers={"Authorization": f"Bearer {issued.stdout.strip()}"}
                     ) as builder:
        me = builder.post(f"/clusters/{WS}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          json={"kind": "SelfSubjectReview",
                                "apiVersion": "authentication.k8s.io/v1"})
    assert me.status_code == 201, me.text
    assert me.json()["status"]["userInfo"]["username"] == (
        "system:serviceaccount:default:builder")


def test_an_expired_certificate_is_refused(kplane: KplaneProcess, http: httpx.Client,
                                           base: Path) -> None:
    config = mint_kubeconfig(kplane, workspace=WS, user="alice", groups=("g1",),
                             out=base / "short.kubeconfig", expires="2s")
    cert = minted_cert(kplane, config)
    time.sleep(3)
    try:
        with user_client(kplane, cert) as client:
            code = client.get(f"/clusters/{WS}/api/v1/namespaces").status_code
    except httpx.TransportError:
        code = 0  # refused during the TLS handshake
    assert code in (0, 401)


def test_reviews_about_others_need_their_own_rights(kplane: KplaneProcess,
                                                    base: Path) -> None:
    # alice (group g1: workspace access only) may ask about herself, not about others.
    config = mint_kubeconfig(kplane, workspace=WS, user="alice", groups=("g1",),
                             out=base / "alice-reviews.kubeconfig")
    with user_client(kplane, minted_cert(kplane, config)) as alice:
        own = alice.post(
            f"/clusters/{WS}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json={
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets"}}})
        assert own.status_code == 201, own.text
        assert own.json()["status"]["allowed"] is False
        sar = alice.post(f"/clusters/{WS}/apis/authorization.k8s.io/v1/subjectaccessreviews",
                         json={"apiVersion": "authorization.k8s.io/v1",
                               "kind": "SubjectAccessReview",
                               "spec": {"user": "x", "resourceAttributes": {"verb": "get"}}})
        assert sar.status_code == 403, sar.text
        token = alice.post(f"/clusters/{WS}/apis/authentication.k8s.io/v1/tokenreviews",
                           json={"apiVersion": "authentication.k8s.io/v1",
                                 "kind": "TokenReview", "spec": {"token": TOKEN}})
        assert token.status_code == 403, token.text
        assert "tokenuser" not in token.text


def test_a_service_account_token_by_cluster_name_and_through_the_wildcard(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    created = http.post(f"/clusters/{WS}/api/v1/namespaces/default/serviceaccounts",
                        json={"metadata": {"name": "named"}})
    assert created.status_code == 201, created.text
    token = kplane.kubectl("--server", f"{kplane.url}/clusters/{WS}", "create", "token",
                           "named", "-n", "default").stdout.strip()
    cluster = http.get(f"/clusters/root/{TENANCY}/workspaces/authn").json()["spec"]["cluster"]
    review = {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"}
    with user_client(kplane, headers={"Authorization": f"Bearer {token}"}) as named:
        by_name = named.post(
            f"/clusters/{cluster}/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
        assert by_name.status_code == 201, by_name.text
        everywhere = named.get("/clusters/*/api/v1/configmaps")
        assert everywhere.status_code in (401, 403), everywhere.text
        basic = httpx.get(f"{kplane.url}/clusters/{WS}/api", verify=kplane.tls_context(
            with_client_cert=False), headers={"Authorization": "Basic YTpi"}, timeout=10.0)
        assert basic.status_code == 401, basic.text
