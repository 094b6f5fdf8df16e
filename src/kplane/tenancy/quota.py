"""The object-count quota of a workspace (kcp's ``core.kcp.io/max-total-objects``).

The annotation on a workspace's LogicalCluster caps how many objects the workspace may
hold. A create that would exceed it is refused with a 403 that names the limit; updates
and deletes are never refused, and nothing already stored is touched. Counting reads the
watch cache's index (one count per resource prefix, no scan), and workspaces without the
annotation pay one dictionary lookup per create.
"""

from __future__ import annotations

from typing import Any

from kplane.apimachinery import errors
from kplane.registry.catalog import Catalog
from kplane.registry.kinds.tenancy import MAX_OBJECTS_ANNOTATION, MAX_OBJECTS_FIELD
from kplane.registry.resources import ResourceType
from kplane.storage.cacher import Cacher
from kplane.tenancy.resolver import ClusterResolver

__all__ = ["MAX_OBJECTS_ANNOTATION", "ObjectCountQuota"]


class ObjectCountQuota:
    """Admission plugin refusing creates beyond a workspace's object budget."""

    def __init__(self, *, cacher: Cacher, catalog: Catalog, resolver: ClusterResolver) -> None:
        self._cacher = cacher
        self._catalog = catalog
        self._resolver = resolver

    def handles(self, rt: ResourceType) -> bool:
        return True

    def limit(self, cluster: str) -> int | None:
        text = self._resolver.logical_cluster_field(cluster, MAX_OBJECTS_FIELD)
        return int(text) if text.isdigit() else None

    def count(self, cluster: str) -> int:
        return sum(self._cacher.count(f"{prefix}{cluster}/")
                   for prefix in self._catalog.storage_prefixes(cluster))

    async def admit_create(self, *, rt: ResourceType, cluster: str,
                           obj: dict[str, Any]) -> None:
        limit = self.limit(cluster)
        if limit is None:
            return
        used = self.count(cluster)
        if used >= limit:
            name = str((obj.get("metadata") or {}).get("name", ""))
            path = self._resolver.path_of(cluster) or cluster
            raise errors.forbidden(
                f'{rt.resource} "{name}" is forbidden: exceeded quota: workspace "{path}" '
                f"holds {used} objects and its limit ({MAX_OBJECTS_ANNOTATION} on its "
                f"LogicalCluster) is {limit}",
                name=name, group=rt.group, kind=rt.resource)

    async def admit_update(self, *, rt: ResourceType, cluster: str, new: dict[str, Any],
                           old: dict[str, Any]) -> None:
        return None
