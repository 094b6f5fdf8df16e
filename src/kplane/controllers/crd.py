"""CustomResourceDefinitions: accept names, establish, and clean up on deletion.

For a new or changed CRD the controller checks its names against the other CRDs, the
built-in kinds and the bound APIs of the same logical cluster (the first holder keeps a
name), then sets the ``NamesAccepted`` and ``Established`` conditions, ``acceptedNames``
and ``storedVersions``. Once Established, the catalog serves the kind in that cluster only.
Deleting a CRD (held by the ``customresourcecleanup.apiextensions.k8s.io`` finalizer)
deletes every object of the kind in that cluster first, then lets the CRD go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.conditions import now
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.custom_types import CRD_PREFIX, is_established, storage_version
from kplane.registry.kinds.custom import CLEANUP_FINALIZER
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.storage.backend import KeyNotFoundError
from kplane.storage.cacher import CachedObject

log = logging.getLogger(__name__)

MANAGER = "apiextensions-controller"
_RETRY_SECONDS = 1.0


def _condition(kind: str, status: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if status else "False", "reason": reason,
            "message": message, "lastTransitionTime": now()}


def claimed_names(spec: dict[str, Any]) -> set[str]:
    names = spec.get("names") or {}
    claimed = {str(names.get("plural", "")), str(names.get("singular", "")),
               str(names.get("kind", "")).lower()}
    claimed |= {str(s) for s in names.get("shortNames") or []}
    return {c for c in claimed if c}


class CustomResourceDefinitionController:
    def __init__(self, *, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._queue = WorkQueue(self._reconcile_once, retry_after=lambda: _RETRY_SECONDS,
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
        if not deleted:
            self._queue.add_key(cached.key)

    async def _reconcile_once(self, cluster: str, name: str) -> bool:
        await self.reconcile(cluster, name)
        return True

    async def reconcile(self, cluster: str, name: str) -> None:
        target = Target(builtin.CUSTOM_RESOURCE_DEFINITIONS, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            return
        crd: dict[str, Any] = orjson.loads(cached.raw)
        if crd["metadata"].get("deletionTimestamp"):
            await self._clean_up(target, crd)
            return
        spec = crd.get("spec") or {}
        conflict = self._name_conflict(cluster, name, spec)
        status = crd.get("status") or {}
        accepted = conflict is None
        if is_established(crd) and accepted and status.get("acceptedNames") == spec.get("names"):
            return

        def with_status(current: dict[str, Any]) -> dict[str, Any]:
            current_spec = current.get("spec") or {}
            new_status = dict(current.get("status") or {})
            if accepted:
                new_status["acceptedNames"] = current_spec.get("names")
                new_status["conditions"] = [
                    _condition("NamesAccepted", True, "NoConflicts", "no conflicts found"),
                    _condition("Established", True, "InitialNamesAccepted",
                               "the initial names have been accepted"),
                ]
                stored = storage_version(current_spec)
                versions = list(new_status.get("storedVersions") or [])
                if stored and stored not in versions:
                    versions.append(stored)
                new_status["storedVersions"] = versions
            else:
                new_status["conditions"] = [
                    _condition("NamesAccepted", False, "NameConflict", str(conflict)),
                    _condition("Established", False, "NotAccepted", "not all names are accepted"),
                ]
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

    async def _clean_up(self, target: Target, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        prefix = (f"/registry/{spec.get('group', '')}/"
                  f"{(spec.get('names') or {}).get('plural', '')}/{target.cluster}/")
        for cached in self._store.cacher.list(prefix):
            with contextlib.suppress(KeyNotFoundError):
                await self._store.backend.delete(cached.key)

        def without_finalizer(current: dict[str, Any]) -> dict[str, Any]:
            meta = current["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or []
                                  if f != CLEANUP_FINALIZER]
            return current

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, without_finalizer, self._options)
