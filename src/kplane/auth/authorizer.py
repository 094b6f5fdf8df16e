"""May this user do this, in this logical cluster? RBAC per logical cluster, and kcp's
workspace access gate.

The HTTP layer builds :class:`Attributes` for every request and asks :meth:`Authorizer.
authorize`; it asks :meth:`Authorizer.can_enter` before serving anything inside a
workspace, and :meth:`Authorizer.rules_for` for a SelfSubjectRulesReview. Evaluation is
upstream Kubernetes RBAC (``system:masters`` bypasses it), confined to one logical
cluster: bindings in one cluster never grant anything in another.

Everything is synchronous and reads an in-memory index that follows the watch cache
(:mod:`kplane.auth.rbac_index`), so a check costs a few dictionary lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kplane.auth.authn import UserInfo
from kplane.auth.bootstrap_policy import ACCESS_VERB
from kplane.auth.rbac import CLUSTER_ROLE_KIND, SERVICE_ACCOUNT_PREFIX, Binding, PolicyRule
from kplane.auth.rbac_index import IndexFollower, RbacIndex
from kplane.auth.serviceaccounts import SA_CLUSTER_EXTRA
from kplane.storage.cacher import Cacher

# The logical cluster a ServiceAccount token was issued in (set by token authentication).
SERVICE_ACCOUNT_CLUSTER_EXTRA = SA_CLUSTER_EXTRA
"""The ``UserInfo.extra`` key a ServiceAccount token's user carries its cluster under.

Whoever builds a UserInfo from impersonation headers must not let a client set it."""

WORKSPACE_ACCESS_DENIED = "workspace access not permitted"
SERVICE_ACCOUNT_OF_CLUSTER = "service account of this workspace"


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request wants to do, as the authorizer sees it."""

    user: UserInfo
    verb: str
    cluster: str
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass
class RulesReview:
    """A SelfSubjectRulesReview status: upstream's ResourceRule and NonResourceRule JSON."""

    resource_rules: list[dict[str, Any]] = field(default_factory=list)
    non_resource_rules: list[dict[str, Any]] = field(default_factory=list)
    incomplete: bool = False
    evaluation_error: str = ""


_ALLOWED = Decision(True)
_DENIED = Decision(False)


class Authorizer:
    """RBAC of every logical cluster, from the watch cache (see the module docstring)."""

    def __init__(self, cacher: Cacher) -> None:
        self._index = RbacIndex()
        self._follower = IndexFollower(cacher, self._index)

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    @property
    def index(self) -> RbacIndex:
        return self._index

    @property
    def revision(self) -> int:
        """The cache revision whose RBAC objects authorization already reflects."""
        return self._follower.revision

    async def wait_for(self, revision: int, *, timeout: float = 5.0) -> None:
        """Return once bindings written at ``revision`` take effect; TimeoutError if not."""
        await self._follower.wait_for(revision, timeout=timeout)

    def authorize(self, attributes: Attributes) -> Decision:
        user = attributes.user
        if user.is_system_master:
            return _ALLOWED
        index = self._index
        cluster = attributes.cluster
        for binding, subject in index.bindings_for(user, cluster, attributes.namespace):
            rules = index.role_rules(cluster, binding)
            if rules and self._any_allows(rules, attributes):
                return Decision(True, f"RBAC: allowed by {binding.describe(subject)}")
        return _DENIED

    @staticmethod
    def _any_allows(rules: tuple[PolicyRule, ...], attributes: Attributes) -> bool:
        if attributes.resource_request:
            return any(
                rule.allows_resource(verb=attributes.verb, api_group=attributes.api_group,
                                     resource=attributes.resource,
                                     subresource=attributes.subresource, name=attributes.name)
                for rule in rules)
        return any(rule.allows_non_resource(verb=attributes.verb, path=attributes.path)
                   for rule in rules)

    def can_enter(self, user: UserInfo, cluster: str) -> Decision:
        """kcp's gate in front of a workspace: verb ``access`` on ``/`` inside it."""
        if user.is_system_master:
            return _ALLOWED
        if _is_service_account_of(user, cluster):
            return Decision(True, SERVICE_ACCOUNT_OF_CLUSTER)
        decision = self.authorize(Attributes(user=user, verb=ACCESS_VERB, cluster=cluster,
                                             path="/", resource_request=False))
        return decision if decision.allowed else Decision(False, WORKSPACE_ACCESS_DENIED)

    def rules_for(self, user: UserInfo, cluster: str, namespace: str) -> RulesReview:
        """Every rule the user holds in ``namespace`` of ``cluster`` (cluster-wide ones
        included), as upstream's RBAC rule resolver reports them."""
        review = RulesReview()
        errors: list[str] = []
        for binding, _ in self._index.bindings_for(user, cluster, namespace):
            rules = self._index.role_rules(cluster, binding)
            if rules is None:
                errors.append(_missing_role(binding))
                continue
            for rule in rules:
                if rule.resources:
                    review.resource_rules.append(rule.resource_rule_json())
                if rule.non_resource_urls:
                    review.non_resource_rules.append(rule.non_resource_rule_json())
        if errors:
            review.incomplete = True
            # Upstream's error aggregate: one message alone, several bracketed.
            review.evaluation_error = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
        return review


def _is_service_account_of(user: UserInfo, cluster: str) -> bool:
    if not user.name.startswith(SERVICE_ACCOUNT_PREFIX):
        return False
    return cluster in user.extra.get(SERVICE_ACCOUNT_CLUSTER_EXTRA, ())


def _missing_role(binding: Binding) -> str:
    if binding.role_kind == CLUSTER_ROLE_KIND:
        return f'clusterrole.rbac.authorization.k8s.io "{binding.role_name}" not found'
    return f'role.rbac.authorization.k8s.io "{binding.role_name}" not found'
