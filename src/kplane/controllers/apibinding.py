"""APIBindings: from a reference to an export, to its kinds served in the consumer workspace.

For each binding the controller finds the APIExport it names (by workspace path and name),
waits for the export's identity, reads the APIResourceSchemas the export lists, and checks
every bound resource against what the consumer workspace already serves: built-in kinds,
its CRDs and its other bindings. The first holder of a name keeps it, so a colliding
binding is left in phase ``Binding`` with ``BindingUpToDate`` False (reason
``NamingConflicts``). Otherwise it writes ``status.boundResources`` and phase ``Bound``;
:class:`~kplane.registry.bound_types.BoundTypeIndex` reads that status and the kinds appear in
the workspace's discovery, OpenAPI and routing.

Permission claims the consumer accepted (and the export makes) are recorded in
``status.appliedPermissionClaims``; the virtual workspace reads them to decide which of the
consumer's objects the provider may reach.

Deleting a binding first deletes the bound objects of that workspace, finalizers and all (the
provider's controller may still need to clean up through its virtual workspace), then lets
the binding go. One worker reconciles bindings, so two bindings racing for a name cannot
both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.conditions import with_conditions
from kplane.controllers.crd import claimed_names
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.bound_types import BoundResource, bound_resources_of
from kplane.registry.catalog import Catalog
from kplane.registry.custom_types import CRD_PREFIX, is_established, storage_version
from kplane.registry.keys import resource_prefix
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.store import Store, Target
from kplane.storage.cacher import CachedObject
from kplane.tenancy.resolver import ClusterResolver

log = logging.getLogger(__name__)

MANAGER = "apibinding-controller"
FINALIZER = "apis.kcp.io/apibinding-finalizer"
BINDING, BOUND = "Binding", "Bound"
_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ExportedResource:
    """One resource an export offers, with the schema that defines it."""

    group: str
    resource: str
    schema_name: str
    schema: dict[str, Any]


class BindingNotReady(Exception):
    """Why a binding cannot be bound yet: (condition reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def claim_key(claim: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(claim.get("group") or ""), str(claim.get("resource") or ""),
            str(claim.get("identityHash") or ""))


def accepted_claims(binding: Mapping[str, Any], export: Mapping[str, Any],
                    ) -> list[dict[str, Any]]:
    """The export's claims that the binding accepted, in the export's words."""
    accepted = {claim_key(c) for c in (binding.get("spec") or {}).get("permissionClaims") or []
                if isinstance(c, Mapping) and c.get("state") == "Accepted"}
    return [dict(c) for c in (export.get("spec") or {}).get("permissionClaims") or []
            if isinstance(c, Mapping) and claim_key(c) in accepted]


class APIBindingController:
    def __init__(self, *, store: Store, catalog: Catalog, resolver: ClusterResolver) -> None:
        self._store = store
        self._catalog = catalog
        self._resolver = resolver
        self._queue = WorkQueue(self.reconcile, retry_after=lambda: _RETRY_SECONDS,
                                what="APIBinding")
        self._tasks: list[asyncio.Task[None]] = []
        self._options = WriteOptions(field_manager=MANAGER)
        self._prefix = resource_prefix(builtin.API_BINDINGS)
        self._by_export_name: dict[str, set[str]] = {}
        self._export_name_of: dict[str, str] = {}

    async def start(self) -> None:
        bindings = follow_prefix(self._store, self._prefix, self._on_binding)
        exports = follow_prefix(self._store, resource_prefix(builtin.API_EXPORTS),
                                self._on_export)
        self._tasks = [asyncio.create_task(bindings, name="apibinding-watch"),
                       asyncio.create_task(exports, name="apibinding-export-watch"),
                       *self._queue.workers(1, name="apibinding-worker")]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    def _on_binding(self, cached: CachedObject, deleted: bool) -> None:
        # Which export name each binding refers to, so that an export's change wakes only
        # the bindings that may refer to it (by name: the path is resolved when reconciling).
        previous = self._export_name_of.pop(cached.key, None)
        if previous is not None:
            keys = self._by_export_name[previous]
            keys.discard(cached.key)
            if not keys:
                del self._by_export_name[previous]
        if deleted:
            return
        binding = orjson.loads(cached.raw)
        reference = ((binding.get("spec") or {}).get("reference") or {}).get("export") or {}
        name = str(reference.get("name") or "")
        self._export_name_of[cached.key] = name
        self._by_export_name.setdefault(name, set()).add(cached.key)
        self._queue.add_key(cached.key)

    def _on_export(self, cached: CachedObject, deleted: bool) -> None:
        # A changed export (new resources, claims, identity) may change its bindings.
        for key in self._by_export_name.get(cached.name, ()):
            self._queue.add_key(key)

    async def reconcile(self, cluster: str, name: str) -> bool:
        target = Target(builtin.API_BINDINGS, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            return True
        binding = orjson.loads(cached.raw)
        meta = binding["metadata"]
        if meta.get("deletionTimestamp"):
            return await self._delete(target, binding)
        if FINALIZER not in (meta.get("finalizers") or []):
            await self._store.update_with(target, _with_finalizer, self._options)
        # A binding that was Bound stays Bound with what it had while something is wrong:
        # the consumer's objects must not vanish because the export changed.
        phase = BOUND if bound_resources_of(binding) else BINDING
        try:
            export_cluster, export = self._export_of(cluster, binding)
            resources = self._exported_resources(export_cluster, export)
        except BindingNotReady as not_ready:
            await self._write_status(target, _not_ready_status(phase, not_ready))
            return False
        identity = str((export.get("status") or {}).get("identityHash") or "")
        conflict = self._naming_conflict(cluster, name, binding, resources, identity)
        if conflict:
            await self._write_status(target, _conflict_status(phase, conflict))
            return False
        await self._write_status(target, _bound_status(
            export_cluster, resources, identity, accepted_claims(binding, export),
            (export.get("spec") or {}).get("permissionClaims") or []))
        return True

    # Finding what to bind ----------------------------------------------------------------

    def _export_of(self, cluster: str, binding: Mapping[str, Any],
                   ) -> tuple[str, dict[str, Any]]:
        reference = ((binding.get("spec") or {}).get("reference") or {}).get("export") or {}
        path = str(reference.get("path") or "")
        export_name = str(reference.get("name") or "")
        export_cluster = self._resolver.resolve(path) if path else cluster
        where = f"{path or self._resolver.path_of(cluster) or cluster}:{export_name}"
        if export_cluster is None:
            raise BindingNotReady("APIExportNotFound", f'workspace "{path}" not found')
        cached = self._store.get_cached(Target(builtin.API_EXPORTS, export_cluster, "",
                                               export_name))
        if cached is None:
            raise BindingNotReady("APIExportNotFound", f'APIExport "{where}" not found')
        export: dict[str, Any] = orjson.loads(cached.raw)
        if not (export.get("status") or {}).get("identityHash"):
            raise BindingNotReady("IdentityNotReady",
                                  f'APIExport "{where}" has no identity yet')
        return export_cluster, export

    def _exported_resources(self, export_cluster: str, export: Mapping[str, Any],
                            ) -> list[ExportedResource]:
        found = []
        for entry in (export.get("spec") or {}).get("resources") or []:
            if not isinstance(entry, Mapping):
                continue
            schema_name = str(entry.get("schema") or "")
            schema = self._catalog.bound.schema(export_cluster, schema_name)
            if schema is None:
                raise BindingNotReady(
                    "APIResourceSchemaNotFound",
                    f'APIResourceSchema "{schema_name}" of the export not found')
            spec = schema.get("spec") or {}
            found.append(ExportedResource(
                group=str(spec.get("group") or ""),
                resource=str((spec.get("names") or {}).get("plural") or ""),
                schema_name=schema_name, schema=schema))
        return found

    def _naming_conflict(self, cluster: str, name: str, binding: Mapping[str, Any],
                         resources: list[ExportedResource], identity: str) -> str:
        """Why one of ``resources`` cannot be bound in ``cluster`` ('' when all can)."""
        already_mine = {(r.group, r.resource) for r in bound_resources_of(binding)
                        if r.identity == identity}
        for resource in resources:
            wanted = (resource.group, resource.resource)
            if wanted in already_mine:
                continue
            clash = (self._builtin_clash(resource) or self._crd_clash(cluster, resource)
                     or self._binding_clash(cluster, name, resource))
            if clash:
                return clash
        return ""

    @staticmethod
    def _builtin_clash(resource: ExportedResource) -> str:
        for rt in builtin.BUILTIN_RESOURCES:
            if rt.group == resource.group and rt.resource == resource.resource:
                return (f'"{resource.resource}.{resource.group}" is a built-in resource of '
                        "this workspace")
        return ""

    def _crd_clash(self, cluster: str, resource: ExportedResource) -> str:
        wanted = claimed_names(resource.schema.get("spec") or {})
        for other in self._store.cacher.list(f"{CRD_PREFIX}{cluster}/"):
            crd = orjson.loads(other.raw)
            spec = crd.get("spec") or {}
            if spec.get("group") != resource.group or not is_established(crd):
                continue
            clash = wanted & claimed_names(spec)
            if clash:
                return (f"{', '.join(sorted(clash))} already in use by "
                        f'CustomResourceDefinition "{other.name}"')
        return ""

    def _binding_clash(self, cluster: str, name: str, resource: ExportedResource) -> str:
        for other in self._store.cacher.list(f"{self._prefix}{cluster}/"):
            if other.name == name:
                continue
            for bound in bound_resources_of(orjson.loads(other.raw)):
                if (bound.group, bound.resource) == (resource.group, resource.resource):
                    return (f'"{resource.resource}.{resource.group}" is already bound by '
                            f'APIBinding "{other.name}"')
        return ""

    # Writing status ----------------------------------------------------------------------

    async def _write_status(self, target: Target, update: dict[str, Any]) -> None:
        """Merge ``update`` (its ``_conditions`` as tuples) into the status; no write when
        nothing changes."""
        conditions_update = update.pop("_conditions")

        def with_status(current: dict[str, Any]) -> dict[str, Any]:
            return with_conditions(current, conditions_update, **update)

        cached = self._store.get_cached(target)
        if cached is None:
            return
        current = orjson.loads(cached.raw)
        if with_status(dict(current)).get("status") == current.get("status"):
            return
        with contextlib.suppress(StatusError):
            await self._store.update_with(target, with_status, self._options,
                                          subresource="status")

    # Deletion ----------------------------------------------------------------------------

    async def _delete(self, target: Target, binding: Mapping[str, Any]) -> bool:
        """Delete the bound objects of this workspace; True once the binding is let go."""
        remaining = 0
        for resource in bound_resources_of(binding):
            remaining += await self._delete_objects(target.cluster, resource)
        if remaining:
            return False
        if FINALIZER in (binding["metadata"].get("finalizers") or []):
            with contextlib.suppress(StatusError):
                await self._store.update_with(target, _without_finalizer, self._options)
        return True

    async def _delete_objects(self, cluster: str, resource: BoundResource) -> int:
        types = self._catalog.bound.types_of(resource)
        if not types:
            return 0
        rt = types[0][0]
        remaining = 0
        for cached in self._store.cacher.list(f"{resource_prefix(rt)}{cluster}/"):
            remaining += 1
            if orjson.loads(cached.raw)["metadata"].get("deletionTimestamp"):
                continue
            with contextlib.suppress(StatusError):
                await self._store.delete(Target(rt, cluster, cached.namespace, cached.name),
                                         DeleteOptions())
        return remaining


def _with_finalizer(current: dict[str, Any]) -> dict[str, Any]:
    finalizers = list(current["metadata"].get("finalizers") or [])
    if FINALIZER not in finalizers:
        finalizers.append(FINALIZER)
    current["metadata"]["finalizers"] = finalizers
    return current


def _without_finalizer(current: dict[str, Any]) -> dict[str, Any]:
    current["metadata"]["finalizers"] = [
        f for f in current["metadata"].get("finalizers") or [] if f != FINALIZER]
    return current


def _not_ready_status(phase: str, not_ready: BindingNotReady) -> dict[str, Any]:
    return {"phase": phase, "_conditions": [
        ("APIExportValid", False, not_ready.reason, not_ready.message),
        ("Ready", False, not_ready.reason, not_ready.message)]}


def _conflict_status(phase: str, conflict: str) -> dict[str, Any]:
    return {"phase": phase, "_conditions": [
        ("APIExportValid", True, "", ""),
        ("BindingUpToDate", False, "NamingConflicts", conflict),
        ("Ready", False, "NamingConflicts", conflict)]}


def _bound_status(export_cluster: str, resources: list[ExportedResource], identity: str,
                  applied: list[dict[str, Any]], exported_claims: list[Any],
                  ) -> dict[str, Any]:
    bound = []
    for resource in resources:
        spec = resource.schema.get("spec") or {}
        bound.append({
            "group": resource.group, "resource": resource.resource,
            "schema": {"name": resource.schema_name,
                       "UID": str((resource.schema.get("metadata") or {}).get("uid") or ""),
                       "identityHash": identity},
            "storageVersions": [storage_version(spec)],
        })
    return {
        "phase": BOUND, "apiExportClusterName": export_cluster, "boundResources": bound,
        "exportPermissionClaims": exported_claims, "appliedPermissionClaims": applied,
        "_conditions": [
            ("APIExportValid", True, "", ""),
            ("InitialBindingCompleted", True, "", ""),
            ("BindingUpToDate", True, "", ""),
            ("PermissionClaimsApplied", True, "", ""),
            ("Ready", True, "", ""),
        ],
    }
