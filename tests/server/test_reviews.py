"""The review kinds and the token subresource: request in, the same object with a status out,
shaped as the official ``kubernetes`` client's models expect; nothing stored."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes.client import models

from tests.server.harness import ADMIN, SecureStack, Stack, cert_user, secured

BOB = cert_user("bob", "devs")
AUTHZ = "/clusters/team/apis/authorization.k8s.io/v1"
AUTHN = "/clusters/team/apis/authentication.k8s.io/v1"


@pytest.fixture
async def secure(stack: Stack, tmp_path: pathlib.Path) -> AsyncIterator[SecureStack]:
    async with secured(stack, tmp_path / "pki") as s:
        await s.bind("team", "system:kcp:workspace:access", group="system:authenticated")
        yield s


def model_fields(model: str) -> set[str]:
    return set(getattr(models, model).attribute_map.values())


def assert_shape(obj: dict[str, Any], model: str) -> None:
    """Every field kplane sends is one the client's model knows."""
    assert set(obj) <= model_fields(model), (set(obj) - model_fields(model), model)


async def create(s: SecureStack, path: str, body: dict[str, Any], *,
                 user: Any = ADMIN, **options: Any) -> dict[str, Any]:
    response = await s.request("POST", path, body=body, user=user, **options)
    assert response.status == 201, response.json()
    created: dict[str, Any] = response.json()
    return created


def access_review(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}


def configmaps(verb: str, namespace: str = "default") -> dict[str, Any]:
    return {"verb": verb, "resource": "configmaps", "namespace": namespace}


# SelfSubjectReview --------------------------------------------------------------------------

async def test_self_subject_review(secure: SecureStack) -> None:
    review = await create(secure, f"{AUTHN}/selfsubjectreviews",
                          {"apiVersion": "authentication.k8s.io/v1",
                           "kind": "SelfSubjectReview"}, user=BOB)
    assert review == {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                      "metadata": {}, "status": {"userInfo": {
                          "username": "bob", "groups": ["devs", "system:authenticated"]}}}
    assert_shape(review, "V1SelfSubjectReview")
    assert_shape(review["status"], "V1SelfSubjectReviewStatus")
    assert_shape(review["status"]["userInfo"], "V1UserInfo")


# SelfSubjectAccessReview --------------------------------------------------------------------

async def test_self_subject_access_review(secure: SecureStack) -> None:
    await secure.bind("team", "view", user="bob")
    path = f"{AUTHZ}/selfsubjectaccessreviews"
    allowed = await create(secure, path, access_review(
        "SelfSubjectAccessReview", {"resourceAttributes": configmaps("list")}), user=BOB)
    assert allowed["kind"] == "SelfSubjectAccessReview"
    assert allowed["spec"] == {"resourceAttributes": configmaps("list")}
    assert allowed["status"]["allowed"] is True
    assert allowed["status"]["reason"].startswith("RBAC: allowed by ClusterRoleBinding")
    assert_shape(allowed, "V1SelfSubjectAccessReview")
    assert_shape(allowed["status"], "V1SubjectAccessReviewStatus")
    denied = await create(secure, path, access_review(
        "SelfSubjectAccessReview", {"resourceAttributes": configmaps("delete")}), user=BOB)
    assert denied["status"] == {"allowed": False}


async def test_self_subject_access_review_of_a_path(secure: SecureStack) -> None:
    path = f"{AUTHZ}/selfsubjectaccessreviews"

    async def can_get(url: str) -> bool:
        review = await create(secure, path, access_review(
            "SelfSubjectAccessReview", {"nonResourceAttributes": {"verb": "get", "path": url}}),
                              user=BOB)
        allowed: bool = review["status"]["allowed"]
        return allowed

    assert await can_get("/healthz") is True
    assert await can_get("/metrics") is False


async def test_system_masters_may_do_anything(secure: SecureStack) -> None:
    review = await create(secure, f"{AUTHZ}/selfsubjectaccessreviews", access_review(
        "SelfSubjectAccessReview", {"resourceAttributes": configmaps("delete")}))
    assert review["status"]["allowed"] is True


async def test_access_review_needs_attributes(secure: SecureStack) -> None:
    response = await secure.request("POST", f"{AUTHZ}/selfsubjectaccessreviews",
                                    body=access_review("SelfSubjectAccessReview", {}), user=BOB)
    assert response.status == 422
    assert response.json()["details"]["causes"][0]["field"] == "spec.resourceAttributes"


