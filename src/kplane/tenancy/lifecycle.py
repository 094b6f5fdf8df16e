"""A workspace being deleted takes no new content.

As in kcp, deleting a Workspace deletes its logical cluster's ``LogicalCluster``, which the
``core.kcp.io/logicalcluster-deletion`` finalizer holds until the content is gone. From
then on the LogicalCluster carries a ``deletionTimestamp``, and that is the mark this
admission plugin reads: a create in a logical cluster whose LogicalCluster is being deleted
is refused with 403, the way a terminating namespace refuses new content upstream. Updates,
deletes and finalizer removal still pass, so controllers can clean up. A create in a logical
cluster that has no LogicalCluster at all (other than root, and the LogicalCluster itself)
is refused with 404: the workspace was purged while the request was on its way.

The mark lives in the store, so every server sharing it sees the same thing once its watch
cache does; nothing is kept in memory here. A create costs one cache lookup of the
LogicalCluster and a byte search in it; only a match is decoded. The workspace controller
marks a deleted workspace's whole subtree at once (see
:mod:`kplane.controllers.workspace`), so descendants refuse content too.
"""

from __future__ import annotations

from typing import Any

import orjson

from kplane.apimachinery import errors
from kplane.registry import builtin
from kplane.registry.keys import resource_prefix
from kplane.registry.kinds.tenancy import LOGICAL_CLUSTER_NAME
from kplane.registry.resources import ResourceType
from kplane.storage.cacher import CachedObject, Cacher
from kplane.tenancy.names import ROOT
from kplane.tenancy.resolver import ClusterResolver

LOGICAL_CLUSTER_FINALIZER = "core.kcp.io/logicalcluster-deletion"
"""kcp's finalizer on a LogicalCluster: its content goes before it does."""

_MARK = b'"deletionTimestamp"'


def is_being_deleted(cached: CachedObject | None) -> bool:
    """Whether a cached LogicalCluster carries a deletionTimestamp.

    The byte search answers almost every call; a match (a LogicalCluster being deleted, or
    an annotation that happens to be named so) is confirmed by decoding."""
    if cached is None or _MARK not in cached.raw:
        return False
    meta = orjson.loads(cached.raw).get("metadata") or {}
    return bool(meta.get("deletionTimestamp"))


class TerminatingWorkspaces:
    """Admission plugin refusing creates in logical clusters that are being deleted."""

    def __init__(self, *, cacher: Cacher, resolver: ClusterResolver) -> None:
        self._cacher = cacher
        self._resolver = resolver
        self._prefix = resource_prefix(builtin.LOGICAL_CLUSTERS)

    def handles(self, rt: ResourceType) -> bool:
        return True

    def _logical_cluster(self, cluster: str) -> CachedObject | None:
        return self._cacher.get(f"{self._prefix}{cluster}/{LOGICAL_CLUSTER_NAME}")

    def is_terminating(self, cluster: str) -> bool:
        return is_being_deleted(self._logical_cluster(cluster))

    async def admit_create(self, *, rt: ResourceType, cluster: str,
                           obj: dict[str, Any]) -> None:
        cached = self._logical_cluster(cluster)
        if cached is None:
            if cluster != ROOT and rt != builtin.LOGICAL_CLUSTERS:
                # The workspace is gone (its deletion purged the LogicalCluster while this
                # request was on its way): whatever it created now would be an orphan.
                # Root's content is created before root's LogicalCluster, on first start.
                raise errors.StatusError(404, "NotFound", f'workspace "{cluster}" not found',
                                         name=cluster, group=rt.group, kind=rt.resource)
            return
        if not is_being_deleted(cached):
            return
        name = str((obj.get("metadata") or {}).get("name") or "")
        path = self._resolver.path_of(cluster) or cluster
        raise errors.forbidden(
            f'{errors.qualified_resource(rt.resource, rt.group)} "{name}" is forbidden: '
            f"unable to create new content in workspace {path} because it is being "
            "terminated", name=name, group=rt.group, kind=rt.resource)

    async def admit_update(self, *, rt: ResourceType, cluster: str, new: dict[str, Any],
                           old: dict[str, Any]) -> None:
        return None
