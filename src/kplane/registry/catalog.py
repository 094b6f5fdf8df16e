"""Which resource types each logical cluster serves, and the Strategy of each.

Every logical cluster serves the built-in kinds; a cluster's Established CRDs add its own
custom resource types (from :class:`~kplane.registry.custom_types.CustomTypeIndex`) and its
Bound APIBindings the types of the exports they bind
(:class:`~kplane.registry.bound_types.BoundTypeIndex`).
Everything that asks "what does this cluster serve?" (routing, discovery, OpenAPI, storage
decoding, namespace and workspace deletion) asks this catalog, so they cannot disagree.
A built-in type wins over a CRD that claims the same group and resource, and a CRD over a
binding (the controllers refuse the later of the two, so this is only a tie-break).
"""

from __future__ import annotations

from typing import Protocol

from kplane.registry.bound_types import BoundTypeIndex
from kplane.registry.builtin import BUILTIN_RESOURCES, REVIEWS
from kplane.registry.custom_types import CustomTypeIndex
from kplane.registry.keys import resource_prefix
from kplane.registry.kinds import strategy_for
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy


class ServedTypes(Protocol):
    """What routing and discovery ask: the types one logical cluster serves.

    The :class:`Catalog` answers for workspaces; a virtual workspace answers with the few
    types an export exposes."""

    def resources(self, cluster: str) -> tuple[ResourceType, ...]: ...

    def lookup(self, cluster: str, group: str, version: str,
               resource: str) -> ResourceType | None: ...


class Catalog:
    """The served resource types, looked up by URL parts or by storage location."""

    def __init__(self, custom: CustomTypeIndex | None = None,
                 bound: BoundTypeIndex | None = None) -> None:
        self._builtin = BUILTIN_RESOURCES
        self.custom = custom or CustomTypeIndex()
        self.bound = bound or BoundTypeIndex()
        self._by_url: dict[tuple[str, str, str], ResourceType] = {
            (rt.group, rt.version, rt.resource): rt for rt in self._builtin
        }
        self._by_storage: dict[tuple[str, str], ResourceType] = {}
        for rt in self._builtin:
            self._by_storage.setdefault((rt.stored_group, rt.stored_resource), rt)
        self._strategies: dict[ResourceType, Strategy] = {
            rt: strategy_for(rt) for rt in self._builtin
        }
        self._builtin_prefixes = sorted(
            {resource_prefix(rt) for rt in self._builtin if rt not in REVIEWS})

    def _extra_types(self, cluster: str) -> list[tuple[ResourceType, Strategy]]:
        custom: list[tuple[ResourceType, Strategy]] = list(self.custom.types(cluster))
        bound = self.bound.types(cluster)
        if bound:
            custom.extend(bound)
        return custom

    def resources(self, cluster: str) -> tuple[ResourceType, ...]:
        """Every resource type served in one logical cluster, in discovery order."""
        extra = self._extra_types(cluster)
        if not extra:
            return self._builtin
        seen = set(self._by_url)
        served = []
        for rt, _ in extra:
            url = (rt.group, rt.version, rt.resource)
            if url not in seen:
                seen.add(url)
                served.append(rt)
        return self._builtin + tuple(served)

    def lookup(self, cluster: str, group: str, version: str, resource: str) -> ResourceType | None:
        builtin = self._by_url.get((group, version, resource))
        if builtin is not None:
            return builtin
        for rt, _ in self._extra_types(cluster):
            if rt.group == group and rt.version == version and rt.resource == resource:
                return rt
        return None

    def group_versions(self, cluster: str) -> set[tuple[str, str]]:
        return {(rt.group, rt.version) for rt in self.resources(cluster)}

    def by_storage(self, group: str, resource: str, cluster: str = "") -> ResourceType | None:
        """The type whose objects are stored under ``/registry/<group>/<resource>/``
        (for custom resources, the storage version's type in that cluster)."""
        builtin = self._by_storage.get((group, resource))
        if ":" in resource:
            return self.bound.by_storage(group, resource)
        if builtin is not None or not cluster:
            return builtin
        fallback = None
        for rt, strategy in self.custom.types(cluster):
            if rt.group == group and rt.resource == resource:
                if strategy.storage_api_version == rt.api_version:
                    return rt
                fallback = fallback or rt
        return fallback

    def storage_prefixes(self, cluster: str = "") -> list[str]:
        """Every ``/registry/<group>/<resource>/`` prefix objects may be stored under:
        the built-in ones, plus the custom resources of ``cluster`` when given."""
        if not cluster:
            return self._builtin_prefixes
        custom = {resource_prefix(rt) for rt, _ in self._extra_types(cluster)}
        return sorted(set(self._builtin_prefixes) | custom)

    def strategy(self, rt: ResourceType) -> Strategy:
        strategy = self._strategies.get(rt)
        if strategy is not None:
            return strategy
        for known, custom_strategy in self.custom.types(rt.cluster):
            if known == rt:
                return custom_strategy
        bound = self.bound.strategy(rt)
        if bound is not None:
            return bound
        # A type no index knows (its CRD just went away): plain rules, not remembered.
        return strategy_for(rt)
