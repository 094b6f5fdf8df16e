"""CustomResourceDefinitions: accept names, establish, and finalize on deletion.

For a new or changed CRD the controller checks its names against the other CRDs, the
built-in kinds and the bound APIs of the same logical cluster (the first holder keeps a
name), then sets the ``NamesAccepted`` and ``Established`` conditions and
``acceptedNames``, and makes sure ``storedVersions`` holds the storage version (the CRD
strategy records it on every spec write; CRDs stored before that are repaired here). Once
Established, the catalog serves the kind in that cluster only.

Deleting a CRD works as upstream's finalizer controller: while the
``customresourcecleanup.apiextensions.k8s.io`` finalizer holds the CRD, creates of its kind
are refused (:mod:`kplane.registry.crd_lifecycle`), the CRD reports ``Terminating=True``
(``InstanceDeletionInProgress``, or ``InstanceDeletionFailed`` when a delete fails), and
every instance is deleted through normal deletion, so an instance's own finalizers hold it
(and with it the CRD) until they are removed. Instances without finalizers go in one pass
of deletes at the revision listed, without waiting for the cache after each. The finalizer
comes off when none is left; then the CRD goes, and with it the kind and its watches.

When a CRD is gone, any object still stored under its kind in that cluster is deleted
outright: one created by another server that had not yet seen the CRD terminating, or the
objects of a CRD stored without the finalizer. Re-creating the CRD never brings them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.conditions import (
    condition_status,
    find_condition,
    set_condition,
    with_conditions,
)
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.crd_lifecycle import crd_key
from kplane.registry.custom_types import CRD_PREFIX, is_established, storage_version
from kplane.registry.keys import storage_prefix
from kplane.registry.kinds.custom import CLEANUP_FINALIZER
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import Store, Target
from kplane.storage.backend import ConflictError, KeyNotFoundError
from kplane.storage.cacher import CachedObject

log = logging.getLogger(__name__)

MANAGER = "apiextensions-controller"
_RETRY_SECONDS = 1.0

IN_PROGRESS = ("InstanceDeletionInProgress", "CustomResource deletion is in progress")


def claimed_names(spec: dict[str, Any]) -> set[str]:
    names = spec.get("names") or {}
    claimed = {str(names.get("plural", "")), str(names.get("singular", "")),
               str(names.get("kind", "")).lower()}
    claimed |= {str(s) for s in names.get("shortNames") or []}
    return {c for c in claimed if c}


def instance_prefix(cluster: str, group: str, plural: str) -> str:
    """Where the objects of one CRD's kind are stored in one logical cluster."""
    return f"{storage_prefix(group, plural)}{cluster}/"


def _group_and_plural(crd: dict[str, Any]) -> tuple[str, str]:
    spec = crd.get("spec") or {}
    return str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", ""))


def _overlaps_builtin(group: str, plural: str) -> bool:
    """A CRD named like a built-in resource must not take that resource's objects with it
    (upstream's OverlappingBuiltInResources)."""
    return any(rt.stored_group == group and rt.stored_resource == plural
               for rt in builtin.BUILTIN_RESOURCES)


