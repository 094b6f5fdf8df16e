"""CacheFollower: an index gets what is cached at start, then every change, in order."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest

from kplane.registry.cache_index import CacheFollower
from kplane.storage.cacher import CachedObject, Cacher
from kplane.storage.sqlite import SQLiteBackend
from tests.storage.test_cacher import body, decode

PREFIX = "/registry/example.io/things/"


@pytest.fixture
async def backend(tmp_path: pathlib.Path) -> AsyncIterator[SQLiteBackend]:
    store = SQLiteBackend(tmp_path / "kplane.db")
    await store.start()
    yield store
    await store.close()


async def test_loads_then_follows_changes_and_deletions(backend: SQLiteBackend) -> None:
    await backend.create(f"{PREFIX}c1/before", body("before"))
    await backend.create("/registry/core/secrets/c1/ns/other", body("other", "ns"))
    cacher = Cacher(backend, decode)
    await cacher.start()
    seen: list[tuple[str, bool]] = []

    def apply(cached: CachedObject, *, deleted: bool) -> None:
        seen.append((cached.name, deleted))

    follower = CacheFollower(name="test-index", watch_prefix=PREFIX,
                             load_prefixes=[PREFIX], apply=apply)
    try:
        await follower.start(cacher)
        # The initial load happens before start returns: the index is ready to serve.
        assert seen == [("before", False)]
        created = await backend.create(f"{PREFIX}c2/after", body("after"))
        await backend.delete(f"{PREFIX}c1/before", expected_mod_revision=None)
        await cacher.wait_for_revision(created.mod_revision + 1)
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)
        assert seen == [("before", False), ("after", False), ("before", True)]
    finally:
        await follower.stop()
        await cacher.stop()


async def test_an_object_the_index_cannot_take_is_skipped(backend: SQLiteBackend) -> None:
    await backend.create(f"{PREFIX}c1/broken", body("broken"))
    await backend.create(f"{PREFIX}c1/fine", body("fine"))
    cacher = Cacher(backend, decode)
    await cacher.start()
    seen: list[str] = []

    def apply(cached: CachedObject, *, deleted: bool) -> None:
        if cached.name == "broken":
            raise ValueError("cannot build a type from this")
        seen.append(cached.name)

    follower = CacheFollower(name="test-index", watch_prefix=PREFIX,
                             load_prefixes=[PREFIX], apply=apply)
    try:
        await follower.start(cacher)
        assert seen == ["fine"]
        # The follower keeps going after a failure while following, too.
        await backend.create(f"{PREFIX}c2/broken", body("broken"))
        await backend.create(f"{PREFIX}c2/later", body("later"))
        for _ in range(100):
            if "later" in seen:
                break
            await asyncio.sleep(0.01)
        assert seen == ["fine", "later"]
    finally:
        await follower.stop()
        await cacher.stop()


async def test_a_reload_takes_out_what_was_deleted_meanwhile(backend: SQLiteBackend) -> None:
    await backend.create(f"{PREFIX}c1/kept", body("kept"))
    gone = await backend.create(f"{PREFIX}c1/gone", body("gone"))
    cacher = Cacher(backend, decode)
    await cacher.start()
    index: dict[str, bool] = {}

    def apply(cached: CachedObject, *, deleted: bool) -> None:
        if deleted:
            index.pop(cached.name, None)
        else:
            index[cached.name] = True

    follower = CacheFollower(name="test-index", watch_prefix=PREFIX,
                             load_prefixes=[PREFIX], apply=apply)
    try:
        await follower.start(cacher)
        await follower.stop()  # as if its watch were lost
        deleted = await backend.delete(f"{PREFIX}c1/gone", expected_mod_revision=gone.mod_revision)
        await cacher.wait_for_revision(deleted.mod_revision)
        assert index == {"kept": True, "gone": True}
        follower.load(cacher)  # what the follower does when it cannot resume
        assert index == {"kept": True}
    finally:
        await cacher.stop()
