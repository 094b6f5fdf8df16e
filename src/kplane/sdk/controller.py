"""The reconcile loop: informer events become keys, a few workers reconcile them.

Every event of every informer enqueues ``ObjectKey.of(obj)``; the queue (``WorkQueue``)
holds each key at most once and never hands one key to two workers at a time. The reconcile
function gets the key, not the event: it reads the current state (usually from an
informer's copy) and moves the world towards it, so a burst of events costs one reconcile.
An exception is logged and the key retried after a per-key exponential backoff
(0.1 s .. 30 s by default); ``Result(requeue_after=s)`` asks for another pass in ``s``
seconds, e.g. to poll something outside the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kplane.sdk.informer import Informer
from kplane.sdk.resource import ObjectKey
from kplane.sdk.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Result:
    """What a successful reconcile asks for next: ``requeue_after`` seconds until another
    pass (None: only when something changes); ``requeue``: another pass after the key's
    backoff delay, without logging an error."""

    requeue_after: float | None = None
    requeue: bool = False


Reconcile = Callable[[ObjectKey], Awaitable[Result | None]]


class Controller:
    def __init__(self, reconcile: Reconcile, informers: Iterable[Informer] = (),
                 workers: int = 4, name: str = "controller", *,
                 base_delay: float = 0.1, max_delay: float = 30.0) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self._reconcile = reconcile
        self._informers = list(informers)
        self._workers = workers
        self._delays = (base_delay, max_delay)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(base_delay=base_delay, max_delay=max_delay)
        self._tasks: list[asyncio.Task[None]] = []
        self._started_informers: list[Informer] = []
        self._log = log.getChild(name)
        for informer in self._informers:
            informer.add_handler(self._on_event)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def _on_event(self, _event_type: str, obj: dict[str, Any]) -> None:
        self.enqueue(ObjectKey.of(obj))

    def enqueue(self, key: ObjectKey) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: ObjectKey, delay: float) -> None:
        self.queue.add_after(key, delay)

    async def start(self) -> None:
        """Start the informers not yet running and the workers; return at once."""
        if self._tasks:
            return
        if self.queue.is_shut_down:
            base_delay, max_delay = self._delays
            self.queue = WorkQueue(base_delay=base_delay, max_delay=max_delay)
        for informer in self._informers:
            if not informer.running:
                await informer.start()
                self._started_informers.append(informer)
            # Objects an informer saw before this controller listened are work too.
            for obj in informer.list():
                self.enqueue(ObjectKey.of(obj))
        self._tasks = [asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}")
                       for i in range(self._workers)]
        self._log.info("started %d workers", self._workers)

    async def stop(self) -> None:
        """Stop the workers (cancelling reconciles in flight) and the informers it started."""
        tasks, self._tasks = self._tasks, []
        self.queue.shut_down()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        started, self._started_informers = self._started_informers, []
        for informer in started:
            await informer.stop()

    async def run(self) -> None:
        """Run until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: ObjectKey) -> None:
        try:
            result = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = self.queue.add_rate_limited(key)
            self._log.exception("reconciling %s failed (attempt %d); retrying in %.1fs",
                                key, self.queue.failures(key), delay)
            return
        if result is not None and result.requeue:
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if result is not None and result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
