"""Bound resource types: what each logical cluster's APIBindings add to its API.

A Bound APIBinding lists its ``boundResources``: a group and resource, the APIResourceSchema
that defines it (in the export's logical cluster) and the export's identity hash. The index
follows APIBindings and APIResourceSchemas of every logical cluster through one watch on the
cache and turns each bound resource into one :class:`ResourceType` per served version, with a
Strategy from that version's schema.

A bound type belongs to its export, not to a consumer: the same export bound in a thousand
workspaces yields one type (``cluster`` is ''), stored under ``<plural>:<identity hash>`` so
objects of one export never mix with a CRD or another export of the same group and resource.
APIResourceSchemas are immutable, so a type built once is reused until its schema goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from kplane.registry.cache_index import CacheFollower
from kplane.registry.custom_types import resource_types_for
from kplane.registry.keys import parse_key
from kplane.registry.kinds.apis_conversion import as_crd_spec
from kplane.registry.kinds.custom import CustomResourceStrategy
from kplane.registry.resources import ResourceType
from kplane.storage.cacher import CachedObject, Cacher

log = logging.getLogger(__name__)

APIS_PREFIX = "/registry/apis.kcp.io/"
BINDINGS = "apibindings"
EXPORTS = "apiexports"
SCHEMAS = "apiresourceschemas"
BOUND_PHASE = "Bound"

TypeEntry = tuple[ResourceType, CustomResourceStrategy]
_Record = TypeVar("_Record")


def replace_binding(bindings: dict[str, dict[str, _Record]], cluster: str, name: str,
                    record: _Record | None) -> _Record | None:
    """Put (or, with None, drop) what binding ``name`` of ``cluster`` gives, in a table of
    bindings by cluster that keeps no empty clusters; returns what it gave before."""
    of_cluster = bindings.setdefault(cluster, {})
    before = of_cluster.pop(name, None)
    if record is not None:
        of_cluster[name] = record
    if not of_cluster:
        del bindings[cluster]
    return before


@dataclass(frozen=True, slots=True)
class BoundResource:
    """One resource a binding makes available, and where its definition lives."""

    group: str
    resource: str
    schema: str
    identity: str
    export_cluster: str


@dataclass(frozen=True, slots=True)
class ExportRef:
    """An APIExport by logical cluster name and export name."""

    cluster: str
    name: str


def bound_resources_of(binding: Mapping[str, Any]) -> list[BoundResource]:
    """The resources a Bound binding serves; none while it is not Bound."""
    status = binding.get("status") or {}
    if status.get("phase") != BOUND_PHASE:
        return []
    export_cluster = str(status.get("apiExportClusterName") or "")
    found = []
    for entry in status.get("boundResources") or []:
        if not isinstance(entry, Mapping):
            continue
        schema = entry.get("schema") or {}
        found.append(BoundResource(
            group=str(entry.get("group", "")), resource=str(entry.get("resource", "")),
            schema=str(schema.get("name", "")), identity=str(schema.get("identityHash", "")),
            export_cluster=export_cluster))
    return found


@dataclass(frozen=True, slots=True)
class _Bound:
    """What one Bound binding gives its workspace: the export's types and the claims it
    accepted, as (group, resource)."""

    export: ExportRef
    resources: tuple[BoundResource, ...]
    claims: frozenset[tuple[str, str]]


def _bound_of(binding: Mapping[str, Any]) -> _Bound | None:
    status = binding.get("status") or {}
    if status.get("phase") != BOUND_PHASE:
        return None
    reference = ((binding.get("spec") or {}).get("reference") or {}).get("export") or {}
    return _Bound(
        export=ExportRef(str(status.get("apiExportClusterName") or ""),
                         str(reference.get("name") or "")),
        resources=tuple(bound_resources_of(binding)),
        claims=frozenset(
            (str(c.get("group") or ""), str(c.get("resource") or ""))
            for c in status.get("appliedPermissionClaims") or [] if isinstance(c, Mapping)))


def types_for_schema(schema: Mapping[str, Any], identity: str) -> list[TypeEntry]:
    spec = schema.get("spec") or {}
    return resource_types_for({"spec": as_crd_spec(spec)}, "", identity=identity)


class BoundTypeIndex:
    """Bound APIBindings of every logical cluster, as resource types."""

    def __init__(self) -> None:
        # cluster -> binding name -> what the Bound binding gives that cluster
        self._bindings: dict[str, dict[str, _Bound]] = {}
        self._accepting: dict[tuple[ExportRef, str, str], frozenset[str]] | None = None
        # (cluster, schema name) -> APIResourceSchema object
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._built: dict[tuple[str, str, str], list[TypeEntry]] = {}
        self._by_cluster: dict[str, list[TypeEntry]] = {}
        self._strategies: dict[ResourceType, CustomResourceStrategy] = {}
        self._storage_types: dict[tuple[str, str], ResourceType] | None = None
        self._listeners: list[Callable[[str], None]] = []
        self._follower = CacheFollower(
            name="bound-type-index", watch_prefix=APIS_PREFIX,
            load_prefixes=[f"{APIS_PREFIX}{SCHEMAS}/", f"{APIS_PREFIX}{BINDINGS}/"],
            apply=self.apply)
        self.revision = 0

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(cluster)`` whenever a cluster's bound types change."""
        self._listeners.append(listener)

    # Reads -------------------------------------------------------------------------------

    def types(self, cluster: str) -> list[TypeEntry]:
        """Every bound type served in one logical cluster."""
        if cluster not in self._bindings:
            return []
        entries = self._by_cluster.get(cluster)
        if entries is None:
            entries = self._by_cluster[cluster] = [
                entry for bound in self._bindings[cluster].values()
                for resource in bound.resources for entry in self.types_of(resource)]
        return entries

    def types_of(self, resource: BoundResource) -> list[TypeEntry]:
        """The served versions of one bound resource (none while its schema is missing)."""
        key = (resource.export_cluster, resource.schema, resource.identity)
        built = self._built.get(key)
        if built is None:
            schema = self._schemas.get((resource.export_cluster, resource.schema))
            if schema is None:
                return []
            try:
                built = types_for_schema(schema, resource.identity)
            except Exception:
                # A schema stored before a check that refuses it existed: leave it unserved
                # rather than fail discovery for every consumer of the export.
                log.exception("cannot serve APIResourceSchema %s of cluster %s",
                              resource.schema, resource.export_cluster)
                built = []
            self._built[key] = built
            for rt, strategy in built:
                self._strategies[rt] = strategy
            self._storage_types = None
        return built

    def schema(self, cluster: str, name: str) -> dict[str, Any] | None:
        return self._schemas.get((cluster, name))

    def strategy(self, rt: ResourceType) -> CustomResourceStrategy | None:
        return self._strategies.get(rt)

    def by_storage(self, group: str, stored_resource: str) -> ResourceType | None:
        """The storage version's type of ``<plural>:<identity>`` objects, if bound anywhere.

        The watch cache asks for every bound object it decodes, so the answer is a lookup in
        a map rebuilt only when the set of built types changes."""
        if self._storage_types is None:
            found: dict[tuple[str, str], ResourceType] = {}
            for rt, strategy in self._strategies.items():
                key = (rt.group, rt.stored_resource)
                if strategy.storage_api_version == rt.api_version:
                    found[key] = rt
                else:
                    found.setdefault(key, rt)
            self._storage_types = found
        return self._storage_types.get((group, stored_resource))

    def clusters_binding(self, export: ExportRef) -> list[str]:
        """The logical clusters with a Bound binding to ``export``."""
        return [cluster for cluster, bindings in self._bindings.items()
                if any(bound.export == export for bound in bindings.values())]

    def accepting_clusters(self, export: ExportRef, group: str, resource: str,
                           ) -> frozenset[str]:
        """The logical clusters whose binding to ``export`` accepted its claim on
        ``group``/``resource``: whose objects of that resource its provider may reach."""
        if self._accepting is None:
            accepting: dict[tuple[ExportRef, str, str], set[str]] = {}
            for cluster, bindings in self._bindings.items():
                for bound in bindings.values():
                    for claim_group, claim_resource in bound.claims:
                        accepting.setdefault((bound.export, claim_group, claim_resource),
                                             set()).add(cluster)
            self._accepting = {key: frozenset(value) for key, value in accepting.items()}
        return self._accepting.get((export, group, resource), frozenset())

    # Following the cache -----------------------------------------------------------------

    def apply(self, cached: CachedObject, *, deleted: bool) -> None:
        parsed = parse_key(cached.key)
        if parsed is None or parsed.group != "apis.kcp.io":
            return
        self.revision = max(self.revision, cached.revision)
        if parsed.resource == BINDINGS:
            self._apply_binding(parsed.cluster, parsed.name, cached, deleted)
        elif parsed.resource == SCHEMAS:
            self._apply_schema(parsed.cluster, parsed.name, cached, deleted)

    def _apply_binding(self, cluster: str, name: str, cached: CachedObject,
                       deleted: bool) -> None:
        record = None if deleted else _bound_of(orjson.loads(cached.raw))
        before = replace_binding(self._bindings, cluster, name, record)
        if before == record:
            return
        self._accepting = None
        if (before.resources if before else ()) != (record.resources if record else ()):
            self._changed(cluster)

    def _apply_schema(self, cluster: str, name: str, cached: CachedObject,
                      deleted: bool) -> None:
        key = (cluster, name)
        if deleted:
            if self._schemas.pop(key, None) is None:
                return
        else:
            schema = orjson.loads(cached.raw)
            if self._schemas.get(key, {}).get("spec") == schema.get("spec"):
                return
            self._schemas[key] = schema
        for built_key in [k for k in self._built if k[:2] == key]:
            for rt, _ in self._built.pop(built_key):
                self._strategies.pop(rt, None)
            self._storage_types = None
        # Which consumers use the schema is a scan of the bindings: schemas change rarely.
        for consumer, bindings in list(self._bindings.items()):
            if any(r.export_cluster == cluster and r.schema == name
                   for bound in bindings.values() for r in bound.resources):
                self._changed(consumer)

    def _changed(self, cluster: str) -> None:
        self._by_cluster.pop(cluster, None)
        for listener in self._listeners:
            listener(cluster)

    async def start(self, cacher: Cacher) -> None:
        await self._follower.start(cacher)

    async def stop(self) -> None:
        await self._follower.stop()
