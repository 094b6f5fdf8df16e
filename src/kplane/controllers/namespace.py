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
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.keys import parse_key, resource_prefix
from kplane.registry.kinds.core import NAMESPACE_FINALIZER
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.store import Store, Target

log = logging.getLogger(__name__)

MANAGER = "namespace-controller"
_RECHECK_SECONDS = 2.0


class NamespaceController:
    def __init__(self, *, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch(), name="namespace-watch"),
                       asyncio.create_task(self._work(), name="namespace-worker")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _enqueue(self, cluster: str, name: str) -> None:
        item = (cluster, name)
        if item not in self._queued:
            self._queued.add(item)
            self._queue.put_nowait(item)

    async def _watch(self) -> None:
        prefix = resource_prefix(builtin.NAMESPACES)
        while True:
            cacher = self._store.cacher
            for cached in cacher.list(prefix):
                if b'"deletionTimestamp"' in cached.raw:
                    self._enqueue_key(cached.key)
            watcher = cacher.watch(prefix, after_revision=cacher.revision,
                                   predicate=lambda c: b'"deletionTimestamp"' in c.raw)
            try:
                async for event in watcher:
                    if event.type != "DELETED":
                        self._enqueue_key(event.obj.key)
            finally:
                watcher.close()
            await asyncio.sleep(0.1)

    def _enqueue_key(self, key: str) -> None:
        parsed = parse_key(key)
        if parsed is not None:
            self._enqueue(parsed.cluster, parsed.name)

    async def _work(self) -> None:
        while True:
            cluster, name = await self._queue.get()
            self._queued.discard((cluster, name))
            try:
                done = await self.finalize(cluster, name)
            except Exception:
                log.exception("emptying namespace %s in %s failed; will retry", name, cluster)
                done = False
            if not done:
                asyncio.get_running_loop().call_later(_RECHECK_SECONDS, self._enqueue,
                                                      cluster, name)

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
