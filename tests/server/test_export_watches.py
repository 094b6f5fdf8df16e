"""ExportWatches: virtual-workspace watches end when their export or consumer stops serving
them, a grace after the change, and only those; EndableWatch reads as a disconnect once
ended."""

from __future__ import annotations

import asyncio
import gc
import pathlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from kplane.registry.bound_types import ExportRef
from kplane.registry.resources import ResourceType
from kplane.server.export_watches import EndableWatch, ExportWatches
from kplane.server.types import Message
from kplane.storage.cacher import Cacher
from kplane.storage.sqlite import SQLiteBackend
from tests.storage.test_cacher import body, decode

GRACE = 0.05
EXPORT = ExportRef("provider", "tools")
OTHER_EXPORT = ExportRef("provider", "others")
GADGETS = ResourceType(group="tools.example.io", version="v1", resource="gadgets",
                       kind="Gadget", namespaced=False)
GIZMOS = ResourceType(group="tools.example.io", version="v1", resource="gizmos",
                      kind="Gizmo", namespaced=False)


@dataclass
class Feed:
    """A real SQLite backend and its watch cache: where APIExports and APIBindings change."""

    backend: SQLiteBackend
    cacher: Cacher

    async def change(self, key: str) -> None:
        created = await self.backend.create(key, body(key.rsplit("/", 1)[-1]))
        await self.cacher.wait_for_revision(created.mod_revision)


@pytest.fixture
async def feed(tmp_path: pathlib.Path) -> AsyncIterator[Feed]:
    backend = SQLiteBackend(tmp_path / "kplane.db")
    await backend.start()
    cacher = Cacher(backend, decode)
    await cacher.start()
    try:
        yield Feed(backend, cacher)
    finally:
        await cacher.stop()
        await backend.close()


class Serving:
    """What the virtual workspace would still let in: a set the test edits."""

    def __init__(self) -> None:
        self.exported: set[tuple[ExportRef, ResourceType]] = set()
        self.reached: set[tuple[ExportRef, str]] = set()
        self.asked: list[tuple[ExportRef, ResourceType, str | None]] = []

    def __call__(self, export: ExportRef, rt: ResourceType, consumer: str | None) -> bool:
        self.asked.append((export, rt, consumer))
        return (export, rt) in self.exported and (
            consumer is None or (export, consumer) in self.reached)


async def never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_an_ended_watch_reads_as_a_disconnect() -> None:
    watch = EndableWatch(EXPORT, GADGETS, None, never)
    pending = asyncio.ensure_future(watch.receive())
    await asyncio.sleep(0)
    assert not pending.done()
    watch.end()
    assert await asyncio.wait_for(pending, 1.0) == {"type": "http.disconnect"}
    assert await watch.receive() == {"type": "http.disconnect"}
    assert watch.ended


async def test_messages_pass_through_until_ended() -> None:
    messages: list[Message] = [{"type": "http.request", "body": b""},
                               {"type": "http.disconnect"}]

    async def receive() -> Message:
        return messages.pop(0)

    watch = EndableWatch(EXPORT, GADGETS, "consumer", receive)
    assert await watch.receive() == {"type": "http.request", "body": b""}
    assert await watch.receive() == {"type": "http.disconnect"}
    assert not watch.ended


async def test_a_change_to_the_export_ends_the_watches_it_no_longer_serves(
        feed: Feed) -> None:
    serving = Serving()
    serving.exported |= {(EXPORT, GADGETS), (EXPORT, GIZMOS), (OTHER_EXPORT, GADGETS)}
    watches = ExportWatches(served=serving, grace_seconds=GRACE)
    try:
        dropped = await watches.track(feed.cacher, EXPORT, GADGETS, None, never)
        dropped_one = await watches.track(feed.cacher, EXPORT, GADGETS, "consumer", never)
        kept = await watches.track(feed.cacher, EXPORT, GIZMOS, None, never)
        other = await watches.track(feed.cacher, OTHER_EXPORT, GADGETS, None, never)
        serving.exported.discard((EXPORT, GADGETS))
        await feed.change("/registry/apis.kcp.io/apiexports/provider/tools")
        await wait_until(lambda: dropped.ended and dropped_one.ended)
        assert not kept.ended
        assert not other.ended
        assert watches.count(EXPORT) == 1
        # An export change asks about the export only, not about each consumer.
        assert all(consumer is None for _, _, consumer in serving.asked)
        assert {export for export, _, _ in serving.asked} == {EXPORT}
    finally:
        await watches.stop()


async def test_a_change_to_a_binding_ends_only_that_consumers_watches(feed: Feed) -> None:
    serving = Serving()
    serving.exported.add((EXPORT, GADGETS))
    serving.reached |= {(EXPORT, "leaving"), (EXPORT, "staying")}
    watches = ExportWatches(served=serving, grace_seconds=GRACE)
    try:
        leaving = await watches.track(feed.cacher, EXPORT, GADGETS, "leaving", never)
        staying = await watches.track(feed.cacher, EXPORT, GADGETS, "staying", never)
        everyone = await watches.track(feed.cacher, EXPORT, GADGETS, None, never)
        serving.reached.discard((EXPORT, "leaving"))
        await feed.change("/registry/apis.kcp.io/apibindings/leaving/tools")
        await wait_until(lambda: leaving.ended)
        assert not staying.ended
        assert not everyone.ended
        # A binding of an unwatched consumer is not even looked at.
        asked = len(serving.asked)
        await feed.change("/registry/apis.kcp.io/apibindings/elsewhere/tools")
        await asyncio.sleep(GRACE * 4)
        assert len(serving.asked) == asked
    finally:
        await watches.stop()


async def test_a_watch_is_not_ended_before_the_grace(feed: Feed) -> None:
    serving = Serving()
    watches = ExportWatches(served=serving, grace_seconds=30.0)
    try:
        watch = await watches.track(feed.cacher, EXPORT, GADGETS, None, never)
        await feed.change("/registry/apis.kcp.io/apiexports/provider/tools")
        await asyncio.sleep(GRACE * 4)
        assert not watch.ended
        assert serving.asked == []
    finally:
        await watches.stop()


async def test_a_finished_watch_is_forgotten(feed: Feed) -> None:
    watches = ExportWatches(served=Serving(), grace_seconds=GRACE)
    try:
        watch = await watches.track(feed.cacher, EXPORT, GADGETS, "consumer", never)
        assert watches.count(EXPORT) == 1
        del watch
        gc.collect()
        assert watches.count(EXPORT) == 0
    finally:
        await watches.stop()
