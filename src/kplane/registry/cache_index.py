"""Keeping an in-memory index current from the watch cache.

The type indexes (CRDs per cluster, bound APIs per cluster) load what the cache holds under
their prefixes while the server starts, so the catalog is complete before the first
request, then apply every change as it comes. This module owns that loop: the initial load,
following one watch, reloading when the watch cannot be resumed (objects deleted while it
could not see them are then applied as deletions), and stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from kplane.storage.cacher import CachedObject, Cacher

log = logging.getLogger(__name__)

Apply = Callable[..., None]
"""``apply(cached, deleted=bool)``: put one object into the index, or take it out."""

_RELOAD_PAUSE_SECONDS = 0.5
_RESTART_PAUSE_SECONDS = 0.05


class CacheFollower:
    """Feeds ``apply`` the objects under ``load_prefixes``, then the changes under
    ``watch_prefix`` (which covers them)."""

    def __init__(self, *, name: str, watch_prefix: str, load_prefixes: Sequence[str],
                 apply: Apply) -> None:
        self._name = name
        self._watch_prefix = watch_prefix
        self._load_prefixes = tuple(load_prefixes)
        self._apply = apply
        self._task: asyncio.Task[None] | None = None
        # What the index was last given, by key: a reload must take out what is gone.
        self._known: dict[str, CachedObject] = {}

    def load(self, cacher: Cacher) -> None:
        before = self._known
        self._known = {}
        for prefix in self._load_prefixes:
            for cached in cacher.list(prefix):
                self._give(cached, deleted=False)
        for key, gone in before.items():
            if key not in self._known:
                self._apply_safely(gone, deleted=True)

    def _give(self, cached: CachedObject, *, deleted: bool) -> None:
        if deleted:
            self._known.pop(cached.key, None)
        elif cached.key.startswith(self._load_prefixes):
            self._known[cached.key] = cached
        self._apply_safely(cached, deleted=deleted)

    def _apply_safely(self, cached: CachedObject, *, deleted: bool) -> None:
        try:
            self._apply(cached, deleted=deleted)
        except Exception:
            # One object the index cannot take (stored before a check that would refuse
            # it existed) must not stop the index for every workspace, nor the server's
            # start: it keeps what it had for that object and goes on.
            log.exception("%s cannot apply %s; skipping it", self._name, cached.key)

    async def start(self, cacher: Cacher) -> None:
        self.load(cacher)
        self._task = asyncio.create_task(self._follow(cacher), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, cacher: Cacher) -> None:
        after = cacher.revision
        while True:
            try:
                watcher = cacher.watch(self._watch_prefix, after_revision=after)
            except Exception:
                # The history to resume from is gone: start again from what is cached now.
                log.exception("%s cannot resume its watch; reloading", self._name)
                await asyncio.sleep(_RELOAD_PAUSE_SECONDS)
                self.load(cacher)
                after = cacher.revision
                continue
            try:
                async for event in watcher:
                    self._give(event.obj, deleted=event.type == "DELETED")
                    after = event.obj.revision
            finally:
                watcher.close()
            await asyncio.sleep(_RESTART_PAUSE_SECONDS)