class CustomResourceDefinitionController:
    def __init__(self, *, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._queue = WorkQueue(self.reconcile, retry_after=lambda: _RETRY_SECONDS,
                                what="CustomResourceDefinition")
        self._tasks: list[asyncio.Task[None]] = []
        self._options = WriteOptions(field_manager=MANAGER)

    async def start(self) -> None:
        follow = follow_prefix(self._store, CRD_PREFIX, self._on_change)
        self._tasks = [asyncio.create_task(follow, name="crd-watch"),
                       *self._queue.workers(1, name="crd-worker")]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    def _on_change(self, cached: CachedObject, deleted: bool) -> None:
        # A deletion too: what the CRD leaves behind is swept once it is gone.
        self._queue.add_key(cached.key)

    async def reconcile(self, cluster: str, name: str) -> bool:
        """One step for one CRD; False when it must be looked at again later."""
        target = Target(builtin.CUSTOM_RESOURCE_DEFINITIONS, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            await self._sweep(cluster, name)
            return True
        crd: dict[str, Any] = orjson.loads(cached.raw)
        if crd["metadata"].get("deletionTimestamp"):
            return await self._finalize(target, crd)
        await self._establish(target, crd)
        return True

    # Names and conditions ----------------------------------------------------------------

    async def _establish(self, target: Target, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        conflict = self._name_conflict(target.cluster, target.name, spec)
        status = crd.get("status") or {}
        accepted = conflict is None
        stored = storage_version(spec)
        if (is_established(crd) and accepted and status.get("acceptedNames") == spec.get("names")
                and (not stored or stored in (status.get("storedVersions") or []))):
            return

        def with_status(current: dict[str, Any]) -> dict[str, Any]:
            current_spec = current.get("spec") or {}
            new_status = dict(current.get("status") or {})
            conditions = list(new_status.get("conditions") or [])
            if accepted:
                new_status["acceptedNames"] = current_spec.get("names")
                set_condition(conditions, "NamesAccepted", True, "NoConflicts",
                              "no conflicts found")
                set_condition(conditions, "Established", True, "InitialNamesAccepted",
                              "the initial names have been accepted")
                storage = storage_version(current_spec)
                versions = list(new_status.get("storedVersions") or [])
                if storage and storage not in versions:
                    versions.append(storage)
                new_status["storedVersions"] = versions
            else:
                set_condition(conditions, "NamesAccepted", False, "NameConflict", str(conflict))
                set_condition(conditions, "Established", False, "NotAccepted",
                              "not all names are accepted")
            new_status["conditions"] = conditions
            current["status"] = new_status
            return current

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, with_status, self._options,
                                          subresource="status")

    def _name_conflict(self, cluster: str, name: str, spec: dict[str, Any]) -> str | None:
        group = str(spec.get("group", ""))
        plural = str((spec.get("names") or {}).get("plural", ""))
        for rt in builtin.BUILTIN_RESOURCES:
            if rt.group == group and rt.resource == plural:
                return f'"{plural}" is already in use by a built-in resource'
        for rt, _ in self._catalog.bound.types(cluster):
            if rt.group == group and rt.resource == plural:
                return f'"{plural}.{group}" is already in use by an APIBinding'
        wanted = claimed_names(spec)
        prefix = f"{CRD_PREFIX}{cluster}/"
        for other in self._store.cacher.list(prefix):
            if other.name == name:
                continue
            crd = orjson.loads(other.raw)
            other_spec = crd.get("spec") or {}
            if other_spec.get("group") != group or not is_established(crd):
                continue
            clash = wanted & claimed_names(other_spec)
            if clash:
                return (f"{', '.join(sorted(clash))} already in use by "
                        f'CustomResourceDefinition "{other.name}"')
        return None

    async def _set_terminating(self, target: Target, status: bool, reason: str,
                               message: str) -> None:
        def with_condition(current: dict[str, Any]) -> dict[str, Any]:
            return with_conditions(current, [("Terminating", status, reason, message)])

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, with_condition, self._options,
                                          subresource="status")

    # Deletion ----------------------------------------------------------------------------

    async def _finalize(self, target: Target, crd: dict[str, Any]) -> bool:
        if CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return True
        group, plural = _group_and_plural(crd)
        if not _overlaps_builtin(group, plural):
            conditions = (crd.get("status") or {}).get("conditions")
            if (condition_status(conditions, "Terminating") != "True"
                    or find_condition(conditions, "Terminating").get("reason") != IN_PROGRESS[0]):
                # Written first, as upstream: the cleanup could take a while.
                await self._set_terminating(target, True, *IN_PROGRESS)
            try:
                left = await self._delete_instances(target.cluster, target.name, crd)
            except Exception as exc:
                detail = exc.message if isinstance(exc, StatusError) else str(exc)
                log.warning("deleting the objects of CRD %s in %s failed: %s", target.name,
                            target.cluster, detail)
                await self._set_terminating(target, True, "InstanceDeletionFailed",
                                            f"could not issue all deletes: {detail}")
                return False
            if left:
                # Held by their finalizers: looked at again shortly, as upstream polls.
                return False

        def without_finalizer(current: dict[str, Any]) -> dict[str, Any]:
            meta = current["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or []
                                  if f != CLEANUP_FINALIZER]
            return current

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, without_finalizer, self._options)
        return True

    async def _delete_instances(self, cluster: str, name: str, crd: dict[str, Any]) -> int:
        """Delete every object of the kind; how many are left (held by finalizers)."""
        store = self._store
        group, plural = _group_and_plural(crd)
        # Creates that passed the gate before this server saw the CRD terminating land
        # first; after that, the cache at the backend's current revision has them all.
        await self._catalog.custom.creates.landed(cluster, name)
        await store.cacher.wait_for_revision(await store.backend.current_revision())
        prefix = instance_prefix(cluster, group, plural)
        rt = self._instance_type(cluster, crd)
        last = 0
        for cached in store.cacher.list(prefix):
            meta = orjson.loads(cached.raw).get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            if not meta.get("finalizers"):
                try:
                    kv = await store.backend.delete(cached.key,
                                                    expected_mod_revision=cached.revision)
                except KeyNotFoundError:
                    continue
                except ConflictError:
                    pass  # changed since listed: the Store decides with the current state
                else:
                    last = max(last, kv.mod_revision)
                    continue
            try:
                await store.delete(Target(rt, cluster, cached.namespace, cached.name),
                                   DeleteOptions())
            except StatusError as exc:
                if exc.code != 404:
                    raise
        if last:
            await store.cacher.wait_for_revision(last)
        return store.cacher.count(prefix)

    def _instance_type(self, cluster: str, crd: dict[str, Any]) -> ResourceType:
        group, plural = _group_and_plural(crd)
        served = self._catalog.by_storage(group, plural, cluster)
        if served is not None and served.cluster == cluster:
            return served
        # Not served (never Established, or no longer): deletes only need where it lives.
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        return ResourceType(group=group, version=storage_version(spec) or "v1",
                            resource=plural, kind=str(names.get("kind", "")),
                            namespaced=spec.get("scope") == "Namespaced",
                            supports_strategic_merge=False, cluster=cluster)

    async def _sweep(self, cluster: str, name: str) -> None:
        """Delete what is still stored under a gone CRD's kind (objects created before a
        re-created CRD of the same name existed; that one's own objects are newer)."""
        plural, _, group = name.partition(".")
        if not group or _overlaps_builtin(group, plural):
            return
        store = self._store
        await self._catalog.custom.creates.landed(cluster, name)
        current = await store.backend.get(crd_key(cluster, name))
        newer_than = current.create_revision if current is not None else None
        result = await store.backend.range(instance_prefix(cluster, group, plural))
        swept = 0
        for kv in result.items:
            if newer_than is not None and kv.create_revision > newer_than:
                continue
            with contextlib.suppress(KeyNotFoundError, ConflictError):
                await store.backend.delete(kv.key, expected_mod_revision=kv.mod_revision)
                swept += 1
        if swept:
            log.warning("deleted %d objects left behind by CustomResourceDefinition %s in %s",
                        swept, name, cluster)

