"""kcp's APIExport ``spec.maximalPermissionPolicy``: the provider's ceiling on what consumers
may do with the resources they bound.

When an APIExport has ``maximalPermissionPolicy.local`` set, a request in a consumer
workspace on a resource that workspace got through an APIBinding to that export must be
allowed twice: by the consumer's own RBAC (as any request) and by the RBAC of the export's
workspace, asked about the same verb, group, resource, subresource, namespace and name but
for the user renamed ``apis.kcp.io:binding:<user>`` in groups ``apis.kcp.io:binding:<group>``
(so a provider's ordinary grants to its own users never leak into consumers). The provider
grants the ceiling with ordinary Roles and ClusterRoles bound to those prefixed names.

As in kcp, ``system:masters`` bypasses it (the caller never asks for them), requests through
the export's virtual workspace are not subject to it (they never reach this check), an export
that no longer exists imposes nothing, and a refusal is the ordinary RBAC 403: the reason
(``API export "<cluster>"|"<name>" policy: ...``) is for logs, not for the client.

:class:`MaximalPermissionPolicies` follows APIExports and APIBindings through the watch cache
and keeps, per consumer cluster, only the (group, resource) pairs governed by a policy. A
request on anything else costs one dictionary lookup (by cluster) and no more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kplane.auth.authn import ANONYMOUS_USER, AUTHENTICATED, UNAUTHENTICATED, UserInfo
from kplane.auth.authorizer import Attributes, Authorizer, Decision
from kplane.auth.rbac import SERVICE_ACCOUNT_PREFIX
from kplane.auth.serviceaccounts import SA_CLUSTER_EXTRA
from kplane.registry import builtin
from kplane.registry.bound_types import (
    APIS_PREFIX,
    BINDINGS,
    EXPORTS,
    ExportRef,
    replace_binding,
)
from kplane.registry.cache_index import CacheFollower
from kplane.registry.keys import parse_key
from kplane.storage.cacher import CachedObject, Cacher

log = logging.getLogger(__name__)

BINDING_SUBJECT_PREFIX = "apis.kcp.io:binding:"
"""kcp's ``MaximalPermissionPolicyRBACUserGroupPrefix``."""

_KCP_SERVICE_ACCOUNT = "system:kcp:serviceaccount:"

GroupResource = tuple[str, str]
_ALLOWED = Decision(True)


@dataclass(frozen=True, slots=True)
class _BindingRecord:
    """What one APIBinding gives its workspace, as far as the policy cares."""

    export: ExportRef
    resources: frozenset[GroupResource]


def binding_user(user: UserInfo) -> UserInfo:
    """The user the provider's RBAC is asked about (kcp's ``PrefixUser``).

    A ServiceAccount is named globally, ``system:kcp:serviceaccount:<cluster>:<ns>:<name>``,
    so a provider can tell two workspaces' ``default/builder`` apart; one that does not say
    which workspace it belongs to (an impersonated one) is only an anonymous user."""
    name = user.name
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        clusters = user.extra.get(SA_CLUSTER_EXTRA, ())
        if len(clusters) != 1:
            group = AUTHENTICATED if AUTHENTICATED in user.groups else UNAUTHENTICATED
            return UserInfo(name=BINDING_SUBJECT_PREFIX + ANONYMOUS_USER,
                            groups=(BINDING_SUBJECT_PREFIX + group,))
        name = f"{_KCP_SERVICE_ACCOUNT}{clusters[0]}:{name[len(SERVICE_ACCOUNT_PREFIX):]}"
    return UserInfo(name=BINDING_SUBJECT_PREFIX + name,
                    groups=tuple(BINDING_SUBJECT_PREFIX + g for g in user.groups),
                    uid=user.uid, extra=user.extra)


def export_has_policy(export: Mapping[str, Any]) -> bool:
    """Whether an APIExport sets ``spec.maximalPermissionPolicy.local`` (``{}`` counts)."""
    policy = (export.get("spec") or {}).get("maximalPermissionPolicy")
    return isinstance(policy, Mapping) and isinstance(policy.get("local"), Mapping)


def _binding_record(cluster: str, binding: Mapping[str, Any]) -> _BindingRecord | None:
    """The export a binding points at and the resources it lists in ``boundResources``.

    As kcp, any binding listing a resource governs it, whatever its phase."""
    status = binding.get("status") or {}
    resources = frozenset(
        (str(entry.get("group") or ""), str(entry.get("resource") or ""))
        for entry in status.get("boundResources") or [] if isinstance(entry, Mapping))
    if not resources:
        return None
    reference = ((binding.get("spec") or {}).get("reference") or {}).get("export") or {}
    export_cluster = str(status.get("apiExportClusterName") or "")
    if not export_cluster and not reference.get("path"):
        export_cluster = cluster  # an export of the workspace itself
    if not export_cluster:
        return None
    return _BindingRecord(ExportRef(export_cluster, str(reference.get("name") or "")),
                          resources)


