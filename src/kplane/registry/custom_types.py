"""Custom resource types: what each logical cluster's Established CRDs add to its API.

The index follows the CustomResourceDefinitions of every logical cluster through one watch
on the cache. For each CRD whose ``Established`` condition is true it keeps one
:class:`ResourceType` per served version (tagged with the cluster, since two workspaces may
define the same group and plural with different schemas) and a Strategy built from that
version's schema. Clusters without CRDs have no entry at all.

When a type stops being served (its CRD deleted, no longer Established, or the version no
longer served) the index ends the type's watches; it also holds the gate that refuses
creates of a kind whose CRD is terminating (:mod:`kplane.registry.crd_lifecycle`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from kplane.registry.cache_index import CacheFollower
from kplane.registry.crd_lifecycle import CreateGate, KindWatches, defined_by_crd
from kplane.registry.keys import parse_key
from kplane.registry.kinds.custom import CustomResourceStrategy, storage_version
from kplane.registry.resources import ALL_VERBS, ResourceType
from kplane.storage.cacher import CachedObject, Cacher, CacheWatcher

__all__ = ["CRD_PREFIX", "CustomTypeIndex", "is_established", "resource_types_for",
           "storage_version"]

CRD_PREFIX = "/registry/apiextensions.k8s.io/customresourcedefinitions/"


def is_established(crd: Mapping[str, Any]) -> bool:
    for condition in (crd.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Established":
            return condition.get("status") == "True"
    return False


def resource_types_for(crd: Mapping[str, Any], cluster: str, *, identity: str = "",
                       ) -> list[tuple[ResourceType, CustomResourceStrategy]]:
    """The served versions of one CRD as resource types with their strategies.

    ``identity`` (an APIExport's identity hash) marks a bound type: its objects are stored
    under ``<plural>:<identity>`` so two exports of the same group and resource never mix."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    stored = storage_version(spec)
    found: list[tuple[ResourceType, CustomResourceStrategy]] = []
    for version in spec.get("versions") or []:
        if not isinstance(version, Mapping) or not version.get("served"):
            continue
        subresources = version.get("subresources") or {}
        rt = ResourceType(
            group=group, version=str(version.get("name", "")),
            resource=str(names.get("plural", "")), kind=str(names.get("kind", "")),
            namespaced=spec.get("scope") == "Namespaced",
            singular=str(names.get("singular", "")),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            verbs=ALL_VERBS,
            subresources=tuple(s for s in ("status", "scale") if s in subresources),
            selectable_fields=tuple(
                str(f.get("jsonPath", "")).lstrip(".")
                for f in version.get("selectableFields") or [] if isinstance(f, Mapping)),
            supports_strategic_merge=False,
            storage_resource=f"{names.get('plural', '')}:{identity}" if identity else None,
            cluster=cluster,
        )
        found.append((rt, CustomResourceStrategy(rt, version=version,
                                                 storage_version=stored)))
    return found


class CustomTypeIndex:
    """Established CRDs of every logical cluster, as resource types."""

    def __init__(self, *, watches: KindWatches | None = None) -> None:
        self.creates = CreateGate()
        self.watches = watches or KindWatches()
        self._by_cluster: dict[str, dict[str, list[tuple[ResourceType,
                                                         CustomResourceStrategy]]]] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._follower = CacheFollower(name="crd-index", watch_prefix=CRD_PREFIX,
                                       load_prefixes=[CRD_PREFIX], apply=self.apply)
        self.revision = 0

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(cluster)`` whenever a cluster's custom types change."""
        self._listeners.append(listener)

    def types(self, cluster: str) -> list[tuple[ResourceType, CustomResourceStrategy]]:
        crds = self._by_cluster.get(cluster)
        if not crds:
            return []
        return [entry for entries in crds.values() for entry in entries]

    def serves(self, rt: ResourceType) -> bool:
        crds = self._by_cluster.get(rt.cluster)
        entries = crds.get(f"{rt.resource}.{rt.group}") if crds else None
        return entries is not None and any(known == rt for known, _ in entries)

    def track_watch(self, rt: ResourceType, watcher: CacheWatcher) -> None:
        """Remember a watch of a custom resource type, to end it when the type goes."""
        if not defined_by_crd(rt):
            return
        if not self.serves(rt):
            # The type went between the request's routing and its watch starting.
            watcher.close()
            return
        self.watches.track(rt, watcher)

    def apply(self, cached: CachedObject, *, deleted: bool) -> None:
        parsed = parse_key(cached.key)
        if parsed is None:
            return
        crds = self._by_cluster.setdefault(parsed.cluster, {})
        before = crds.get(parsed.name)
        if deleted:
            crds.pop(parsed.name, None)
            self.creates.forget(cached.key)
        else:
            crd = orjson.loads(cached.raw)
            if is_established(crd):
                crds[parsed.name] = resource_types_for(crd, parsed.cluster)
            else:
                crds.pop(parsed.name, None)
        if not crds:
            self._by_cluster.pop(parsed.cluster, None)
        self.revision = max(self.revision, cached.revision)
        after = crds.get(parsed.name)
        if before:
            kept = {rt for rt, _ in after or ()}
            self.watches.end(rt for rt, _ in before if rt not in kept)
        if before != after:
            for listener in self._listeners:
                listener(parsed.cluster)

    async def start(self, cacher: Cacher) -> None:
        await self._follower.start(cacher)

    async def stop(self) -> None:
        await self._follower.stop()