# SelfSubjectRulesReview ---------------------------------------------------------------------

async def test_self_subject_rules_review(secure: SecureStack) -> None:
    await secure.cluster_role("team", "cm-reader", [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
    await secure.bind("team", "cm-reader", user="bob")
    review = await create(secure, f"{AUTHZ}/selfsubjectrulesreviews", access_review(
        "SelfSubjectRulesReview", {"namespace": "default"}), user=BOB)
    status = review["status"]
    assert_shape(review, "V1SelfSubjectRulesReview")
    assert_shape(status, "V1SubjectRulesReviewStatus")
    assert status["incomplete"] is False
    assert {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]} in \
        status["resourceRules"]
    for rule in status["resourceRules"]:
        assert_shape(rule, "V1ResourceRule")
    for rule in status["nonResourceRules"]:
        assert_shape(rule, "V1NonResourceRule")
    assert any("/healthz" in r["nonResourceURLs"] for r in status["nonResourceRules"])


async def test_rules_review_reports_a_missing_role(secure: SecureStack) -> None:
    await secure.bind("team", "no-such-role", user="bob")
    review = await create(secure, f"{AUTHZ}/selfsubjectrulesreviews", access_review(
        "SelfSubjectRulesReview", {"namespace": "default"}), user=BOB)
    assert review["status"]["incomplete"] is True
    assert review["status"]["evaluationError"] == \
        'clusterrole.rbac.authorization.k8s.io "no-such-role" not found'


async def test_rules_review_of_system_masters_is_everything(secure: SecureStack) -> None:
    review = await create(secure, f"{AUTHZ}/selfsubjectrulesreviews", access_review(
        "SelfSubjectRulesReview", {"namespace": "default"}))
    assert review["status"] == {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False}


# SubjectAccessReview and LocalSubjectAccessReview -------------------------------------------

async def test_subject_access_review_asks_about_someone_else(secure: SecureStack) -> None:
    await secure.bind("team", "edit", group="devs")
    spec = {"user": "carol", "groups": ["devs"], "resourceAttributes": configmaps("delete")}
    review = await create(secure, f"{AUTHZ}/subjectaccessreviews",
                          access_review("SubjectAccessReview", spec))
    assert_shape(review, "V1SubjectAccessReview")
    assert_shape(review["spec"], "V1SubjectAccessReviewSpec")
    assert review["status"]["allowed"] is True
    alone = await create(secure, f"{AUTHZ}/subjectaccessreviews", access_review(
        "SubjectAccessReview", {"user": "carol", "resourceAttributes": configmaps("delete")}))
    assert alone["status"] == {"allowed": False}


async def test_subject_access_review_needs_a_subject(secure: SecureStack) -> None:
    response = await secure.request("POST", f"{AUTHZ}/subjectaccessreviews", body=access_review(
        "SubjectAccessReview", {"resourceAttributes": configmaps("get")}))
    assert response.status == 422
    assert response.json()["details"]["causes"][0]["field"] == "spec.user"


async def test_subject_access_review_is_itself_authorized(secure: SecureStack) -> None:
    response = await secure.request("POST", f"{AUTHZ}/subjectaccessreviews", body=access_review(
        "SubjectAccessReview", {"user": "x", "resourceAttributes": configmaps("get")}),
        user=BOB)
    assert response.status == 403


async def test_local_subject_access_review_uses_the_url_namespace(secure: SecureStack) -> None:
    await secure.request("POST", "/clusters/team/api/v1/namespaces",
                         body={"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "ci"}})
    await secure.admin_create(
        "/clusters/team/apis/rbac.authorization.k8s.io/v1/namespaces/ci/rolebindings",
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "carol-edit"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "edit"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": "carol"}]})

    async def allowed_in(namespace: str) -> bool:
        review = await create(
            secure, f"{AUTHZ}/namespaces/{namespace}/localsubjectaccessreviews",
            access_review("LocalSubjectAccessReview",
                          {"user": "carol", "resourceAttributes": configmaps("create", "ci")}))
        assert review["kind"] == "LocalSubjectAccessReview"
        assert_shape(review, "V1LocalSubjectAccessReview")
        result: bool = review["status"]["allowed"]
        return result

    assert await allowed_in("ci") is True
    assert await allowed_in("default") is False


# TokenReview --------------------------------------------------------------------------------

def token_review(token: str | None) -> dict[str, Any]:
    spec = {} if token is None else {"token": token}
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


async def test_token_review_of_a_service_account_token(secure: SecureStack) -> None:
    token = await secure.service_account("team", "default", "builder")
    review = await create(secure, f"{AUTHN}/tokenreviews", token_review(token))
    assert_shape(review, "V1TokenReview")
    assert_shape(review["status"], "V1TokenReviewStatus")
    assert_shape(review["status"]["user"], "V1UserInfo")
    status = review["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:default:builder"
    assert status["user"]["extra"] == {"authentication.kcp.io/cluster-name": ["team"]}


async def test_token_review_of_a_static_token(secure: SecureStack) -> None:
    review = await create(secure, f"{AUTHN}/tokenreviews", token_review("alice-token"))
    assert review["status"] == {"authenticated": True, "user": {
        "username": "alice", "uid": "a-1", "groups": ["devs", "system:authenticated"]}}


async def test_token_review_of_a_bad_token(secure: SecureStack) -> None:
    review = await create(secure, f"{AUTHN}/tokenreviews", token_review("garbage"))
    assert review["status"]["authenticated"] is False
    assert review["status"]["error"]
    assert_shape(review["status"], "V1TokenReviewStatus")


async def test_token_review_needs_a_token(secure: SecureStack) -> None:
    response = await secure.request("POST", f"{AUTHN}/tokenreviews", body=token_review(None))
    assert response.status == 422


# The token subresource ----------------------------------------------------------------------

SA_PATH = "/clusters/team/api/v1/namespaces/default/serviceaccounts"


async def test_token_request_mints_a_working_token(secure: SecureStack) -> None:
    await secure.service_account("team", "default", "builder")
    answer = await create(secure, f"{SA_PATH}/builder/token",
                          {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                           "spec": {"expirationSeconds": 600}})
    assert answer["kind"] == "TokenRequest"
    assert_shape(answer, "AuthenticationV1TokenRequest")
    assert_shape(answer["status"], "V1TokenRequestStatus")
    assert_shape(answer["spec"], "V1TokenRequestSpec")
    assert answer["spec"]["expirationSeconds"] == 600
    token = answer["status"]["token"]
    whoami = await create(secure, f"{AUTHN}/selfsubjectreviews",
                          {"apiVersion": "authentication.k8s.io/v1",
                           "kind": "SelfSubjectReview"},
                          user=None, headers=[("authorization", f"Bearer {token}")])
    assert whoami["status"]["userInfo"]["username"] == "system:serviceaccount:default:builder"


async def test_token_request_for_a_missing_service_account_is_404(secure: SecureStack) -> None:
    response = await secure.request("POST", f"{SA_PATH}/ghost/token", body={})
    assert response.status == 404
    assert response.json()["message"] == 'serviceaccounts "ghost" not found'


async def test_token_request_is_authorized_on_the_subresource(secure: SecureStack) -> None:
    await secure.service_account("team", "default", "builder")
    response = await secure.request("POST", f"{SA_PATH}/builder/token", body={}, user=BOB)
    assert response.status == 403
    assert response.json()["message"].startswith(
        'serviceaccounts "builder" is forbidden: User "bob" cannot create resource '
        '"serviceaccounts/token"')


# Verbs other than create --------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"{AUTHZ}/selfsubjectaccessreviews"),
    ("GET", f"{AUTHZ}/subjectaccessreviews/x"),
    ("DELETE", f"{AUTHN}/tokenreviews/x"),
    ("PUT", f"{AUTHN}/selfsubjectreviews/x"),
    ("GET", f"{SA_PATH}/builder/token"),
])
async def test_only_create_is_served(secure: SecureStack, method: str, path: str) -> None:
    response = await secure.request(method, path, body={} if method == "PUT" else b"")
    assert response.status == 405, response.json()
    assert response.json()["reason"] == "MethodNotAllowed"


async def test_reviews_are_not_stored(secure: SecureStack) -> None:
    before = await secure.stack.backend.current_revision()
    await create(secure, f"{AUTHZ}/selfsubjectaccessreviews", access_review(
        "SelfSubjectAccessReview", {"resourceAttributes": configmaps("get")}))
    assert await secure.stack.backend.current_revision() == before
