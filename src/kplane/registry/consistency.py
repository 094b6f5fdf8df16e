"""Consistent reads from the watch cache, with one storage round trip shared by many reads.

A read without a resourceVersion must see every write acknowledged before it arrived, even
writes made through another server on the same etcd. So it asks the backend for its current
revision and waits until the cache has caught up. Asking etcd once per GET would make every
read pay a network round trip; instead concurrent readers share one request.

Readers gather in a batch. A batch's request goes out when the previous one has answered,
and readers keep joining the batch until its request is actually sent: a request sent
after a reader arrived answers a revision at least as new as every write acknowledged
before that reader arrived. Joining a request already on its way could miss such a write,
so a reader never does; at most one request is in flight and one batch is waiting.
"""

from __future__ import annotations

import asyncio

from kplane.storage.backend import Backend


class _Batch:
    """Readers that will share the answer of one revision request."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[int]] = []

    def resolve(self, outcome: int | BaseException) -> None:
        for waiter in self.waiters:
            # A reader whose request was cancelled has a done future; skip it.
            if waiter.done():
                continue
            if isinstance(outcome, asyncio.CancelledError):
                waiter.cancel()
            elif isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)


class RevisionReader:
    """Coalesces concurrent ``current_revision`` calls to one backend."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        # An in-process store (SQLite) knows its revision without I/O; coalescing would only
        # add a task and a loop iteration to every read.
        self._local = bool(getattr(backend, "revision_is_local", False))
        self._in_flight = False
        # The task sending requests; kept so that it is not garbage-collected mid-flight.
        self._sender: asyncio.Future[None] | None = None
        # Readers waiting for a request that has not been sent yet.
        self._gathering: _Batch | None = None

    @property
    def idle(self) -> bool:
        """No request in flight and nobody waiting (for tests and diagnostics)."""
        return not self._in_flight and self._gathering is None

    async def current_revision(self) -> int:
        if self._local:
            return await self._backend.current_revision()
        batch = self._gathering
        if batch is None:
            batch = self._gathering = _Batch()
            if not self._in_flight:
                self._in_flight = True
                self._sender = asyncio.ensure_future(self._send())
        # A future of its own per reader: cancelling one reader must not cancel the others.
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        return await waiter

    async def _send(self) -> None:
        """Send the gathering batch's request; then the next batch's, while one gathers."""
        while (batch := self._gathering) is not None:
            # From here on the request is under way: later readers form the next batch.
            self._gathering = None
            outcome: int | BaseException
            try:
                outcome = await self._backend.current_revision()
            except asyncio.CancelledError as cancelled:
                batch.resolve(cancelled)
                if self._gathering is not None:
                    self._gathering.resolve(asyncio.CancelledError())
                    self._gathering = None
                self._in_flight = False
                raise
            except Exception as error:  # every reader of the batch gets the backend's error
                outcome = error
            batch.resolve(outcome)
        self._in_flight = False
