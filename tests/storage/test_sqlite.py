"""Behaviour of the SQLite backend against real database files."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
from collections.abc import AsyncIterator

import pytest

from kplane.storage.backend import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    UnavailableError,
    WatchEvent,
)
from kplane.storage.sqlite import SQLiteBackend


@pytest.fixture
async def backend(tmp_path: pathlib.Path) -> AsyncIterator[SQLiteBackend]:
    store = SQLiteBackend(tmp_path / "kplane.db")
    await store.start()
    yield store
    await store.close()


async def _collect(
    stream: AsyncIterator[list[WatchEvent]], *, count: int, timeout: float = 5.0
) -> list[WatchEvent]:
    events: list[WatchEvent] = []

    async def run() -> None:
        async for batch in stream:
            events.extend(batch)
            if len(events) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def test_revisions_start_at_one_and_every_write_gets_its_own(
    backend: SQLiteBackend,
) -> None:
    assert await backend.current_revision() == 0
    a = await backend.create("/r/a", b"1")
    b = await backend.create("/r/b", b"2")
    a2 = await backend.update("/r/a", b"3", expected_mod_revision=a.mod_revision)
    gone = await backend.delete("/r/b")
    assert (a.create_revision, a.mod_revision) == (1, 1)
    assert (b.create_revision, b.mod_revision) == (2, 2)
    assert (a2.create_revision, a2.mod_revision) == (1, 3)
    assert gone == KeyValue("/r/b", b"2", create_revision=2, mod_revision=4)
    assert await backend.current_revision() == 4


async def test_get_returns_current_value_or_none(backend: SQLiteBackend) -> None:
    await backend.create("/r/a", b"v1")
    await backend.update("/r/a", b"v2", expected_mod_revision=1)
    assert await backend.get("/r/a") == KeyValue("/r/a", b"v2", 1, 2)
    assert await backend.get("/r/missing") is None


async def test_create_of_existing_key_fails_and_consumes_no_revision(
    backend: SQLiteBackend,
) -> None:
    await backend.create("/r/a", b"v1")
    with pytest.raises(KeyExistsError) as info:
        await backend.create("/r/a", b"v2")
    assert info.value.key == "/r/a"
    assert await backend.current_revision() == 1
    assert await backend.get("/r/a") == KeyValue("/r/a", b"v1", 1, 1)


async def test_update_with_stale_revision_conflicts(backend: SQLiteBackend) -> None:
    await backend.create("/r/a", b"v1")
    await backend.update("/r/a", b"v2", expected_mod_revision=1)
    with pytest.raises(ConflictError) as info:
        await backend.update("/r/a", b"v3", expected_mod_revision=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert await backend.get("/r/a") == KeyValue("/r/a", b"v2", 1, 2)
    assert await backend.current_revision() == 2


async def test_update_and_delete_of_missing_key_raise_not_found(backend: SQLiteBackend) -> None:
    with pytest.raises(KeyNotFoundError):
        await backend.update("/r/nope", b"x", expected_mod_revision=1)
    with pytest.raises(KeyNotFoundError):
        await backend.delete("/r/nope")
    assert await backend.current_revision() == 0


async def test_delete_checks_expected_revision_when_given(backend: SQLiteBackend) -> None:
    await backend.create("/r/a", b"v1")
    with pytest.raises(ConflictError):
        await backend.delete("/r/a", expected_mod_revision=7)
    deleted = await backend.delete("/r/a", expected_mod_revision=1)
    assert deleted == KeyValue("/r/a", b"v1", 1, 2)
    assert await backend.get("/r/a") is None
    recreated = await backend.create("/r/a", b"v3")
    assert (recreated.create_revision, recreated.mod_revision) == (3, 3)


async def test_range_is_ordered_by_key_and_limited_to_prefix(backend: SQLiteBackend) -> None:
    for key in ["/r/b/2", "/r/a", "/r/b/1", "/r/b-x", "/s/a", "/r/b/10"]:
        await backend.create(key, key.encode())
    result = await backend.range("/r/b/")
    assert [kv.key for kv in result.items] == ["/r/b/1", "/r/b/10", "/r/b/2"]
    assert result.revision == 6
    everything = await backend.range("")
    assert [kv.key for kv in everything.items] == sorted(
        ["/r/b/2", "/r/a", "/r/b/1", "/r/b-x", "/s/a", "/r/b/10"]
    )


async def test_range_revision_covers_deletes(backend: SQLiteBackend) -> None:
    await backend.create("/r/a", b"1")
    await backend.delete("/r/a")
    result = await backend.range("/r/")
    assert result.items == []
    assert result.revision == 2


async def test_concurrent_writers_all_succeed_with_unique_revisions(
    backend: SQLiteBackend,
) -> None:
    async def writer(n: int) -> list[int]:
        revisions = []
        for i in range(25):
            kv = await backend.create(f"/r/w{n}/k{i}", b"x" * 300)
            revisions.append(kv.mod_revision)
        return revisions

    results = await asyncio.gather(*(writer(n) for n in range(32)))
    revisions = [r for per_writer in results for r in per_writer]
    assert sorted(revisions) == list(range(1, 32 * 25 + 1))
    for per_writer in results:
        assert per_writer == sorted(per_writer)
    assert len((await backend.range("/r/")).items) == 800


async def test_conflict_in_a_batch_does_not_fail_its_neighbours(
    backend: SQLiteBackend,
) -> None:
    await backend.create("/r/contended", b"0")
    # Submitted together, these land in the same group-commit batch: exactly one CAS wins.
    outcomes = await asyncio.gather(
        *(
            backend.update("/r/contended", f"{i}".encode(), expected_mod_revision=1)
            for i in range(10)
        ),
        *(backend.create(f"/r/free{i}", b"x") for i in range(10)),
        return_exceptions=True,
    )
    updates, creates = outcomes[:10], outcomes[10:]
    assert sum(isinstance(o, KeyValue) for o in updates) == 1
    assert sum(isinstance(o, ConflictError) for o in updates) == 9
    assert all(isinstance(o, KeyValue) for o in creates)
    assert await backend.current_revision() == 12


async def test_restart_keeps_data_revision_and_compaction(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kplane.db"
    first = SQLiteBackend(path)
    await first.start()
    await first.create("/r/a", b"1")
    await first.create("/r/b", b"2")
    await first.delete("/r/b")
    await first.compact(3)
    await first.close()

    second = SQLiteBackend(path)
    await second.start()
    try:
        assert await second.current_revision() == 3
        assert await second.compacted_revision() == 3
        assert await second.get("/r/a") == KeyValue("/r/a", b"1", 1, 1)
        kv = await second.create("/r/c", b"3")
        assert kv.mod_revision == 4
    finally:
        await second.close()


async def test_watch_replays_history_then_streams_live(backend: SQLiteBackend) -> None:
    await backend.create("/r/a", b"1")
    await backend.create("/other/x", b"x")
    await backend.update("/r/a", b"2", expected_mod_revision=1)
    stream = backend.watch("/r/", after_revision=0)
    replay = await _collect(stream, count=2)
    await backend.delete("/r/a")
    await backend.create("/other/y", b"y")
    await backend.create("/r/b", b"b")
    live = await _collect(stream, count=2)
    await stream.aclose()  # type: ignore[attr-defined]

    assert [(e.type, e.kv.key, e.revision) for e in replay + live] == [
        (EventType.PUT, "/r/a", 1),
        (EventType.PUT, "/r/a", 3),
        (EventType.DELETE, "/r/a", 4),
        (EventType.PUT, "/r/b", 6),
    ]
    update, delete = replay[1], live[0]
    assert update.prev == KeyValue("/r/a", b"1", 1, 1)
    assert delete.kv == KeyValue("/r/a", b"2", 1, 4)
    assert delete.prev == KeyValue("/r/a", b"2", 1, 3)


async def test_watch_after_revision_skips_older_events(backend: SQLiteBackend) -> None:
    for i in range(5):
        await backend.create(f"/r/{i}", b"x")
    events = await _collect(backend.watch("/r/", after_revision=3), count=2)
    assert [e.revision for e in events] == [4, 5]


async def test_watch_has_no_gap_or_duplicate_under_concurrent_writes(
    backend: SQLiteBackend,
) -> None:
    total = 600

    async def write(n: int) -> None:
        for i in range(total // 6):
            await backend.create(f"/r/{n}/{i}", b"v")

    writers = [asyncio.create_task(write(n)) for n in range(6)]
    await asyncio.sleep(0.01)  # start watching while writes are in flight
    stream = backend.watch("/r/", after_revision=0)
    events = await _collect(stream, count=total)
    await asyncio.gather(*writers)
    assert [e.revision for e in events] == list(range(1, total + 1))


async def test_watch_replays_more_than_one_page(backend: SQLiteBackend) -> None:
    await asyncio.gather(*(backend.create(f"/r/{i:05}", b"v") for i in range(2_500)))
    events = await _collect(backend.watch("/r/", after_revision=0), count=2_500)
    assert [e.revision for e in events] == list(range(1, 2_501))


async def test_compaction_forgets_history_and_rejects_old_watches(
    backend: SQLiteBackend,
) -> None:
    for i in range(4):
        await backend.create(f"/r/{i}", b"x")
    await backend.compact(2)
    assert await backend.compacted_revision() == 2
    with pytest.raises(CompactedError) as info:
        await anext(aiter(backend.watch("/r/", after_revision=1)))
    assert (info.value.requested, info.value.compacted) == (1, 2)
    events = await _collect(backend.watch("/r/", after_revision=2), count=2)
    assert [e.revision for e in events] == [3, 4]
    # Live keys survive compaction.
    assert len((await backend.range("/r/")).items) == 4


async def test_compacting_everything_keeps_the_revision(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kplane.db"
    store = SQLiteBackend(path)
    await store.start()
    await store.create("/r/a", b"x")
    await store.delete("/r/a")
    await store.compact(2)
    assert (await store.range("/r/")).revision == 2
    await store.close()
    reopened = SQLiteBackend(path)
    await reopened.start()
    assert await reopened.current_revision() == 2
    assert (await reopened.create("/r/b", b"y")).mod_revision == 3
    await reopened.close()


async def test_compacting_a_future_revision_is_refused(backend: SQLiteBackend) -> None:
    await backend.create("/r/a", b"x")
    with pytest.raises(ValueError, match="future revision"):
        await backend.compact(5)
    assert await backend.compacted_revision() == 0


async def test_closing_a_watch_unsubscribes(backend: SQLiteBackend) -> None:
    stream = backend.watch("/r/", after_revision=0)
    await backend.create("/r/a", b"x")
    await _collect(stream, count=1)
    assert len(backend._subscribers) == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert backend._subscribers == set()


async def test_close_ends_open_watches(tmp_path: pathlib.Path) -> None:
    store = SQLiteBackend(tmp_path / "kplane.db")
    await store.start()
    stream = store.watch("/r/", after_revision=0)
    await store.create("/r/a", b"x")
    await _collect(stream, count=1)

    async def next_batch() -> list[WatchEvent]:
        return await anext(aiter(stream))

    waiting = asyncio.create_task(next_batch())
    await asyncio.sleep(0.01)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_operations_after_close_are_unavailable(tmp_path: pathlib.Path) -> None:
    store = SQLiteBackend(tmp_path / "kplane.db")
    await store.start()
    await store.close()
    with pytest.raises(UnavailableError):
        await store.create("/r/a", b"x")
    with pytest.raises(UnavailableError):
        await store.get("/r/a")


async def test_database_is_wal_mode_and_consistent(
    backend: SQLiteBackend, tmp_path: pathlib.Path
) -> None:
    await backend.create("/r/a", b"x")
    conn = sqlite3.connect(tmp_path / "kplane.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_unknown_synchronous_mode_is_rejected(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteBackend(tmp_path / "x.db", synchronous="SOMETIMES")
