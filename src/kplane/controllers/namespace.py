"""Namespace deletion: empty a terminating namespace, then let it go.

Deleting a namespace only marks it (``deletionTimestamp``, phase ``Terminating``) while its
``spec.finalizers`` still hold ``kubernetes``. This controller follows namespaces of every
logical cluster through one watch on the cache, and for each terminating one deletes every
namespaced object in it, waits until they are gone (objects with finalizers of their own
linger until those are removed), and then removes the ``kubernetes`` finalizer, which lets
the Store delete the namespace.

One watch and one work queue serve all logical clusters; an idle workspace costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.keys import resource_prefix
from kplane.registry.kinds.core import NAMESPACE_FINALIZER
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.store import Store, Target
from kplane.storage.cacher import CachedObject

log = logging.getLogger(__name__)

MANAGER = "namespace-controller"
_RECHECK_SECONDS = 2.0


def _terminating(cached: CachedObject) -> bool:
    return b'"deletionTimestamp"' in cached.raw


class NamespaceController:
    def __init__(self, *, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._queue = WorkQueue(self.finalize, retry_after=lambda: _RECHECK_SECONDS,
                                what="namespace")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        follow = follow_prefix(self._store, resource_prefix(builtin.NAMESPACES), self._on_change,
                               predicate=_terminating)
        self._tasks = [asyncio.create_task(follow, name="namespace-watch"),
                       *self._queue.workers(1, name="namespace-worker")]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    def _on_change(self, cached: CachedObject, deleted: bool) -> None:
        if not deleted:
            self._queue.add_key(cached.key)

    async def _delete_content(self, cluster: str, name: str) -> int:
        """Delete every object in the namespace; how many are still there afterwards."""
        collections = [Target(rt, cluster, name, "") for rt in self._catalog.resources(cluster)
                       if rt.namespaced and rt.storage_group is None and "list" in rt.verbs]
        for collection in collections:
            result = await self._store.list(collection, ListOptions(resource_version="0"))
            for item in result.items:
                if b'"deletionTimestamp"' in item.raw:
                    continue
                with contextlib.suppress(StatusError):
                    await self._store.delete(
                        Target(collection.rt, cluster, name, item.name), DeleteOptions())
        remaining = 0
        for collection in collections:
            result = await self._store.list(collection, ListOptions(resource_version="0"))
            remaining += len(result.items)
        return remaining

    async def finalize(self, cluster: str, name: str) -> bool:
        """Delete what the namespace holds; finalize it once empty. True when finished."""
        target = Target(builtin.NAMESPACES, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            return True
        namespace: dict[str, Any] = orjson.loads(cached.raw)
        if not namespace["metadata"].get("deletionTimestamp"):
            return True
        if await self._delete_content(cluster, name):
            return False
        finalizers = list((namespace.get("spec") or {}).get("finalizers") or [])
        if NAMESPACE_FINALIZER not in finalizers:
            return True

        def without_finalizer(current: dict[str, Any]) -> dict[str, Any]:
            spec = current.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or []
                                  if f != NAMESPACE_FINALIZER]
            return current

        try:
            await self._store.update_with(target, without_finalizer,
                                          WriteOptions(field_manager=MANAGER),
                                          subresource="finalize")
        except StatusError as exc:
            if exc.code != 404:
                raise
        return True
