"""Consistent reads from the watch cache, with one storage round trip shared by many reads.

A read without a resourceVersion must see every write acknowledged before it arrived, even
writes made through another server on the same etcd. So it asks the backend for its current
revision and waits until the cache has caught up. Asking etcd once per GET would make every
read pay a network round trip; instead concurrent readers share one request. A reader only
joins a request that starts after it arrived (joining one already in flight could miss a
write acknowledged just before the reader came), so at most two requests are in flight.
"""

from __future__ import annotations

import asyncio

from kplane.storage.backend import Backend


class RevisionReader:
    """Coalesces concurrent ``current_revision`` calls to one backend."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        # An in-process store (SQLite) knows its revision without I/O; coalescing would only
        # add a task and a loop iteration to every read.
        self._local = bool(getattr(backend, "revision_is_local", False))
        self._running: asyncio.Future[int] | None = None
        self._next: asyncio.Future[int] | None = None

    async def current_revision(self) -> int:
        if self._local:
            return await self._backend.current_revision()
        if self._running is None:
            self._running = asyncio.ensure_future(self._fetch())
            return await asyncio.shield(self._running)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._next)

    async def _fetch(self) -> int:
        try:
            return await self._backend.current_revision()
        finally:
            self._running = None
            waiting, self._next = self._next, None
            if waiting is not None:
                self._running = asyncio.ensure_future(self._fetch())
                self._running.add_done_callback(lambda done: _copy_outcome(done, waiting))


def _copy_outcome(source: asyncio.Future[int], target: asyncio.Future[int]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
