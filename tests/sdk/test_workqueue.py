"""The SDK's work queue: one entry per key, a held key never handed out twice, per-key
backoff and delayed adds."""

from __future__ import annotations

import asyncio

import pytest

from kplane.sdk import WorkQueue


async def test_a_key_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_added_while_held_comes_back_only_when_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    held = await queue.get()
    assert queue.processing == {"a"}
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # not handed to a second worker
    queue.done(held)
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0 and queue.processing == frozenset()


async def test_backoff_doubles_per_key_up_to_the_cap_and_forget_resets_it() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.1, max_delay=1.0)
    delays = [queue.add_rate_limited("a") for _ in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert queue.failures("a") == 6
    assert queue.add_rate_limited("b") == pytest.approx(0.1)
    queue.forget("a")
    assert queue.failures("a") == 0
    assert queue.add_rate_limited("a") == pytest.approx(0.1)
    queue.shut_down()


async def test_of_two_delayed_adds_the_earlier_wins() -> None:
    queue: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    queue.add_after("a", 60)
    queue.add_after("a", 0.05)
    assert await asyncio.wait_for(queue.get(), 5) == "a"
    assert loop.time() - start >= 0.05
    queue.done("a")
    queue.add_after("b", 0.05)
    queue.add_after("b", 60)  # later: ignored, the 0.05 s one stays
    assert queue.pending_delayed == 1
    assert await asyncio.wait_for(queue.get(), 5) == "b"
    assert queue.pending_delayed == 0


async def test_shutting_down_drops_delayed_keys_and_refuses_new_ones() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.01)
    queue.shut_down()
    assert queue.pending_delayed == 0
    queue.add("b")
    assert len(queue) == 0
