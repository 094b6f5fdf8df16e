"""Compaction: forget old revisions on a schedule so history does not grow without end.

Every interval the controller compacts the store to the revision it saw one interval ago,
so watchers and paged lists always have at least one interval of history to resume from
(upstream kube-apiserver compacts etcd the same way, every five minutes).

With several servers on one etcd cluster each runs this loop. That is safe without leader
election: compaction to a revision is idempotent, and the backend records the compacted
revision with compare-and-swap, so it never moves backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kplane.storage.backend import Backend, StorageError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 300.0


class CompactionController:
    def __init__(self, *, backend: Backend,
                 interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self._backend = backend
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="compaction")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        previous = await self._backend.current_revision()
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.compact_to(previous)
                previous = await self._backend.current_revision()
            except StorageError as exc:
                log.warning("compaction skipped: %s", exc)

    async def compact_to(self, revision: int) -> bool:
        """Compact to ``revision`` unless that is already done. True if it compacted."""
        if revision <= await self._backend.compacted_revision():
            return False
        await self._backend.compact(revision)
        log.info("compacted storage to revision %d", revision)
        return True
