"""The two pieces every in-process controller is built from.

:func:`follow_prefix` hands every object under a key prefix to a callback, then every
change, from the watch cache, and starts over when the watch ends (the cache relisted, or
dropped a slow watcher). :class:`WorkQueue` holds object keys without duplicates and lets a
few workers reconcile them; a key whose reconcile is not finished, or fails, comes back
after a delay. One follower and one queue serve all logical clusters, so an idle workspace
costs a controller nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from kplane.registry.keys import parse_key
from kplane.registry.store import Store
from kplane.storage.cacher import CachedObject, Predicate

log = logging.getLogger(__name__)

Handler = Callable[[CachedObject, bool], None]
"""Called with an object and whether this event deleted it."""

_RESTART_PAUSE_SECONDS = 0.05
_UNAVAILABLE_PAUSE_SECONDS = 1.0


async def follow_prefix(store: Store, prefix: str, handle: Handler, *,
                        predicate: Predicate | None = None) -> None:
    """Run forever: the current objects under ``prefix``, then each change."""
    while True:
        cacher = store.cacher
        try:
            for cached in cacher.list(prefix):
                if predicate is None or predicate(cached):
                    handle(cached, False)
            watcher = cacher.watch(prefix, after_revision=cacher.revision, predicate=predicate)
        except Exception:
            log.exception("cannot watch %s yet; retrying", prefix)
            await asyncio.sleep(_UNAVAILABLE_PAUSE_SECONDS)
            continue
        try:
            async for event in watcher:
                handle(event.obj, event.type == "DELETED")
        finally:
            watcher.close()
        await asyncio.sleep(_RESTART_PAUSE_SECONDS)


Reconcile = Callable[[str, str], Awaitable[bool]]
"""Move one object (logical cluster, name) forward; True when nothing is left to do."""


class WorkQueue:
    """(cluster, name) keys waiting for a reconcile, each at most once."""

    def __init__(self, reconcile: Reconcile, *, retry_after: Callable[[], float],
                 what: str) -> None:
        self._reconcile = reconcile
        # A callable, so tests can shorten a controller's module-level delay.
        self._retry_after = retry_after
        self._what = what
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()

    def add(self, cluster: str, name: str) -> None:
        item = (cluster, name)
        if item not in self._queued:
            self._queued.add(item)
            self._queue.put_nowait(item)

    def add_key(self, key: str) -> None:
        parsed = parse_key(key)
        if parsed is not None:
            self.add(parsed.cluster, parsed.name)

    def workers(self, count: int, *, name: str) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._work(), name=f"{name}-{i}") for i in range(count)]

    async def _work(self) -> None:
        while True:
            cluster, name = await self._queue.get()
            self._queued.discard((cluster, name))
            try:
                done = await self._reconcile(cluster, name)
            except Exception:
                log.exception("reconciling %s %s in %s failed; will retry", self._what, name,
                              cluster)
                done = False
            if not done:
                asyncio.get_running_loop().call_later(self._retry_after(), self.add,
                                                      cluster, name)


async def stop_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel a controller's tasks and wait until they are gone."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
