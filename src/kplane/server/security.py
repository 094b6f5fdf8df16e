"""Who a request is, whom it acts as, and whether it may: the HTTP side of security.

Authentication tries the client certificate first, then a bearer token (the static token
file, then ServiceAccount tokens); a request with bad credentials is a 401, and so is one
with none, except for the health and version endpoints, which answer anyone. Impersonation
headers (``kubectl --as``) replace the user after checking that the requester belongs in
the workspace, may impersonate the groups asked for, and holds the ``impersonate`` verb.
Authorization first applies kcp's workspace access gate, then RBAC of that logical
cluster, then (for a resource bound from an export that sets one) the export's maximal
permission policy; refusals are 403 Status objects worded as kube-apiserver words them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from kplane.apimachinery import errors
from kplane.auth.authn import (
    ANONYMOUS_USER,
    AUTHENTICATED,
    SYSTEM_MASTERS,
    TokenAuthenticator,
    UserInfo,
    authenticate_request,
)
from kplane.auth.authorizer import Attributes, Authorizer, Decision
from kplane.auth.maximal_permission import MaximalPermissionPolicies
from kplane.auth.serviceaccounts import SA_CLUSTER_EXTRA
from kplane.server.request_info import RequestInfo

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
# Groups only their own members may impersonate (kcp's impersonation gatekeeper).
PRIVILEGED_GROUPS = frozenset({SYSTEM_MASTERS, AUTHENTICATED, "system:kcp:admin",
                               "system:kcp:logical-cluster-admin",
                               "system:kcp:external-logical-cluster-admin",
                               "system:kcp:workspace-bootstrapper"})
_IMPERSONATE_USER = b"impersonate-user"
_IMPERSONATE_GROUP = b"impersonate-group"
_IMPERSONATE_UID = b"impersonate-uid"
_IMPERSONATE_EXTRA = b"impersonate-extra-"
_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(slots=True)
class Security:
    """Authentication and authorization of every request."""

    authorizer: Authorizer | None = None
    token_authenticators: Sequence[TokenAuthenticator] = field(default_factory=tuple)
    maximal_permission: MaximalPermissionPolicies | None = None

    async def authenticate(self, *, certificate_user: UserInfo | None,
                           headers: Iterable[tuple[bytes, bytes]], path: str) -> UserInfo | None:
        """The requesting user; None only for an anonymous request to a public path."""
        if certificate_user is not None:
            return certificate_user
        header_list = list(headers)
        try:
            return await authenticate_request(
                certificate_user=certificate_user, headers=header_list,
                token_authenticators=self.token_authenticators, allow_anonymous=False)
        except errors.StatusError:
            if path in PUBLIC_PATHS and not _has_authorization_header(header_list):
                return None
            raise

    def impersonate(self, user: UserInfo, headers: Iterable[tuple[bytes, bytes]],
                    cluster: str) -> UserInfo:
        """The user to act as when impersonation headers are present (else ``user``)."""
        headers = [(k, v) for k, v in headers if k.lower().startswith(b"impersonate-")]
        if not headers:
            return user
        name = ""
        uid = ""
        groups: list[str] = []
        extra: dict[str, list[str]] = {}
        for key, value in headers:
            lowered = key.lower()
            text = value.decode("utf-8", "replace")
            if lowered == _IMPERSONATE_USER:
                name = text
            elif lowered == _IMPERSONATE_GROUP:
                groups.append(text)
            elif lowered == _IMPERSONATE_UID:
                uid = text
            elif lowered.startswith(_IMPERSONATE_EXTRA):
                extra_key = unquote(lowered[len(_IMPERSONATE_EXTRA):].decode("latin-1"))
                if extra_key == SA_CLUSTER_EXTRA:
                    # Only token authentication may say which workspace an SA belongs to.
                    raise errors.forbidden(f"impersonating extra {extra_key!r} is not allowed")
                extra.setdefault(extra_key, []).append(text)
        if not name:
            if groups or uid or extra:
                raise errors.bad_request(
                    "requested impersonation of groups, uid or extra without a user")
            return user
        self._check_requester(user, cluster, groups)
        self._check_impersonation(user, cluster, name=name, groups=groups, uid=uid,
                                  extra=extra)
        all_groups = list(groups)
        if name.startswith(_SERVICE_ACCOUNT_PREFIX) and not groups:
            namespace = name[len(_SERVICE_ACCOUNT_PREFIX):].split(":", 1)[0]
            all_groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        # As upstream: everyone impersonated is authenticated, except the anonymous user.
        if name != ANONYMOUS_USER and AUTHENTICATED not in all_groups:
            all_groups.append(AUTHENTICATED)
        return UserInfo(name=name, groups=tuple(all_groups), uid=uid,
                        extra={k: tuple(v) for k, v in extra.items()})

    def _check_requester(self, user: UserInfo, cluster: str, groups: list[str]) -> None:
        """Whoever impersonates must first be someone in this workspace, and may not climb.

        The impersonate verb is granted by this workspace's RBAC, so a requester it does
        not admit (a ServiceAccount token bound to another workspace, whose name may match
        a local subject; a user without access to the workspace) never reaches that check.
        And, as kcp's impersonation gatekeeper has it, only members of a privileged group
        may impersonate it: a workspace admin cannot become system:masters."""
        if self.authorizer is None or SYSTEM_MASTERS in user.groups:
            return
        bound = user.extra.get(SA_CLUSTER_EXTRA)
        if bound and cluster not in bound:
            raise errors.unauthorized(
                "the service account token is bound to another workspace")
        if not bound and not self.authorizer.can_enter(user, cluster).allowed:
            raise errors.forbidden("impersonation is not allowed for the requestor: it has "
                                   "no access to this workspace")
        climbing = [g for g in groups if g in PRIVILEGED_GROUPS and g not in user.groups]
        if climbing:
            raise errors.forbidden(
                f"impersonation is not allowed for the requestor: only members of "
                f"{', '.join(sorted(set(climbing)))} may impersonate it")

    def _check_impersonation(self, user: UserInfo, cluster: str, *, name: str,
                             groups: list[str], uid: str, extra: dict[str, list[str]]) -> None:
        wanted: list[tuple[str, str, str, str]] = []
        if name.startswith(_SERVICE_ACCOUNT_PREFIX):
            namespace, _, sa_name = name[len(_SERVICE_ACCOUNT_PREFIX):].partition(":")
            wanted.append(("", "serviceaccounts", namespace, sa_name))
        else:
            wanted.append(("", "users", "", name))
        wanted += [("", "groups", "", group) for group in groups]
        if uid:
            wanted.append(("authentication.k8s.io", "uids", "", uid))
        for key, values in extra.items():
            wanted += [("authentication.k8s.io", f"userextras/{key}", "", v) for v in values]
        for group, resource, namespace, object_name in wanted:
            resource_name, _, subresource = resource.partition("/")
            attributes = Attributes(
                user=user, verb="impersonate", cluster=cluster, namespace=namespace,
                api_group=group, resource=resource_name, subresource=subresource,
                name=object_name)
            if not self.authorize(attributes):
                raise forbidden_error(attributes)

    def authorize(self, attributes: Attributes) -> bool:
        if self.authorizer is None or SYSTEM_MASTERS in attributes.user.groups:
            return True
        return self.authorizer.authorize(attributes).allowed

    def check(self, user: UserInfo, info: RequestInfo, method: str, *,
              workspace: str) -> None:
        """Raise the 403 (or 401) this request deserves, if any."""
        if self.authorizer is None or SYSTEM_MASTERS in user.groups:
            return
        bound = user.extra.get(SA_CLUSTER_EXTRA)
        if bound and info.cluster not in bound:
            raise errors.unauthorized(
                "the service account token is bound to another workspace")
        if not bound and info.path not in PUBLIC_PATHS:
            entry = self.authorizer.can_enter(user, info.cluster)
            if not entry.allowed:
                raise errors.forbidden(
                    f'access to workspace "{workspace}" is forbidden: User "{user.name}" '
                    "needs the verb \"access\" on the workspace (a binding to "
                    "system:kcp:workspace:access or cluster-admin in it)")
        attributes = attributes_for(user, info, method)
        if _is_system_managed(info):
            raise errors.forbidden(
                f'logicalclusters "{info.name}" is forbidden: only system:masters may change '
                f"a workspace's LogicalCluster (its owner, type and quota); initializers "
                "use its status subresource", name=info.name, group=info.group,
                kind=info.resource)
        if not self.decide(attributes).allowed:
            raise forbidden_error(attributes, workspace=workspace)

    def decide(self, attributes: Attributes) -> Decision:
        """RBAC of the request's logical cluster, capped by the maximal permission policy of
        the export a resource was bound from. What requests and access reviews both ask.

        As in kcp, a policy's refusal gives no reason (the policy module logs it), so it
        reads as any RBAC refusal."""
        assert self.authorizer is not None
        decision = self.authorizer.authorize(attributes)
        policy = self.maximal_permission
        if decision.allowed and policy is not None and not policy.authorize(attributes).allowed:
            return Decision(False)
        return decision


def _is_system_managed(info: RequestInfo) -> bool:
    """A LogicalCluster's main resource carries the workspace's quota; its admins must not
    lift it. Reads and the status subresource stay under RBAC."""
    return (info.is_resource_request and info.group == "core.kcp.io"
            and info.resource == "logicalclusters" and not info.subresource
            and info.verb not in ("get", "list", "watch"))


def _has_authorization_header(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(key.lower() == b"authorization" for key, _ in headers)


def attributes_for(user: UserInfo, info: RequestInfo, method: str) -> Attributes:
    if not info.is_resource_request:
        verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
        return Attributes(user=user, verb=verb, cluster=info.cluster, path=info.path,
                          resource_request=False)
    return Attributes(user=user, verb=info.verb, cluster=info.cluster,
                      namespace=info.namespace, api_group=info.group,
                      api_version=info.version, resource=info.resource,
                      subresource=info.subresource, name=info.name)


def forbidden_error(attributes: Attributes, *, workspace: str = "") -> errors.StatusError:
    """kube-apiserver's wording, with the workspace (if given) named at the end."""
    user = attributes.user.name
    where = f' in workspace "{workspace}"' if workspace else ""
    if not attributes.resource_request:
        return errors.forbidden(
            f'forbidden: User "{user}" cannot {attributes.verb} path "{attributes.path}"'
            f"{where}")
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    # Upstream names the group-qualified resource (without the subresource) up front.
    qualified = errors.qualified_resource(attributes.resource, attributes.api_group)
    subject = f'{qualified} "{attributes.name}"' if attributes.name else qualified
    scope = (f'in the namespace "{attributes.namespace}"' if attributes.namespace
             else "at the cluster scope")
    return errors.forbidden(
        f'{subject} is forbidden: User "{user}" cannot {attributes.verb} resource '
        f'"{resource}" in API group "{attributes.api_group}" {scope}{where}',
        name=attributes.name, group=attributes.api_group, kind=attributes.resource)
