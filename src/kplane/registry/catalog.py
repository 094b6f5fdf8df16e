"""Which resource types each logical cluster serves, and the Strategy of each.

Today every logical cluster serves the built-in kinds. Custom resources and bound APIs will
add per-cluster entries here; everything that asks "what does this cluster serve?"
(routing, discovery, OpenAPI, storage decoding) asks this catalog, so they cannot disagree.
"""

from __future__ import annotations

from kplane.registry.builtin import BUILTIN_RESOURCES, REVIEWS
from kplane.registry.keys import resource_prefix
from kplane.registry.kinds import strategy_for
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy


class Catalog:
    """The served resource types, looked up by URL parts or by storage location."""

    def __init__(self) -> None:
        self._builtin = BUILTIN_RESOURCES
        self._by_url: dict[tuple[str, str, str], ResourceType] = {
            (rt.group, rt.version, rt.resource): rt for rt in self._builtin
        }
        self._by_storage: dict[tuple[str, str], ResourceType] = {}
        for rt in self._builtin:
            self._by_storage.setdefault((rt.stored_group, rt.stored_resource), rt)
        self._strategies: dict[ResourceType, Strategy] = {
            rt: strategy_for(rt) for rt in self._builtin
        }

    def resources(self, cluster: str) -> tuple[ResourceType, ...]:
        """Every resource type served in one logical cluster, in discovery order."""
        return self._builtin

    def lookup(self, cluster: str, group: str, version: str, resource: str) -> ResourceType | None:
        return self._by_url.get((group, version, resource))

    def group_versions(self, cluster: str) -> set[tuple[str, str]]:
        return {(rt.group, rt.version) for rt in self.resources(cluster)}

    def by_storage(self, group: str, resource: str) -> ResourceType | None:
        """The type whose objects are stored under ``/registry/<group>/<resource>/``."""
        return self._by_storage.get((group, resource))

    def storage_prefixes(self) -> list[str]:
        """Every ``/registry/<group>/<resource>/`` prefix objects may be stored under."""
        return sorted({resource_prefix(rt) for rt in self._builtin if rt not in REVIEWS})

    def strategy(self, rt: ResourceType) -> Strategy:
        strategy = self._strategies.get(rt)
        if strategy is None:
            strategy = self._strategies[rt] = strategy_for(rt)
        return strategy
