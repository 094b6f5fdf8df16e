"""The compaction controller: each tick compacts to the revision seen one tick earlier."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from typing import cast

import pytest

from kplane.controllers.compaction import CompactionController
from kplane.storage.backend import Backend, UnavailableError
from kplane.storage.sqlite import SQLiteBackend

TICK = 0.01


class ScriptedBackend:
    """Revisions advance by 10 at every look; compactions are recorded (or fail once)."""

    def __init__(self, *, failures: int = 0) -> None:
        self.revision = 0
        self.compacted = 0
        self.compactions: list[int] = []
        self.failures = failures

    async def current_revision(self) -> int:
        self.revision += 10
        return self.revision

    async def compacted_revision(self) -> int:
        return self.compacted

    async def compact(self, revision: int) -> None:
        if self.failures:
            self.failures -= 1
            raise UnavailableError("etcd is down")
        self.compactions.append(revision)
        self.compacted = max(self.compacted, revision)


async def run_until(controller: CompactionController, backend: ScriptedBackend,
                    compactions: int) -> None:
    await controller.start()
    try:
        async with asyncio.timeout(5):
            while len(backend.compactions) < compactions:
                await asyncio.sleep(TICK)
    finally:
        await controller.stop()


async def test_each_tick_compacts_to_the_previous_ticks_revision() -> None:
    backend = ScriptedBackend()
    controller = CompactionController(backend=cast(Backend, backend), interval_seconds=TICK)
    await run_until(controller, backend, 3)
    # Revision 10 was current at start, 20 after the first compaction, and so on.
    assert backend.compactions[:3] == [10, 20, 30]


async def test_nothing_is_compacted_before_the_first_tick() -> None:
    backend = ScriptedBackend()
    controller = CompactionController(backend=cast(Backend, backend), interval_seconds=60)
    await controller.start()
    await asyncio.sleep(TICK)
    await controller.stop()
    assert backend.compactions == []


async def test_compact_to_is_idempotent() -> None:
    backend = ScriptedBackend()
    controller = CompactionController(backend=cast(Backend, backend))
    assert await controller.compact_to(10) is True
    assert await controller.compact_to(10) is False
    assert await controller.compact_to(5) is False
    assert backend.compactions == [10]


async def test_a_storage_error_is_logged_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    backend = ScriptedBackend(failures=1)
    controller = CompactionController(backend=cast(Backend, backend), interval_seconds=TICK)
    with caplog.at_level(logging.WARNING, logger="kplane.controllers.compaction"):
        await run_until(controller, backend, 1)
    assert "compaction skipped: etcd is down" in caplog.messages
    # The failed tick is retried with the same revision.
    assert backend.compactions[0] == 10


async def test_stop_without_start_is_harmless() -> None:
    await CompactionController(backend=cast(Backend, ScriptedBackend())).stop()


async def test_compacts_a_real_backend(tmp_path: pathlib.Path) -> None:
    backend = SQLiteBackend(tmp_path / "db.sqlite")
    await backend.start()
    try:
        first = await backend.create("/a", b"1")
        await backend.update("/a", b"2", expected_mod_revision=first.mod_revision)
        revision = await backend.current_revision()
        controller = CompactionController(backend=backend)
        assert await controller.compact_to(revision) is True
        assert await backend.compacted_revision() == revision
        assert await controller.compact_to(revision) is False
        assert (await backend.get("/a")) is not None
    finally:
        await backend.close()
