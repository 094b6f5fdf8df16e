"""A deduplicating work queue with per-key backoff, as client-go's rate-limited queue.

A key is in the queue at most once. A key added while a worker holds it is not handed to a
second worker: it is marked dirty and queued again when the first worker is done, so the
object is reconciled once more with whatever changed meanwhile. Failures back off per key,
doubling from ``base_delay`` up to ``max_delay``, until ``forget`` says the key succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.1, max_delay: float = 30.0) -> None:
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._order: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._shut_down = False

    def __len__(self) -> int:
        return self._order.qsize()

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    @property
    def pending_delayed(self) -> int:
        """How many keys wait for their delay to pass (``add_after``)."""
        return len(self._timers)

    def add(self, key: K) -> None:
        if self._shut_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._order.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` in ``delay`` seconds; of several pending delays the earliest wins."""
        if self._shut_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def add_rate_limited(self, key: K) -> float:
        """Add ``key`` after its next backoff delay, and return that delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self._base_delay * 2.0 ** failures, self._max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts backing off from the beginning."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        """The next key, now held by the caller until ``done(key)``."""
        key = await self._order.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shut_down:
            self._order.put_nowait(key)

    def shut_down(self) -> None:
        """Stop accepting keys and drop pending delayed ones (workers are cancelled by
        their owner)."""
        self._shut_down = True
        for _due, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)
