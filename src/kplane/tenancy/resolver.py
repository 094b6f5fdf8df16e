"""From a URL's ``/clusters/<reference>`` to a logical cluster, and back to its path.

Every request names its logical cluster by path (``root:acme:payments``) or by cluster
name. Resolution walks the Workspace objects in the watch cache, one dictionary lookup per
path segment, reading each Workspace's ``spec.cluster`` from the fields the cache indexed
when the Workspace was written: no decoding and no SQL on the request path, and nothing
kept per workspace beyond the cached objects themselves.
"""

from __future__ import annotations

from kplane.registry import builtin
from kplane.registry.keys import object_key
from kplane.registry.kinds.tenancy import CLUSTER_FIELD, LOGICAL_CLUSTER_NAME, PATH_FIELD
from kplane.storage.cacher import Cacher
from kplane.tenancy.names import ROOT, is_valid_reference


class ClusterResolver:
    """Resolves workspace paths and cluster names against the watch cache."""

    def __init__(self, cacher: Cacher) -> None:
        self._cacher = cacher

    def cluster_exists(self, cluster: str) -> bool:
        if cluster == ROOT:
            return True
        key = object_key(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)
        return self._cacher.get(key) is not None

    def child_cluster(self, parent_cluster: str, workspace: str) -> str | None:
        """The logical cluster a Workspace in ``parent_cluster`` owns, once it is assigned."""
        cached = self._cacher.get(object_key(builtin.WORKSPACES, parent_cluster, "", workspace))
        if cached is None:
            return None
        return cached.fields.get(CLUSTER_FIELD) or None

    def resolve(self, reference: str) -> str | None:
        """The logical cluster a path or cluster name refers to, or None if none does."""
        if reference == ROOT:
            return ROOT
        if not is_valid_reference(reference):
            return None
        if ":" not in reference or reference.startswith("system:"):
            return reference if self.cluster_exists(reference) else None
        first, *rest = reference.split(":")
        current: str | None = first if self.cluster_exists(first) else None
        for segment in rest:
            if current is None:
                return None
            current = self.child_cluster(current, segment)
        return current if current is not None and self.cluster_exists(current) else None

    def logical_cluster_field(self, cluster: str, field: str) -> str:
        key = object_key(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)
        cached = self._cacher.get(key)
        return cached.fields.get(field, "") if cached is not None else ""

    def path_of(self, cluster: str) -> str | None:
        """The canonical path of a logical cluster (its LogicalCluster's kcp.io/path)."""
        if cluster == ROOT:
            return ROOT
        key = object_key(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)
        cached = self._cacher.get(key)
        if cached is None:
            return None
        return cached.fields.get(PATH_FIELD) or None
