"""Authentication, the workspace gate, RBAC refusals and impersonation, over the real app."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from kplane.auth.authn import UserInfo
from kplane.auth.serviceaccounts import SA_CLUSTER_EXTRA
from kplane.server.resource_handler import record_owner
from tests.server.harness import ADMIN, SecureStack, Stack, cert_user, secured

BOB = cert_user("bob")
ALICE = cert_user("alice")
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
WHOAMI_BODY = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


@pytest.fixture
async def secure(stack: Stack, tmp_path: pathlib.Path) -> AsyncIterator[SecureStack]:
    async with secured(stack, tmp_path / "pki") as s:
        # Everyone may enter "team"; "other" keeps kcp's default (nobody but admins).
        await s.bind("team", "system:kcp:workspace:access", group="system:authenticated")
        yield s


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def whoami(s: SecureStack, *, cluster: str = "team", **options: Any) -> dict[str, Any]:
    response = await s.request("POST", f"/clusters/{cluster}{WHOAMI}", body=WHOAMI_BODY,
                               **options)
    assert response.status == 201, response.json()
    user: dict[str, Any] = response.json()["status"]["userInfo"]
    return user


def forbidden_message(response: Any) -> str:
    assert response.status == 403, response.json()
    status = response.json()
    assert status["reason"] == "Forbidden"
    message: str = status["message"]
    return message


# Authentication -----------------------------------------------------------------------------

async def test_no_credentials_is_401(secure: SecureStack) -> None:
    response = await secure.request("GET", "/clusters/team/api/v1/namespaces", user=None)
    assert response.status == 401
    assert response.json()["reason"] == "Unauthorized"


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version"])
async def test_public_paths_answer_anyone(secure: SecureStack, path: str) -> None:
    response = await secure.request("GET", path, user=None)
    assert response.status == 200


async def test_a_bad_token_is_401_even_on_a_public_path(secure: SecureStack) -> None:
    for path in ("/healthz", "/clusters/team/api/v1/namespaces"):
        response = await secure.request("GET", path, user=None, headers=bearer("nope"))
        assert response.status == 401, path


async def test_static_token_authenticates(secure: SecureStack) -> None:
    assert await whoami(secure, user=None, headers=bearer("alice-token")) == {
        "username": "alice", "uid": "a-1", "groups": ["devs", "system:authenticated"]}


async def test_certificate_wins_over_a_token(secure: SecureStack) -> None:
    user = await whoami(secure, user=BOB, headers=bearer("alice-token"))
    assert user["username"] == "bob"


async def test_a_certificate_with_a_bad_token_still_authenticates(secure: SecureStack) -> None:
    user = await whoami(secure, user=BOB, headers=bearer("garbage"))
    assert user["username"] == "bob"


# ServiceAccount tokens ----------------------------------------------------------------------

async def test_service_account_token_works_in_its_workspace(secure: SecureStack) -> None:
    token = await secure.service_account("other", "default", "builder")
    user = await whoami(secure, cluster="other", user=None, headers=bearer(token))
    assert user["username"] == "system:serviceaccount:default:builder"
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                              "system:authenticated"]
    assert user["extra"] == {SA_CLUSTER_EXTRA: ["other"]}


async def test_service_account_passes_the_gate_but_not_rbac(secure: SecureStack) -> None:
    token = await secure.service_account("other", "default", "builder")
    response = await secure.request("GET", "/clusters/other/api/v1/namespaces/default/pods",
                                    user=None, headers=bearer(token))
    assert forbidden_message(response) == (
        'pods is forbidden: User "system:serviceaccount:default:builder" cannot list resource '
        '"pods" in API group "" in the namespace "default" in workspace "other"')


async def test_service_account_token_is_401_in_another_workspace(secure: SecureStack) -> None:
    token = await secure.service_account("other", "default", "builder")
    await secure.bind("team", "cluster-admin", group="system:serviceaccounts")
    response = await secure.request("GET", "/clusters/team/api/v1/namespaces", user=None,
                                    headers=bearer(token))
    assert response.status == 401


async def test_service_account_token_of_a_deleted_account_is_401(secure: SecureStack) -> None:
    token = await secure.service_account("other", "default", "builder")
    deleted = await secure.request(
        "DELETE", "/clusters/other/api/v1/namespaces/default/serviceaccounts/builder")
    assert deleted.status == 200
    response = await secure.request("POST", f"/clusters/other{WHOAMI}", body=WHOAMI_BODY,
                                    user=None, headers=bearer(token))
    assert response.status == 401


# The workspace gate -------------------------------------------------------------------------

async def test_workspace_gate_refuses_users_without_access(secure: SecureStack) -> None:
    response = await secure.request("GET", "/clusters/other/api/v1/namespaces", user=BOB)
    assert forbidden_message(response) == (
        'access to workspace "other" is forbidden: User "bob" needs the verb "access" on the '
        "workspace (a binding to system:kcp:workspace:access or cluster-admin in it)")


async def test_workspace_gate_applies_to_reviews_too(secure: SecureStack) -> None:
    response = await secure.request("POST", f"/clusters/other{WHOAMI}", body=WHOAMI_BODY,
                                    user=BOB)
    assert response.status == 403


async def test_access_binding_opens_the_gate_and_rbac_decides(secure: SecureStack) -> None:
    await secure.bind("other", "system:kcp:workspace:access", user="bob")
    assert (await whoami(secure, cluster="other", user=BOB))["username"] == "bob"
    listed = await secure.request("GET", "/clusters/other/api/v1/namespaces", user=BOB)
    assert listed.status == 403
    await secure.bind("other", "view", user="bob")
    listed = await secure.request("GET", "/clusters/other/api/v1/namespaces/default/configmaps",
                                  user=BOB)
    assert listed.status == 200


async def test_cluster_admin_binding_opens_the_gate(secure: SecureStack) -> None:
    await secure.bind("other", "cluster-admin", user="bob")
    listed = await secure.request("GET", "/clusters/other/api/v1/namespaces", user=BOB)
    assert listed.status == 200


async def test_bindings_in_one_workspace_grant_nothing_in_another(secure: SecureStack) -> None:
    await secure.bind("team", "cluster-admin", user="bob")
    assert (await secure.request("GET", "/clusters/team/api/v1/namespaces",
                                 user=BOB)).status == 200
    assert (await secure.request("GET", "/clusters/other/api/v1/namespaces",
                                 user=BOB)).status == 403


# RBAC refusals, worded as kube-apiserver words them -------------------------------------------

@pytest.mark.parametrize(("method", "path", "message", "details"), [
    ("GET", "/api/v1/namespaces/default/configmaps",
     'configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" '
     'in the namespace "default" in workspace "team"',
     {"kind": "configmaps"}),
    ("GET", "/api/v1/namespaces/default/configmaps/settings",
     'configmaps "settings" is forbidden: User "bob" cannot get resource "configmaps" in API '
     'group "" in the namespace "default" in workspace "team"',
     {"kind": "configmaps", "name": "settings"}),
    ("GET", "/api/v1/namespaces",
     'namespaces is forbidden: User "bob" cannot list resource "namespaces" in API group "" '
     'at the cluster scope in workspace "team"',
     {"kind": "namespaces"}),
    ("DELETE", "/api/v1/namespaces/kube-system",
     'namespaces "kube-system" is forbidden: User "bob" cannot delete resource "namespaces" '
     'in API group "" at the cluster scope in workspace "team"',
     {"kind": "namespaces", "name": "kube-system"}),
    ("GET", "/api/v1/namespaces/default/pods/web/log",
     'pods "web" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in '
     'the namespace "default" in workspace "team"',
     {"kind": "pods", "name": "web"}),
    ("GET", "/apis/apps/v1/namespaces/default/deployments",
     'deployments.apps is forbidden: User "bob" cannot list resource "deployments" in API '
     'group "apps" in the namespace "default" in workspace "team"',
     {"kind": "deployments", "group": "apps"}),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
     'clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "bob" cannot get '
     'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope '
     'in workspace "team"',
     {"kind": "clusterroles", "group": "rbac.authorization.k8s.io", "name": "admin"}),
    ("GET", "/metrics",
     'forbidden: User "bob" cannot get path "/metrics" in workspace "team"', None),
])
async def test_rbac_refusal_wording(secure: SecureStack, method: str, path: str, message: str,
                                    details: dict[str, str] | None) -> None:
    response = await secure.request(method, f"/clusters/team{path}", user=BOB)
    assert forbidden_message(response) == message
    assert response.json().get("details") == details


# Impersonation ------------------------------------------------------------------------------

IMPERSONATE = "impersonate"


async def allow_impersonation(s: SecureStack, resources: list[str],
                              api_group: str = "") -> None:
    name = f"impersonate-{'-'.join(r.replace('/', '-') for r in resources)}"
    await s.cluster_role("team", name, [{"apiGroups": [api_group], "resources": resources,
                                         "verbs": [IMPERSONATE]}])
    await s.bind("team", name, user="alice", name=name)


async def test_impersonation_with_the_verb_acts_as_the_user(secure: SecureStack) -> None:
    await allow_impersonation(secure, ["users"])
    user = await whoami(secure, user=ALICE, headers=[("Impersonate-User", "bob")])
    assert user == {"username": "bob", "groups": ["system:authenticated"]}


async def test_impersonation_without_the_verb_is_403(secure: SecureStack) -> None:
    response = await secure.request("POST", f"/clusters/team{WHOAMI}", body=WHOAMI_BODY,
                                    user=ALICE, headers=[("Impersonate-User", "bob")])
    assert forbidden_message(response) == (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API '
        'group "" at the cluster scope')
    assert response.json()["details"] == {"name": "bob", "kind": "users"}


async def test_admin_may_impersonate_anyone(secure: SecureStack) -> None:
    user = await whoami(secure, user=ADMIN, headers=[("Impersonate-User", "carol"),
                                                     ("Impersonate-Group", "qa")])
    assert user == {"username": "carol", "groups": ["qa", "system:authenticated"]}


@pytest.mark.parametrize(("header", "message"), [
    (("Impersonate-Group", "admins"),
     'groups "admins" is forbidden: User "alice" cannot impersonate resource "groups" in API '
     'group "" at the cluster scope'),
    (("Impersonate-Uid", "u-7"),
     'uids.authentication.k8s.io "u-7" is forbidden: User "alice" cannot impersonate '
     'resource "uids" in API group "authentication.k8s.io" at the cluster scope'),
    (("Impersonate-Extra-Scopes", "view"),
     'userextras.authentication.k8s.io "view" is forbidden: User "alice" cannot impersonate '
     'resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope'),
])
async def test_each_impersonated_attribute_is_checked(
        secure: SecureStack, header: tuple[str, str], message: str) -> None:
    await allow_impersonation(secure, ["users"])
    response = await secure.request("POST", f"/clusters/team{WHOAMI}", body=WHOAMI_BODY,
                                    user=ALICE, headers=[("Impersonate-User", "bob"), header])
    assert forbidden_message(response) == message


async def test_impersonating_groups_uid_and_extra_when_allowed(secure: SecureStack) -> None:
    await allow_impersonation(secure, ["users", "groups"])
    await allow_impersonation(secure, ["uids", "userextras/scopes"],
                              api_group="authentication.k8s.io")
    user = await whoami(secure, user=ALICE, headers=[
        ("Impersonate-User", "bob"), ("Impersonate-Group", "qa"), ("Impersonate-Group", "ops"),
        ("Impersonate-Uid", "u-7"), ("Impersonate-Extra-Scopes", "view"),
        ("Impersonate-Extra-Scopes", "edit")])
    assert user == {"username": "bob", "uid": "u-7",
                    "groups": ["qa", "ops", "system:authenticated"],
                    "extra": {"scopes": ["view", "edit"]}}


async def test_impersonating_a_service_account_adds_its_groups(secure: SecureStack) -> None:
    await secure.request("POST", "/clusters/team/api/v1/namespaces",
                         body={"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "ci"}})
    await secure.admin_create(
        "/clusters/team/apis/rbac.authorization.k8s.io/v1/namespaces/ci/rolebindings",
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "alice-impersonates"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "sa-impersonator"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": "alice"}]})
    await secure.cluster_role("team", "sa-impersonator", [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": [IMPERSONATE]}])
    user = await whoami(secure, user=ALICE,
                        headers=[("Impersonate-User", "system:serviceaccount:ci:deployer")])
    assert user == {"username": "system:serviceaccount:ci:deployer",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:ci",
                               "system:authenticated"]}
    # The grant is per namespace: another namespace's ServiceAccount is refused.
    response = await secure.request(
        "POST", f"/clusters/team{WHOAMI}", body=WHOAMI_BODY, user=ALICE,
        headers=[("Impersonate-User", "system:serviceaccount:prod:deployer")])
    assert forbidden_message(response) == (
        'serviceaccounts "deployer" is forbidden: User "alice" cannot impersonate resource '
        '"serviceaccounts" in API group "" in the namespace "prod"')


async def test_impersonated_service_account_is_not_bound_to_the_workspace(
        secure: SecureStack) -> None:
    # Without the token's cluster extra, it goes through the gate like any user.
    response = await secure.request(
        "GET", "/clusters/other/api/v1/namespaces", user=ADMIN,
        headers=[("Impersonate-User", "system:serviceaccount:default:builder")])
    assert response.status == 403
    assert response.json()["message"].startswith('access to workspace "other" is forbidden')


async def test_the_service_account_cluster_extra_cannot_be_impersonated(
        secure: SecureStack) -> None:
    response = await secure.request(
        "GET", "/clusters/team/api/v1/namespaces", user=ADMIN,
        headers=[("Impersonate-User", "system:serviceaccount:default:builder"),
                 ("Impersonate-Extra-Authentication.kcp.io%2fcluster-name", "team")])
    assert response.status == 403


async def test_a_token_bound_elsewhere_cannot_impersonate_here(secure: SecureStack) -> None:
    # "team" has a ServiceAccount default/builder that may impersonate anyone; a token for
    # the same-named account of "other" must not borrow its rights through impersonation.
    await secure.service_account("team", "default", "builder")
    await secure.cluster_role("team", "impersonate-all", [
        {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
         "verbs": [IMPERSONATE]}])
    await secure.admin_create(
        "/clusters/team/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "builder-impersonates"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "impersonate-all"},
         "subjects": [{"kind": "ServiceAccount", "namespace": "default", "name": "builder"}]})
    foreign = await secure.service_account("other", "default", "builder")
    for headers in ([("Impersonate-User", "system:serviceaccount:default:builder")],
                    [("Impersonate-User", "anyone"), ("Impersonate-Group", "system:masters")]):
        response = await secure.request("GET", "/clusters/team/api/v1/namespaces", user=None,
                                        headers=[*bearer(foreign), *headers])
        assert response.status == 401, headers
        assert "bound to another workspace" in response.json()["message"]


async def test_only_system_masters_may_impersonate_system_masters(secure: SecureStack) -> None:
    # alice administers "team" and may impersonate any user and group there ...
    await secure.bind("team", "cluster-admin", user="alice")
    await allow_impersonation(secure, ["users", "groups"])
    user = await whoami(secure, user=ALICE, headers=[("Impersonate-User", "bob"),
                                                     ("Impersonate-Group", "qa")])
    assert user["groups"] == ["qa", "system:authenticated"]
    # ... but not a group she is not in that would lift her above the workspace.
    response = await secure.request(
        "GET", "/clusters/team/api/v1/namespaces", user=ALICE,
        headers=[("Impersonate-User", "x"), ("Impersonate-Group", "system:masters")])
    assert response.status == 403
    assert response.json()["message"] == (
        "impersonation is not allowed for the requestor: only members of system:masters "
        "may impersonate it")
    # The cluster admin certificate may.
    admin = await whoami(secure, user=ADMIN, headers=[("Impersonate-User", "x"),
                                                      ("Impersonate-Group", "system:masters")])
    assert "system:masters" in admin["groups"]


async def test_impersonating_groups_without_a_user_is_400(secure: SecureStack) -> None:
    for header in (("Impersonate-Group", "qa"), ("Impersonate-Uid", "u"),
                   ("Impersonate-Extra-Scopes", "x")):
        response = await secure.request("GET", "/clusters/team/api/v1/namespaces", user=ADMIN,
                                        headers=[header])
        assert response.status == 400, header
        assert response.json()["reason"] == "BadRequest"


async def test_impersonated_user_is_authorized_not_the_impersonator(
        secure: SecureStack) -> None:
    response = await secure.request("GET", "/clusters/team/api/v1/namespaces", user=ADMIN,
                                    headers=[("Impersonate-User", "bob")])
    assert forbidden_message(response).startswith('namespaces is forbidden: User "bob"')


# The owner of a new Workspace ---------------------------------------------------------------

OWNER = "experimental.tenancy.kcp.io/owner"


def workspace_body(annotations: Any = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "ws"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": metadata}


def test_owner_is_the_creator_whatever_the_client_claims() -> None:
    body = workspace_body({OWNER: '{"username":"mallory"}', "keep": "me"})
    record_owner(body, BOB)
    assert body["metadata"]["annotations"] == {
        "keep": "me", OWNER: '{"username":"bob","groups":["system:authenticated"]}'}


def test_owner_annotation_is_added_when_there_are_none() -> None:
    body = workspace_body()
    record_owner(body, ALICE)
    assert orjson.loads(body["metadata"]["annotations"][OWNER]) == {
        "username": "alice", "groups": ["system:authenticated"]}


@pytest.mark.parametrize("creator", [ADMIN, None])
def test_masters_and_anonymous_leave_no_owner(creator: UserInfo | None) -> None:
    body = workspace_body({OWNER: '{"username":"mallory"}'})
    record_owner(body, creator)
    assert body["metadata"]["annotations"] == {}


@pytest.mark.parametrize("body", [None, [], {"metadata": "x"}, {}])
def test_record_owner_ignores_bodies_that_are_not_objects(body: Any) -> None:
    before = copy.deepcopy(body)
    record_owner(body, BOB)
    assert body == before


async def test_a_created_workspace_carries_its_creator(secure: SecureStack) -> None:
    await secure.bind("team", "cluster-admin", user="bob")
    response = await secure.request(
        "POST", "/clusters/team/apis/tenancy.kcp.io/v1alpha1/workspaces", user=BOB,
        body=workspace_body({OWNER: '{"username":"mallory"}'}))
    assert response.status == 201, response.json()
    owner = orjson.loads(response.json()["metadata"]["annotations"][OWNER])
    assert owner["username"] == "bob"


async def test_impersonating_someone_else_loses_the_wildcard(secure: SecureStack) -> None:
    allowed = await secure.request("GET", "/clusters/*/api/v1/configmaps", user=ADMIN)
    assert allowed.status == 200
    response = await secure.request("GET", "/clusters/*/api/v1/configmaps", user=ADMIN,
                                    headers=[("Impersonate-User", "bob")])
    assert response.status == 403
