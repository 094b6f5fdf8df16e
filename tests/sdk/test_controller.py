"""The SDK's Controller: deduplication, one worker per key at a time, retries with
exponential backoff, ``Result(requeue_after=...)`` and ``Result(requeue=True)``.

These drive the controller through ``enqueue`` with reconcile functions that record what
happens; the controller fed by a real informer on a real server is in test_informer.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kplane.sdk import Controller, ObjectKey, Result

A = ObjectKey("c1", "default", "a")
B = ObjectKey("c2", "", "b")


class Tracker:
    """Counts reconciles per key, the largest number running at once per key and overall,
    and when each one started."""

    def __init__(self) -> None:
        self.calls: dict[ObjectKey, int] = {}
        self.starts: dict[ObjectKey, list[float]] = {}
        self.running: dict[ObjectKey, int] = {}
        self.max_per_key = 0
        self.max_overall = 0

    def enter(self, key: ObjectKey) -> int:
        self.calls[key] = self.calls.get(key, 0) + 1
        self.starts.setdefault(key, []).append(asyncio.get_running_loop().time())
        self.running[key] = self.running.get(key, 0) + 1
        self.max_per_key = max(self.max_per_key, self.running[key])
        self.max_overall = max(self.max_overall, sum(self.running.values()))
        return self.calls[key]

    def leave(self, key: ObjectKey) -> None:
        self.running[key] -= 1

    def gaps(self, key: ObjectKey) -> list[float]:
        times = self.starts[key]
        return [later - earlier for earlier, later in itertools.pairwise(times)]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def controllers() -> AsyncIterator[Callable[..., Awaitable[Controller]]]:
    made: list[Controller] = []

    async def make(reconcile: Callable[[ObjectKey], Awaitable[Result | None]],
                   **kwargs: object) -> Controller:
        controller = Controller(reconcile, name="test", **kwargs)  # type: ignore[arg-type]
        await controller.start()
        made.append(controller)
        return controller

    yield make
    for controller in made:
        await controller.stop()


async def test_a_key_queued_while_processing_runs_once_more_never_concurrently(
        controllers: Callable[..., Awaitable[Controller]]) -> None:
    tracker = Tracker()
    first_started = asyncio.Event()
    release = asyncio.Event()

    async def reconcile(key: ObjectKey) -> None:
        number = tracker.enter(key)
        try:
            if number == 1:
                first_started.set()
                await release.wait()
        finally:
            tracker.leave(key)

    controller = await controllers(reconcile, workers=4)
    controller.enqueue(A)
    await first_started.wait()
    for _ in range(5):
        controller.enqueue(A)
    # Three idle workers, and A is not even in the queue for them: it waits for the first.
    assert len(controller.queue) == 0
    assert controller.queue.processing == {A}
    release.set()
    await until(lambda: tracker.calls.get(A) == 2 and tracker.running[A] == 0)
    await until(lambda: not controller.queue.processing)
    assert tracker.calls[A] == 2
    assert tracker.max_per_key == 1
    assert len(controller.queue) == 0


async def test_different_keys_are_reconciled_in_parallel(
        controllers: Callable[..., Awaitable[Controller]]) -> None:
    tracker = Tracker()
    both_running = asyncio.Event()

    async def reconcile(key: ObjectKey) -> None:
        tracker.enter(key)
        try:
            if sum(tracker.running.values()) == 2:
                both_running.set()
            await asyncio.wait_for(both_running.wait(), 5)
        finally:
            tracker.leave(key)

    controller = await controllers(reconcile, workers=2)
    controller.enqueue(A)
    controller.enqueue(B)
    await asyncio.wait_for(both_running.wait(), 5)
    assert tracker.max_overall == 2


async def test_failures_are_logged_and_retried_with_growing_delays(
        controllers: Callable[..., Awaitable[Controller]],
        caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()

    async def reconcile(key: ObjectKey) -> None:
        if tracker.enter(key) <= 3:
            tracker.leave(key)
            raise RuntimeError("the database is not there yet")
        tracker.leave(key)

    with caplog.at_level(logging.ERROR, logger="kplane.sdk.controller"):
        controller = await controllers(reconcile, workers=2, base_delay=0.05, max_delay=5.0)
        controller.enqueue(A)
        await until(lambda: tracker.calls.get(A) == 4)
    await until(lambda: controller.queue.failures(A) == 0)
    # Each retry waited at least its backoff: 0.05, 0.1, 0.2 seconds (timers may fire a
    # clock tick early, hence the 1% slack).
    gaps = tracker.gaps(A)
    assert len(gaps) == 3
    assert all(g >= floor * 0.99 for g, floor in zip(gaps, (0.05, 0.1, 0.2), strict=True)), gaps
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info and "not there yet" in str(r.exc_info[1]) for r in failures)
    assert str(A) in failures[0].getMessage()


async def test_requeue_after_brings_the_key_back(
        controllers: Callable[..., Awaitable[Controller]]) -> None:
    tracker = Tracker()

    async def reconcile(key: ObjectKey) -> Result | None:
        number = tracker.enter(key)
        tracker.leave(key)
        return Result(requeue_after=0.1) if number < 3 else None

    controller = await controllers(reconcile, workers=1)
    controller.enqueue(A)
    await until(lambda: tracker.calls.get(A) == 3)
    assert all(gap >= 0.099 for gap in tracker.gaps(A))
    await until(lambda: not controller.queue.processing)
    # Done: nothing is waiting to bring it back again.
    assert controller.queue.pending_delayed == 0 and len(controller.queue) == 0


async def test_requeue_backs_off_without_an_error(
        controllers: Callable[..., Awaitable[Controller]],
        caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()

    async def reconcile(key: ObjectKey) -> Result:
        number = tracker.enter(key)
        tracker.leave(key)
        return Result(requeue=number < 3)

    with caplog.at_level(logging.ERROR, logger="kplane.sdk.controller"):
        controller = await controllers(reconcile, base_delay=0.05)
        controller.enqueue(B)
        await until(lambda: tracker.calls.get(B) == 3)
    gaps = tracker.gaps(B)
    assert gaps[0] >= 0.0495 and gaps[1] >= 0.099, gaps
    await until(lambda: controller.queue.failures(B) == 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_event_during_backoff_is_handled_at_once(
        controllers: Callable[..., Awaitable[Controller]]) -> None:
    tracker = Tracker()

    async def reconcile(key: ObjectKey) -> None:
        number = tracker.enter(key)
        tracker.leave(key)
        if number == 1:
            raise RuntimeError("fails once")

    # A backoff far longer than the test: the second pass can only come from the new event.
    controller = await controllers(reconcile, base_delay=60.0, max_delay=60.0)
    controller.enqueue(A)
    await until(lambda: controller.queue.pending_delayed == 1)
    controller.enqueue(A)
    await until(lambda: tracker.calls.get(A) == 2)


async def test_stop_cancels_a_reconcile_in_flight_and_run_stops_when_cancelled() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def reconcile(_key: ObjectKey) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    controller = Controller(reconcile, workers=1, name="runner")
    task = asyncio.create_task(controller.run())
    await until(lambda: controller.running)
    controller.enqueue(A)
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert not controller.running
    assert controller.queue.processing == frozenset()
    with pytest.raises(ValueError):
        Controller(reconcile, workers=0)
