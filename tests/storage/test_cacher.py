"""Behaviour of the watch cache, fed by a real SQLite backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from kplane.storage.backend import CompactedError, KeyValue, UnavailableError, WatchEvent
from kplane.storage.cacher import (
    ADDED,
    DELETED,
    MODIFIED,
    CachedObject,
    CacheEvent,
    Cacher,
    CacheWatcher,
    _KeyIndex,
)
from kplane.storage.sqlite import SQLiteBackend

CM = "/registry/core/configmaps"
SECRETS = "/registry/core/secrets"


def decode(kv: KeyValue) -> CachedObject:
    obj = orjson.loads(kv.value)
    meta = obj["metadata"]
    meta["resourceVersion"] = str(kv.mod_revision)
    return CachedObject(
        key=kv.key,
        raw=orjson.dumps(obj),
        revision=kv.mod_revision,
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        labels=meta.get("labels", {}),
        fields={"metadata.name": meta["name"], "metadata.namespace": meta.get("namespace", "")},
    )


def body(name: str, namespace: str = "", **labels: str) -> bytes:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return orjson.dumps({"metadata": meta})


def obj(key: str, revision: int = 1) -> CachedObject:
    return CachedObject(key, b"{}", revision, key.rsplit("/", 1)[-1], "", {}, {})


@pytest.fixture
async def backend(tmp_path: pathlib.Path) -> AsyncIterator[SQLiteBackend]:
    store = SQLiteBackend(tmp_path / "kplane.db")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def cacher(backend: SQLiteBackend) -> AsyncIterator[Cacher]:
    cache = Cacher(backend, decode)
    await cache.start()
    yield cache
    await cache.stop()


async def put(backend: SQLiteBackend, key: str, data: bytes) -> KeyValue:
    current = await backend.get(key)
    if current is None:
        return await backend.create(key, data)
    return await backend.update(key, data, expected_mod_revision=current.mod_revision)


async def drain(watcher: CacheWatcher, count: int) -> list[CacheEvent]:
    events: list[CacheEvent] = []
    for _ in range(count):
        event = await watcher.next_event(timeout=5)
        assert event is not None, f"only {len(events)} of {count} events arrived"
        events.append(event)
    return events


def summary(events: list[CacheEvent]) -> list[tuple[str, str, int]]:
    return [(e.type, e.obj.name, e.obj.revision) for e in events]


# -- the key index ---------------------------------------------------------------------


def test_index_lists_in_exact_key_order_with_tricky_segments() -> None:
    keys = ["/r/a", "/r/a-b/x", "/r/a/x", "/r/a/y/z", "/r/a.b", "/r/ab", "/r/a/x-1", "/s"]
    index = _KeyIndex()
    for key in random.Random(7).sample(keys, len(keys)):
        index.put(obj(key))
    assert [o.key for o in index.list_prefix("")] == sorted(keys)
    assert [o.key for o in index.list_prefix("/r/a")] == sorted(k for k in keys if k[:4] == "/r/a")
    assert [o.key for o in index.list_prefix("/r/a/")] == ["/r/a/x", "/r/a/x-1", "/r/a/y/z"]
    assert index.count("/r/a/") == 3
    assert index.count("/r/a") == 7
    assert index.count("/r/") == 7
    assert index.count("/nope/") == 0
    assert index.get("/r/a") is not None
    assert index.get("/r/a/y") is None


def test_index_remove_prunes_empty_branches_and_keeps_counts() -> None:
    index = _KeyIndex()
    index.put(obj("/r/c1/ns/a"))
    index.put(obj("/r/c1/ns/b"))
    index.put(obj("/r/c2/x"))
    assert index.remove("/r/c1/ns/a") is not None
    assert index.remove("/r/c1/ns/a") is None
    assert index.count("/r/c1/") == 1
    assert index.remove("/r/c1/ns/b") is not None
    assert index.count("/r/") == 1
    assert len(index) == 1
    assert "c1" not in index._root.children[""].children["r"].children  # type: ignore[union-attr]


def test_index_replacing_an_object_does_not_change_counts() -> None:
    index = _KeyIndex()
    index.put(obj("/r/a", revision=1))
    old = index.put(obj("/r/a", revision=2))
    assert old is not None and old.revision == 1
    assert index.count("/r/") == 1
    assert index.get("/r/a") == obj("/r/a", revision=2)


def test_index_key_that_is_also_a_prefix_of_other_keys() -> None:
    index = _KeyIndex()
    index.put(obj("/r/a"))
    index.put(obj("/r/a/b"))
    assert [o.key for o in index.list_prefix("/r/")] == ["/r/a", "/r/a/b"]
    assert index.count("/r/a/") == 1
    index.remove("/r/a/b")
    assert index.get("/r/a") is not None
    assert index.count("/r/") == 1


def test_index_get_agrees_with_listing_through_puts_and_removes() -> None:
    index = _KeyIndex()
    rng = random.Random(11)
    keys = [f"/r/c{c}/ns{n}/o{o}" for c in range(3) for n in range(3) for o in range(4)]
    keys += ["/r/c1", "/r/c1/ns1"]
    present: set[str] = set()
    for _ in range(400):
        key = rng.choice(keys)
        if key in present and rng.random() < 0.5:
            assert index.remove(key) is not None
            present.discard(key)
        else:
            index.put(obj(key))
            present.add(key)
        assert {o.key for o in index.list_prefix("")} == present
        assert all((index.get(k) is not None) == (k in present) for k in keys)


# -- reads -----------------------------------------------------------------------------


async def test_start_loads_existing_objects_and_becomes_ready(backend: SQLiteBackend) -> None:
    await backend.create(f"{CM}/c1/default/a", body("a", "default"))
    await backend.create(f"{CM}/c1/default/b", body("b", "default"))
    cache = Cacher(backend, decode)
    assert not cache.ready
    await cache.start()
    try:
        assert cache.ready
        assert cache.revision == 2
        cached = cache.get(f"{CM}/c1/default/b")
        assert cached is not None
        assert orjson.loads(cached.raw)["metadata"]["resourceVersion"] == "2"
    finally:
        await cache.stop()


async def test_get_list_count_by_resource_cluster_and_namespace(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    keys = [
        f"{CM}/c1/default/a",
        f"{CM}/c1/default/b",
        f"{CM}/c1/kube-system/a",
        f"{CM}/c2/default/a",
        f"{SECRETS}/c1/default/a",
    ]
    for key in reversed(keys):
        _, _, _, _, _, ns, name = key.split("/")
        last = await backend.create(key, body(name, ns))
    await cacher.wait_for_revision(last.mod_revision)

    assert [o.key for o in cacher.list(f"{CM}/")] == keys[:4]
    assert [o.key for o in cacher.list(f"{CM}/c1/")] == keys[:3]
    assert [o.key for o in cacher.list(f"{CM}/c1/default/")] == keys[:2]
    assert cacher.list(f"{CM}/c3/") == []
    assert cacher.count(f"{CM}/") == 4
    assert cacher.count(f"{CM}/c1/") == 3
    assert cacher.count("/registry/") == 5
    got = cacher.get(f"{CM}/c1/kube-system/a")
    assert got is not None and got.namespace == "kube-system"
    assert cacher.get(f"{CM}/c1/default/zzz") is None


async def test_updates_and_deletes_reach_the_cache(backend: SQLiteBackend, cacher: Cacher) -> None:
    key = f"{CM}/c1/default/a"
    await backend.create(key, body("a", "default", v="1"))
    updated = await backend.update(key, body("a", "default", v="2"), expected_mod_revision=1)
    await cacher.wait_for_revision(updated.mod_revision)
    cached = cacher.get(key)
    assert cached is not None and cached.labels == {"v": "2"} and cached.revision == 2
    deleted = await backend.delete(key)
    await cacher.wait_for_revision(deleted.mod_revision)
    assert cacher.get(key) is None
    assert cacher.count(f"{CM}/") == 0


async def test_wait_for_revision_times_out(cacher: Cacher) -> None:
    await cacher.wait_for_revision(0)
    with pytest.raises(TimeoutError):
        await cacher.wait_for_revision(5, timeout=0.05)


async def test_undecodable_values_are_logged_and_skipped(
    backend: SQLiteBackend, cacher: Cacher, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.create(f"{CM}/c1/default/bad", b"not json")
    good = await backend.create(f"{CM}/c1/default/good", body("good", "default"))
    with caplog.at_level(logging.ERROR, logger="kplane.storage.cacher"):
        await cacher.wait_for_revision(good.mod_revision)
    assert [o.name for o in cacher.list(f"{CM}/")] == ["good"]
    assert any("cannot decode" in r.getMessage() for r in caplog.records)


# -- watch -----------------------------------------------------------------------------


async def test_watch_delivers_only_keys_under_its_prefix(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    namespace = cacher.watch(f"{CM}/c1/default/", after_revision=cacher.revision)
    cluster = cacher.watch(f"{CM}/c1/", after_revision=cacher.revision)
    everywhere = cacher.watch(f"{CM}/", after_revision=cacher.revision)
    secrets = cacher.watch(f"{SECRETS}/", after_revision=cacher.revision)

    await backend.create(f"{CM}/c1/default/a", body("a", "default"))
    await backend.create(f"{CM}/c1/other/b", body("b", "other"))
    await backend.create(f"{CM}/c2/default/c", body("c", "default"))
    await backend.create(f"{SECRETS}/c1/default/s", body("s", "default"))

    assert [e.obj.name for e in await drain(namespace, 1)] == ["a"]
    assert [e.obj.name for e in await drain(cluster, 2)] == ["a", "b"]
    assert [e.obj.name for e in await drain(everywhere, 3)] == ["a", "b", "c"]
    assert [e.obj.name for e in await drain(secrets, 1)] == ["s"]
    for watcher in (namespace, cluster, everywhere, secrets):
        assert await watcher.next_event(timeout=0.02) is None


async def test_watchers_receiving_the_same_type_share_one_event(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    first = cacher.watch(f"{CM}/", after_revision=0)
    second = cacher.watch(f"{CM}/c1/", after_revision=0)
    await backend.create(f"{CM}/c1/default/a", body("a", "default"))
    (one,) = await drain(first, 1)
    (two,) = await drain(second, 1)
    assert one is two
    assert one.memo == {}


async def test_watchers_on_other_prefixes_are_not_consulted(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    calls = 0

    def counting(_: CachedObject) -> bool:
        nonlocal calls
        calls += 1
        return True

    for i in range(200):
        cacher.watch(f"{CM}/cluster{i}/", after_revision=0, predicate=counting)
    mine = cacher.watch(f"{SECRETS}/c1/", after_revision=0, predicate=counting)
    await backend.create(f"{SECRETS}/c1/default/s", body("s", "default"))
    await drain(mine, 1)
    assert calls == 1


async def test_predicate_transitions_follow_selector_semantics(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    watcher = cacher.watch(
        f"{CM}/", after_revision=0, predicate=lambda o: o.labels.get("app") == "web"
    )
    key, other = f"{CM}/c1/default/a", f"{CM}/c1/default/b"
    await backend.create(other, body("b", "default", app="db"))  # never matches
    await put(backend, key, body("a", "default", app="web"))  # ADDED
    await put(backend, key, body("a", "default", app="web", v="2"))  # MODIFIED
    await put(backend, key, body("a", "default", app="db"))  # leaves: DELETED
    await put(backend, key, body("a", "default", app="db", v="3"))  # nothing
    await put(backend, key, body("a", "default", app="web"))  # enters: ADDED
    await backend.delete(other)  # never matched: nothing
    await backend.delete(key)  # DELETED

    events = await drain(watcher, 5)
    assert summary(events) == [
        (ADDED, "a", 2),
        (MODIFIED, "a", 3),
        (DELETED, "a", 4),
        (ADDED, "a", 6),
        (DELETED, "a", 8),
    ]
    # Leaving the selector carries the new state, which no longer matches.
    assert events[2].obj.labels == {"app": "db"}
    # A real delete carries the last state at the delete's revision.
    assert orjson.loads(events[4].obj.raw)["metadata"]["resourceVersion"] == "8"
    assert await watcher.next_event(timeout=0.02) is None


async def test_replay_from_history_then_live_without_gap_or_duplicate(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    for i in range(5):
        last = await backend.create(f"{CM}/c1/default/o{i}", body(f"o{i}", "default"))
    await cacher.wait_for_revision(last.mod_revision)
    watcher = cacher.watch(f"{CM}/c1/", after_revision=2)
    for i in range(5, 8):
        await backend.create(f"{CM}/c1/default/o{i}", body(f"o{i}", "default"))
    events = await drain(watcher, 6)
    assert [e.obj.revision for e in events] == [3, 4, 5, 6, 7, 8]
    assert {e.type for e in events} == {ADDED}
    assert await watcher.next_event(timeout=0.02) is None


async def test_replay_applies_the_predicate_with_transitions(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    key = f"{CM}/c1/default/a"
    await put(backend, key, body("a", "default", app="web"))
    await put(backend, key, body("a", "default", app="db"))
    last = await put(backend, key, body("a", "default", app="web"))
    await cacher.wait_for_revision(last.mod_revision)
    watcher = cacher.watch(f"{CM}/", after_revision=0, predicate=lambda o: o.labels["app"] == "web")
    assert summary(await drain(watcher, 3)) == [(ADDED, "a", 1), (DELETED, "a", 2), (ADDED, "a", 3)]


async def test_watch_from_before_the_history_ring_is_compacted(backend: SQLiteBackend) -> None:
    cache = Cacher(backend, decode, history_limit=3)
    await cache.start()
    try:
        for i in range(5):
            last = await backend.create(f"{CM}/c1/default/o{i}", body(f"o{i}", "default"))
        await cache.wait_for_revision(last.mod_revision)
        with pytest.raises(CompactedError) as info:
            cache.watch(f"{CM}/", after_revision=1)
        assert (info.value.requested, info.value.compacted) == (1, 2)
        oldest_kept = cache.watch(f"{CM}/", after_revision=2)
        assert [e.obj.revision for e in await drain(oldest_kept, 3)] == [3, 4, 5]
        current = cache.watch(f"{CM}/", after_revision=cache.revision)
        assert await current.next_event(timeout=0.02) is None
    finally:
        await cache.stop()


async def test_a_fresh_cache_replays_nothing_older_than_its_list(backend: SQLiteBackend) -> None:
    await backend.create(f"{CM}/c1/default/a", body("a", "default"))
    await backend.create(f"{CM}/c1/default/b", body("b", "default"))
    cache = Cacher(backend, decode)
    await cache.start()
    try:
        with pytest.raises(CompactedError):
            cache.watch(f"{CM}/", after_revision=1)
        assert cache.watch(f"{CM}/", after_revision=2).closed is False
    finally:
        await cache.stop()


def sized(name: str, size: int, version: int = 0) -> bytes:
    """A namespaced object carrying ``size`` bytes of data."""
    return orjson.dumps({"metadata": {"name": name, "namespace": "default", "labels": {}},
                         "data": {"v": str(version), "blob": "x" * size}})


async def test_history_bytes_count_only_what_the_history_alone_keeps(
    backend: SQLiteBackend,
) -> None:
    cache = Cacher(backend, decode, history_bytes_limit=10**9)
    await cache.start()
    try:
        key = f"{CM}/c1/default/a"
        # ADDED objects live in the index anyway: however large, they cost the history 0.
        for name in ("a", "b", "c"):
            last = await backend.create(f"{CM}/c1/default/{name}", sized(name, 50_000))
        await cache.wait_for_revision(last.mod_revision)
        assert cache.history_bytes == 0

        # An update leaves the replaced state to the history only.
        replaced = cache.get(key)
        assert replaced is not None
        last = await put(backend, key, sized("a", 50_000, version=1))
        await cache.wait_for_revision(last.mod_revision)
        assert cache.history_bytes == len(replaced.raw)

        # A delete: the deleted state it carries, and the last live state, which the
        # history still holds through the update that created it.
        live = cache.get(key)
        assert live is not None
        deleted = await backend.delete(key)
        await cache.wait_for_revision(deleted.mod_revision)
        watcher = cache.watch(f"{CM}/", after_revision=deleted.mod_revision - 1)
        [event] = await drain(watcher, 1)
        assert event.type == DELETED
        assert cache.history_bytes == len(replaced.raw) + len(live.raw) + len(event.obj.raw)
    finally:
        await cache.stop()


async def test_a_delete_after_the_creating_change_left_costs_only_its_deleted_state(
    backend: SQLiteBackend,
) -> None:
    cache = Cacher(backend, decode, history_limit=1)
    await cache.start()
    try:
        await backend.create(f"{CM}/c1/default/a", sized("a", 30_000))
        await backend.create(f"{CM}/c1/default/b", sized("b", 10))  # pushes a's ADDED out
        deleted = await backend.delete(f"{CM}/c1/default/a")
        await cache.wait_for_revision(deleted.mod_revision)
        [event] = await drain(cache.watch(f"{CM}/", after_revision=deleted.mod_revision - 1), 1)
        assert event.type == DELETED
        assert cache.history_bytes == len(event.obj.raw)
    finally:
        await cache.stop()


async def test_history_over_its_byte_budget_forgets_the_oldest_changes(
    backend: SQLiteBackend,
) -> None:
    size = 20_000
    cache = Cacher(backend, decode, history_bytes_limit=int(2.5 * size))
    await cache.start()
    try:
        key = f"{CM}/c1/default/a"
        first = await backend.create(key, sized("a", size))
        revisions = [first.mod_revision]
        for version in range(1, 4):
            kv = await put(backend, key, sized("a", size, version=version))
            revisions.append(kv.mod_revision)
            await cache.wait_for_revision(kv.mod_revision)
        # Three replaced states (~3 x size) are over 2.5 x size: the ADDED and the first
        # update went; the newest two updates, each holding one replaced state, stay.
        assert size * 2 < cache.history_bytes <= int(2.5 * size)
        with pytest.raises(CompactedError) as info:
            cache.watch(f"{CM}/", after_revision=revisions[0])
        # The same answer as past the count limit: the newest forgotten revision.
        assert (info.value.requested, info.value.compacted) == (revisions[0], revisions[1])
        oldest_kept = cache.watch(f"{CM}/", after_revision=revisions[1])
        assert summary(await drain(oldest_kept, 2)) == [
            (MODIFIED, "a", revisions[2]), (MODIFIED, "a", revisions[3])]
        # Live events and watches from the current revision are unaffected.
        current = cache.watch(f"{CM}/", after_revision=cache.revision)
        last = await put(backend, key, sized("a", 10, version=9))
        assert summary(await drain(current, 1)) == [(MODIFIED, "a", last.mod_revision)]
    finally:
        await cache.stop()


async def test_one_change_larger_than_the_budget_is_not_kept(backend: SQLiteBackend) -> None:
    cache = Cacher(backend, decode, history_bytes_limit=1_000)
    await cache.start()
    try:
        key = f"{CM}/c1/default/a"
        await backend.create(key, sized("a", 5_000))
        last = await put(backend, key, sized("a", 10, version=1))
        await cache.wait_for_revision(last.mod_revision)
        assert cache.history_bytes == 0
        with pytest.raises(CompactedError):
            cache.watch(f"{CM}/", after_revision=last.mod_revision - 1)
        assert not cache.watch(f"{CM}/", after_revision=last.mod_revision).closed
    finally:
        await cache.stop()


async def test_a_watcher_that_falls_behind_is_closed_without_hurting_others(
    backend: SQLiteBackend,
) -> None:
    cache = Cacher(backend, decode, watcher_queue_limit=3)
    await cache.start()
    try:
        slow = cache.watch(f"{CM}/", after_revision=0)
        fast = cache.watch(f"{CM}/", after_revision=0)
        received: list[CacheEvent] = []
        for i in range(6):
            last = await backend.create(f"{CM}/c1/default/o{i}", body(f"o{i}", "default"))
            await cache.wait_for_revision(last.mod_revision)
            received.extend(await drain(fast, 1))
        assert slow.closed
        assert not fast.closed
        assert len(received) == 6
        with pytest.raises(StopAsyncIteration):
            await anext(slow)
        assert cache._watchers[f"{CM}/"] == {fast}
    finally:
        await cache.stop()


async def test_async_iteration_and_close(backend: SQLiteBackend, cacher: Cacher) -> None:
    watcher = cacher.watch(f"{CM}/", after_revision=0)
    await backend.create(f"{CM}/c1/default/a", body("a", "default"))
    async for event in watcher:
        assert event.obj.name == "a"
        break
    watcher.close()
    assert watcher.closed
    assert cacher._watchers == {}
    with pytest.raises(StopAsyncIteration):
        await watcher.next_event(timeout=1)


async def test_close_wakes_a_waiting_consumer(cacher: Cacher) -> None:
    watcher = cacher.watch(f"{CM}/", after_revision=0)
    waiting = asyncio.create_task(watcher.next_event(timeout=5))
    await asyncio.sleep(0.01)
    watcher.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)


async def test_stop_closes_watchers_and_refuses_new_ones(backend: SQLiteBackend) -> None:
    cache = Cacher(backend, decode)
    await cache.start()
    watcher = cache.watch(f"{CM}/", after_revision=0)
    await cache.stop()
    assert watcher.closed
    assert not cache.ready
    with pytest.raises(UnavailableError):
        cache.watch(f"{CM}/", after_revision=0)


class _BreakableBackend(SQLiteBackend):
    """A SQLite backend whose watches can be made to fail, as after a long disconnect."""

    def __init__(self, path: pathlib.Path) -> None:
        super().__init__(path)
        self.broken = asyncio.Event()

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[list[WatchEvent]]:
        return self._breakable(super().watch(prefix, after_revision=after_revision))

    async def _breakable(
        self, stream: AsyncIterator[list[WatchEvent]]
    ) -> AsyncIterator[list[WatchEvent]]:
        next_batch = asyncio.ensure_future(anext(stream))
        try:
            while True:
                breaking = asyncio.ensure_future(self.broken.wait())
                await asyncio.wait({next_batch, breaking}, return_when=asyncio.FIRST_COMPLETED)
                if self.broken.is_set():
                    self.broken.clear()
                    raise CompactedError(0, 1)
                breaking.cancel()
                yield next_batch.result()
                next_batch = asyncio.ensure_future(anext(stream))
        finally:
            next_batch.cancel()
            with contextlib.suppress(BaseException):
                await next_batch
            await stream.aclose()  # type: ignore[attr-defined]


async def test_backend_watch_failure_relists_and_closes_watchers(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _BreakableBackend(tmp_path / "kplane.db")
    await backend.start()
    cache = Cacher(backend, decode)
    await cache.start()
    try:
        watcher = cache.watch(f"{CM}/", after_revision=0)
        first = await backend.create(f"{CM}/c1/default/a", body("a", "default"))
        await cache.wait_for_revision(first.mod_revision)
        with caplog.at_level(logging.ERROR, logger="kplane.storage.cacher"):
            backend.broken.set()
            for _ in range(100):
                if watcher.closed:
                    break
                await asyncio.sleep(0.01)
        assert watcher.closed
        assert any("relisting" in r.getMessage() for r in caplog.records)

        second = await backend.create(f"{CM}/c1/default/b", body("b", "default"))
        await cache.wait_for_revision(second.mod_revision)
        assert cache.ready
        assert [o.name for o in cache.list(f"{CM}/")] == ["a", "b"]
        rewatch = cache.watch(f"{CM}/", after_revision=cache.revision)
        third = await backend.create(f"{CM}/c1/default/c", body("c", "default"))
        assert summary(await drain(rewatch, 1)) == [(ADDED, "c", third.mod_revision)]
    finally:
        await cache.stop()
        await backend.close()


async def test_waiting_until_a_time_keeps_one_timer_across_events(
    backend: SQLiteBackend, cacher: Cacher
) -> None:
    watcher = cacher.watch(f"{CM}/", after_revision=cacher.revision)
    loop = asyncio.get_running_loop()
    when = loop.time() + 0.3
    waiting = asyncio.create_task(watcher.next_event_until(when))
    await asyncio.sleep(0.01)
    await backend.create(f"{CM}/c1/default/early", body("early", "default"))
    event = await asyncio.wait_for(waiting, 1)
    assert event is not None and event.obj.name == "early"
    timer = watcher._timer
    assert timer is not None
    # Waiting again for the same time reuses the armed timer and ends at that time.
    waiting = asyncio.create_task(watcher.next_event_until(when))
    await asyncio.sleep(0)
    assert watcher._timer is timer
    assert await asyncio.wait_for(waiting, 1) is None
    assert loop.time() >= when
    # A time already passed answers at once.
    assert await watcher.next_event_until(when) is None
    watcher.close()
    assert watcher._timer is None


async def test_a_timer_that_fires_early_is_armed_again(cacher: Cacher) -> None:
    """uvloop can run a timer slightly before its clock reads the time asked for."""
    watcher = cacher.watch(f"{CM}/", after_revision=cacher.revision)
    loop = asyncio.get_running_loop()
    when = loop.time() + 0.2
    waiting = asyncio.create_task(watcher.next_event_until(when))
    await asyncio.sleep(0)
    early = watcher._timer
    assert early is not None
    early.cancel()
    watcher._timer_fired()  # as if it fired before ``when``
    assert await asyncio.wait_for(waiting, 1) is None
    assert loop.time() >= when
    watcher.close()