class MaximalPermissionPolicies:
    """Which bound resources an export's policy governs, and the provider-side check."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer
        # Exports with ``maximalPermissionPolicy.local``.
        self._policies: set[ExportRef] = set()
        # consumer cluster -> binding name -> what it binds
        self._bindings: dict[str, dict[str, _BindingRecord]] = {}
        # export -> consumer clusters with a binding to it
        self._consumers: dict[ExportRef, set[str]] = {}
        # The hot-path table: only clusters with at least one governed resource.
        self._governed: dict[str, dict[GroupResource, ExportRef]] = {}
        self._follower = CacheFollower(
            name="maximal-permission-policies", watch_prefix=APIS_PREFIX,
            load_prefixes=[f"{APIS_PREFIX}{EXPORTS}/", f"{APIS_PREFIX}{BINDINGS}/"],
            apply=self.apply)
        self.revision = 0

    # Reads -------------------------------------------------------------------------------

    def governing(self, cluster: str, group: str, resource: str) -> ExportRef | None:
        """The export whose policy governs ``group``/``resource`` in ``cluster``, if any."""
        governed = self._governed.get(cluster)
        if governed is None:
            return None
        return governed.get((group, resource))

    def authorize(self, attributes: Attributes) -> Decision:
        """Allowed unless the resource is governed and the provider's RBAC refuses the
        prefixed user. The consumer's own RBAC is the caller's business."""
        governed = self._governed.get(attributes.cluster)
        if governed is None:
            return _ALLOWED
        export = governed.get((attributes.api_group, attributes.resource))
        if export is None or not attributes.resource_request:
            return _ALLOWED
        decision = self._authorizer.authorize(Attributes(
            user=binding_user(attributes.user), verb=attributes.verb, cluster=export.cluster,
            namespace=attributes.namespace, api_group=attributes.api_group,
            api_version=attributes.api_version, resource=attributes.resource,
            subresource=attributes.subresource, name=attributes.name))
        reason = f'API export "{export.cluster}"|"{export.name}" policy: {decision.reason}'
        if not decision.allowed:
            log.debug("refused %s %s/%s for %s in %s: %s", attributes.verb,
                      attributes.resource, attributes.subresource, attributes.user.name,
                      attributes.cluster, reason)
        return Decision(decision.allowed, reason)

    # Following the cache -----------------------------------------------------------------

    def apply(self, cached: CachedObject, *, deleted: bool) -> None:
        parsed = parse_key(cached.key)
        if parsed is None or parsed.group != builtin.API_EXPORTS.group:
            return
        if parsed.resource == EXPORTS:
            obj = None if deleted else orjson.loads(cached.raw)
            self._apply_export(ExportRef(parsed.cluster, parsed.name),
                               obj is not None and export_has_policy(obj))
        elif parsed.resource == BINDINGS:
            record = None if deleted else _binding_record(parsed.cluster,
                                                          orjson.loads(cached.raw))
            self._apply_binding(parsed.cluster, parsed.name, record)
        else:
            return
        self.revision = max(self.revision, cached.revision)

    def _apply_export(self, export: ExportRef, has_policy: bool) -> None:
        if has_policy == (export in self._policies):
            return
        if has_policy:
            self._policies.add(export)
        else:
            self._policies.discard(export)
        for cluster in self._consumers.get(export, ()):
            self._rebuild(cluster)

    def _apply_binding(self, cluster: str, name: str, record: _BindingRecord | None) -> None:
        before = replace_binding(self._bindings, cluster, name, record)
        if before == record:
            return
        if before is not None and not self._binds(cluster, before.export):
            consumers = self._consumers.get(before.export)
            if consumers is not None:
                consumers.discard(cluster)
                if not consumers:
                    del self._consumers[before.export]
        if record is not None:
            self._consumers.setdefault(record.export, set()).add(cluster)
        self._rebuild(cluster)

    def _binds(self, cluster: str, export: ExportRef) -> bool:
        return any(r.export == export for r in self._bindings.get(cluster, {}).values())

    def _rebuild(self, cluster: str) -> None:
        governed: dict[GroupResource, ExportRef] = {}
        for record in self._bindings.get(cluster, {}).values():
            if record.export in self._policies:
                for group_resource in record.resources:
                    governed[group_resource] = record.export
        if governed:
            self._governed[cluster] = governed
        else:
            self._governed.pop(cluster, None)

    async def start(self, cacher: Cacher) -> None:
        await self._follower.start(cacher)

    async def stop(self) -> None:
        await self._follower.stop()
