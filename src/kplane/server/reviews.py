"""Kinds that answer a question instead of storing an object.

``kubectl auth whoami`` (SelfSubjectReview), ``kubectl auth can-i`` (SelfSubjectAccessReview,
and SelfSubjectRulesReview for ``--list``), SubjectAccessReview and LocalSubjectAccessReview
for controllers asking about others, TokenReview for checking a bearer token, and
``kubectl create token`` (the ``serviceaccounts/<name>/token`` subresource). Each is a POST
whose response is the request with its ``status`` filled in; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from kplane.apimachinery import errors
from kplane.auth.authn import SYSTEM_MASTERS, TokenAuthenticator, UserInfo
from kplane.auth.authorizer import Attributes
from kplane.auth.serviceaccounts import ServiceAccountTokens
from kplane.registry import builtin
from kplane.registry.resources import ResourceType
from kplane.registry.store import Store, Target
from kplane.server.request_info import RequestInfo
from kplane.server.security import Security

_REVIEW_RESOURCES = frozenset((rt.group, rt.resource) for rt in builtin.REVIEWS)
_ALL_RULES = {
    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "incomplete": False,
}


def _user_json(user: UserInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


class Reviews:
    """Answers the review kinds and the token subresource."""

    def __init__(self, *, security: Security, store: Store,
                 token_authenticators: Sequence[TokenAuthenticator] = (),
                 service_account_tokens: ServiceAccountTokens | None = None) -> None:
        self._security = security
        self._store = store
        self._token_authenticators = token_authenticators
        self._sa_tokens = service_account_tokens

    @staticmethod
    def handles(rt: ResourceType, subresource: str) -> bool:
        if subresource == "token":
            return rt == builtin.SERVICEACCOUNTS
        return (rt.group, rt.resource) in _REVIEW_RESOURCES

    async def create(self, rt: ResourceType, info: RequestInfo, user: UserInfo | None,
                     body: Any) -> dict[str, Any]:
        if user is None:
            raise errors.unauthorized()
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be an object")
        if rt == builtin.SERVICEACCOUNTS:
            return self._token_request(info, body)
        response = {**body, "apiVersion": rt.api_version, "kind": rt.kind}
        response.setdefault("metadata", {})
        spec = body.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise errors.bad_request("spec must be an object")
        if rt == builtin.SELF_SUBJECT_REVIEWS:
            response["status"] = {"userInfo": _user_json(user)}
        elif rt == builtin.SELF_SUBJECT_ACCESS_REVIEWS:
            response["status"] = self._access(user, info.cluster, spec, namespace=None)
        elif rt == builtin.SELF_SUBJECT_RULES_REVIEWS:
            response["status"] = self._rules(user, info.cluster, str(spec.get("namespace", "")))
        elif rt in (builtin.SUBJECT_ACCESS_REVIEWS, builtin.LOCAL_SUBJECT_ACCESS_REVIEWS):
            subject = _subject(spec)
            namespace = info.namespace if rt == builtin.LOCAL_SUBJECT_ACCESS_REVIEWS else None
            response["status"] = self._access(subject, info.cluster, spec, namespace=namespace)
        elif rt == builtin.TOKEN_REVIEWS:
            response["status"] = await self._token_review(spec)
        return response

    def _access(self, user: UserInfo, cluster: str, spec: Mapping[str, Any], *,
                namespace: str | None) -> dict[str, Any]:
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        if isinstance(resource, Mapping):
            attributes = Attributes(
                user=user, verb=str(resource.get("verb", "")), cluster=cluster,
                namespace=namespace if namespace is not None else str(
                    resource.get("namespace", "")),
                api_group=str(resource.get("group", "")),
                api_version=str(resource.get("version", "")),
                resource=str(resource.get("resource", "")),
                subresource=str(resource.get("subresource", "")),
                name=str(resource.get("name", "")))
        elif isinstance(non_resource, Mapping):
            attributes = Attributes(user=user, verb=str(non_resource.get("verb", "")),
                                    cluster=cluster, path=str(non_resource.get("path", "")),
                                    resource_request=False)
        else:
            raise errors.invalid("SelfSubjectAccessReview", "authorization.k8s.io", "", [
                errors.field_required("spec.resourceAttributes",
                                      "exactly one of nonResourceAttributes or "
                                      "resourceAttributes must be specified")])
        if SYSTEM_MASTERS in user.groups:
            return {"allowed": True, "reason": "system:masters may do anything"}
        if self._security.authorizer is None:
            return {"allowed": True}
        # A review answers as the request would, export policies included.
        decision = self._security.decide(attributes)
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return status

    def _rules(self, user: UserInfo, cluster: str, namespace: str) -> dict[str, Any]:
        authorizer = self._security.authorizer
        if SYSTEM_MASTERS in user.groups or authorizer is None:
            return dict(_ALL_RULES)
        review = authorizer.rules_for(user, cluster, namespace)
        status: dict[str, Any] = {"resourceRules": review.resource_rules,
                                  "nonResourceRules": review.non_resource_rules,
                                  "incomplete": review.incomplete}
        if review.evaluation_error:
            status["evaluationError"] = review.evaluation_error
        return status

    async def _token_review(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise errors.invalid("TokenReview", "authentication.k8s.io", "", [
                errors.field_required("spec.token")])
        for authenticate in self._token_authenticators:
            user = await authenticate(token)
            if user is not None:
                return {"authenticated": True,
                        "user": _user_json(user.with_authenticated_group())}
        return {"authenticated": False, "error": "the token is not valid"}

    def _token_request(self, info: RequestInfo, body: dict[str, Any]) -> dict[str, Any]:
        if self._sa_tokens is None:
            raise errors.method_not_allowed("service account tokens are not enabled")
        target = Target(builtin.SERVICEACCOUNTS, info.cluster, info.namespace, info.name)
        cached = self._store.get_cached(target)
        if cached is None:
            raise errors.not_found("serviceaccounts", "", info.name)
        uid = str(orjson.loads(cached.raw)["metadata"].get("uid", ""))
        return self._sa_tokens.token_request_response(
            body, cluster=info.cluster, namespace=info.namespace, name=info.name, uid=uid)


def _subject(spec: Mapping[str, Any]) -> UserInfo:
    groups = [str(g) for g in spec.get("groups") or []]
    name = str(spec.get("user") or "")
    if not name and not groups:
        raise errors.invalid("SubjectAccessReview", "authorization.k8s.io", "", [
            errors.field_required("spec.user", "at least one of user or group must be "
                                               "specified")])
    extra = spec.get("extra") or {}
    return UserInfo(name=name, groups=tuple(groups), uid=str(spec.get("uid") or ""),
                    extra={str(k): tuple(v) for k, v in extra.items()
                           if isinstance(v, list)} if isinstance(extra, Mapping) else {})
