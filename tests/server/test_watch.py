"""Watch streaming over ASGI: framing, initial events, bookmarks, timeouts, errors, Tables,
and memory bounded by the client's reading (flow control), not by the collection's size."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.server import watch as watch_module
from kplane.server.app import KplaneApp
from kplane.server.runtime import bootstrap
from kplane.server.types import Message
from kplane.storage.cacher import (
    DEFAULT_HISTORY_BYTES_LIMIT,
    DEFAULT_WATCHER_QUEUE_LIMIT,
    Cacher,
)
from kplane.storage.sqlite import SQLiteBackend
from tests.server.harness import Stack, WatchClient, configmap, make_scope

CMS = "/api/v1/namespaces/default/configmaps"
KUBECTL_TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                 "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


async def create(stack: Stack, name: str, **labels: str) -> dict[str, Any]:
    body = configmap(name, k="v")
    if labels:
        body["metadata"]["labels"] = labels
    response = await stack.request("POST", CMS, body=body)
    assert response.status == 201, response.body
    created: dict[str, Any] = response.json()
    return created


async def relabel(stack: Stack, name: str, **labels: str) -> None:
    response = await stack.request(
        "PATCH", f"{CMS}/{name}", body={"metadata": {"labels": labels}},
        headers=[("content-type", "application/merge-patch+json")])
    assert response.status == 200, response.body


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def test_initial_added_then_live_events_as_newline_frames(stack: Stack) -> None:
    await create(stack, "a")
    await create(stack, "b")
    async with stack.watch(CMS, query="watch=1") as client:
        assert client.status == 200
        assert (b"content-type", b"application/json") in client.headers
        first = await client.next_chunk()
        # The initial state arrives together, one newline-terminated frame per object.
        assert first.count(b"\n") == 2
        assert first.endswith(b"\n")
        initial = [orjson.loads(line) for line in first.splitlines()]
        assert names(initial) == [("ADDED", "a"), ("ADDED", "b")]
        assert initial[0]["object"]["kind"] == "ConfigMap"
        assert initial[0]["object"]["apiVersion"] == "v1"

        created = await create(stack, "c")
        [event] = await client.events(1)
        assert event == {"type": "ADDED", "object": created}
        await relabel(stack, "c", x="y")
        [event] = await client.events(1)
        assert (event["type"], event["object"]["metadata"]["labels"]) == ("MODIFIED", {"x": "y"})
        assert (await stack.request("DELETE", f"{CMS}/c")).status == 200
        assert names(await client.events(1)) == [("DELETED", "c")]


async def test_each_message_is_one_chunk_with_more_body(stack: Stack) -> None:
    async with stack.watch(CMS, query="watch=true") as client:
        await create(stack, "a")
        message = await client.next_message()
        assert message["type"] == "http.response.body"
        assert message["more_body"] is True
        assert message["body"].endswith(b"}\n")
        assert message["body"].startswith(b'{"type":"ADDED","object":{')


async def test_watch_from_a_resource_version_sends_only_later_events(stack: Stack) -> None:
    first = await create(stack, "a")
    await create(stack, "b")
    rv = first["metadata"]["resourceVersion"]
    async with stack.watch(CMS, query=f"watch=1&resourceVersion={rv}") as client:
        assert names(await client.events(1)) == [("ADDED", "b")]
        await asyncio.sleep(0.05)
        assert client.pending() == 0


async def test_legacy_watch_path_and_single_object_watch(stack: Stack) -> None:
    await create(stack, "a")
    await create(stack, "b")
    async with stack.watch("/api/v1/watch/namespaces/default/configmaps/b") as client:
        assert names(await client.events(1)) == [("ADDED", "b")]
        await relabel(stack, "a", x="1")
        await relabel(stack, "b", x="2")
        assert names(await client.events(1)) == [("MODIFIED", "b")]


async def test_bookmarks_when_allowed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "BOOKMARK_INTERVAL_SECONDS", 0.1)
    await create(stack, "a")
    async with stack.watch(CMS, query="watch=1&allowWatchBookmarks=true") as client:
        assert names(await client.events(1)) == [("ADDED", "a")]
        [bookmark] = await client.events(1, timeout=2.0)
        assert bookmark == {"type": "BOOKMARK", "object": {
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"resourceVersion": str(stack.cacher.revision)}}}


async def test_no_bookmarks_unless_allowed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "BOOKMARK_INTERVAL_SECONDS", 0.05)
    async with stack.watch(CMS, query="watch=1") as client:
        await asyncio.sleep(0.3)
        assert client.pending() == 0


async def test_watch_list_ends_initial_events_with_an_annotated_bookmark(stack: Stack) -> None:
    await create(stack, "a")
    await create(stack, "b")
    revision = stack.cacher.revision
    query = ("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
             "&allowWatchBookmarks=true")
    async with stack.watch(CMS, query=query) as client:
        events = await client.events(3)
        assert names(events[:2]) == [("ADDED", "a"), ("ADDED", "b")]
        assert events[2] == {"type": "BOOKMARK", "object": {
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"resourceVersion": str(revision),
                         "annotations": {"k8s.io/initial-events-end": "true"}}}}
        await create(stack, "c")
        assert names(await client.events(1)) == [("ADDED", "c")]


async def test_watch_list_with_nothing_to_send_still_ends_initial_events(stack: Stack) -> None:
    query = ("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
             "&allowWatchBookmarks=true")
    async with stack.watch("/api/v1/namespaces/empty/configmaps", query=query) as client:
        [bookmark] = await client.events(1)
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["annotations"] == {
            "k8s.io/initial-events-end": "true"}


async def test_send_initial_events_without_bookmarks_is_422(stack: Stack) -> None:
    response = await stack.request(
        "GET", CMS, query="watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
    assert response.status == 422
    assert response.json()["message"] == (
        "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
        "allowWatchBookmarks to true")


async def test_send_initial_events_without_not_older_than_is_422(stack: Stack) -> None:
    response = await stack.request(
        "GET", CMS, query="watch=1&sendInitialEvents=true&allowWatchBookmarks=true")
    assert response.status == 422


async def test_timeout_seconds_ends_the_stream(stack: Stack) -> None:
    await create(stack, "a")
    started = time.monotonic()
    async with stack.watch(CMS, query="watch=1&timeoutSeconds=1") as client:
        assert names(await client.events(1)) == [("ADDED", "a")]
        last = await client.next_message(timeout=3.0)
        assert last == {"type": "http.response.body", "body": b""}
        assert client.task is not None
        await asyncio.wait_for(client.task, 1.0)
    assert 0.9 <= time.monotonic() - started < 2.5


async def test_negative_timeout_is_400(stack: Stack) -> None:
    response = await stack.request("GET", CMS, query="watch=1&timeoutSeconds=-1")
    assert response.status == 400


async def test_zero_timeout_means_the_default(stack: Stack) -> None:
    async with stack.watch(CMS, query="watch=1&timeoutSeconds=0") as client:
        await asyncio.sleep(0.2)
        assert client.task is not None
        assert not client.task.done()


@pytest.mark.parametrize("stack", [{"history_limit": 2}], indirect=True)
async def test_too_old_resource_version_is_one_410_error_event(stack: Stack) -> None:
    first = await create(stack, "a")
    for name in ("b", "c", "d"):
        await create(stack, name)
    rv = first["metadata"]["resourceVersion"]
    response = await stack.request("GET", CMS, query=f"watch=1&resourceVersion={rv}")
    assert response.status == 200
    assert response.body.endswith(b"\n")
    [line] = response.body.splitlines()
    event = orjson.loads(line)
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["apiVersion"], status["status"], status["code"],
            status["reason"]) == ("Status", "v1", "Failure", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {rv} (")
    assert response.messages[-1].get("more_body", False) is False


async def test_selector_transitions_are_deleted_and_added(stack: Stack) -> None:
    await create(stack, "a", app="web")
    await create(stack, "b", app="db")
    async with stack.watch(CMS, query="watch=1&labelSelector=app%3Dweb") as client:
        assert names(await client.events(1)) == [("ADDED", "a")]
        await relabel(stack, "a", app="db")
        [gone] = await client.events(1)
        assert (gone["type"], gone["object"]["metadata"]["labels"]) == ("DELETED",
                                                                         {"app": "db"})
        await relabel(stack, "b", app="web")
        assert names(await client.events(1)) == [("ADDED", "b")]


async def test_table_watch_sends_column_definitions_once(stack: Stack) -> None:
    created = await create(stack, "a")
    headers = [("accept", KUBECTL_TABLE)]
    async with stack.watch(CMS, query="watch=1", headers=headers) as client:
        [first] = await client.events(1)
        table = first["object"]
        assert first["type"] == "ADDED"
        assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
        assert [c["name"] for c in table["columnDefinitions"]][:1] == ["Name"]
        assert table["metadata"] == {"resourceVersion": created["metadata"]["resourceVersion"]}
        [row] = table["rows"]
        assert row["cells"][0] == "a"
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["name"] == "a"

        await create(stack, "b")
        [second] = await client.events(1)
        assert second["object"]["kind"] == "Table"
        assert second["object"]["columnDefinitions"] == []
        assert second["object"]["rows"][0]["cells"][0] == "b"


async def test_table_watch_without_initial_objects_puts_columns_in_the_first_live_event(
        stack: Stack) -> None:
    headers = [("accept", KUBECTL_TABLE)]
    async with stack.watch(CMS, query="watch=1&includeObject=Object",
                           headers=headers) as client:
        await create(stack, "a")
        [first] = await client.events(1)
        assert first["object"]["columnDefinitions"] != []
        assert first["object"]["rows"][0]["object"]["kind"] == "ConfigMap"
        await create(stack, "b")
        [second] = await client.events(1)
        assert second["object"]["columnDefinitions"] == []


async def test_client_disconnect_ends_the_handler_promptly(stack: Stack) -> None:
    client = stack.watch(CMS, query="watch=1&allowWatchBookmarks=true")
    async with client:
        await asyncio.sleep(0.05)
        client.disconnect()
        assert client.task is not None
        started = time.monotonic()
        await asyncio.wait_for(client.task, 1.0)
        assert time.monotonic() - started < 0.5
    # The cache forgot the watcher: a later change reaches nobody.
    assert stack.cacher._watchers == {}


async def test_frames_for_one_event_are_encoded_once_and_shared(stack: Stack) -> None:
    async with stack.watch(CMS, query="watch=1") as one, \
            stack.watch(CMS, query="watch=1&labelSelector=") as two:
        await create(stack, "a")
        chunk_one = await one.next_chunk()
        chunk_two = await two.next_chunk()
        assert chunk_one == chunk_two
        assert chunk_one is chunk_two


async def test_watchers_with_different_representations_get_their_own_frames(
        stack: Stack) -> None:
    plain: WatchClient = stack.watch(CMS, query="watch=1")
    table: WatchClient = stack.watch(CMS, query="watch=1", headers=[("accept", KUBECTL_TABLE)])
    async with plain, table:
        await create(stack, "warmup")
        await plain.next_chunk()
        await table.next_chunk()
        await create(stack, "a")
        plain_chunk = await plain.next_chunk()
        table_chunk = await table.next_chunk()
        assert orjson.loads(plain_chunk)["object"]["kind"] == "ConfigMap"
        assert orjson.loads(table_chunk)["object"]["kind"] == "Table"


async def test_a_resource_version_the_history_byte_budget_forgot_is_410(
        tmp_path: pathlib.Path) -> None:
    async with stack_with(tmp_path, history_bytes_limit=50_000) as stack:
        first = (await stack.request("POST", CMS, body=configmap("a", blob="x" * 20_000))).json()
        for i in range(3):
            response = await stack.request("PUT", f"{CMS}/a", body=configmap(
                "a", blob="x" * 20_000, i=str(i)))
            assert response.status == 200, response.body
        # Three replaced states of ~20 KB are over the 50 KB budget: the oldest went.
        rv = first["metadata"]["resourceVersion"]
        response = await stack.request("GET", CMS, query=f"watch=1&resourceVersion={rv}")
        [line] = response.body.splitlines()
        event = orjson.loads(line)
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        assert event["object"]["message"].startswith(f"too old resource version: {rv} (")
        # A list's resourceVersion is always recent enough to watch from.
        listed = (await stack.request("GET", CMS)).json()
        async with stack.watch(CMS, query="watch=1&resourceVersion="
                               + listed["metadata"]["resourceVersion"]) as client:
            await stack.request("DELETE", f"{CMS}/a")
            assert names(await client.events(1)) == [("DELETED", "a")]


# -- a client that does not read ----------------------------------------------------------


class StalledClient:
    """A watch client that stops reading once ``window`` bytes wait for it.

    Its ``send`` then waits until the client goes away, as uvicorn's does while the socket
    buffer is over its high-water mark (uvicorn waits before a write, then writes the
    whole message), so ``accepted`` is all the server could have had to buffer."""

    def __init__(self, stack: Stack, path: str, *, query: str, window: int) -> None:
        self._scope = make_scope("GET", path, query=query)
        self._app = stack.app
        self._window = window
        self._gone = asyncio.Event()
        self._requested = False
        self.accepted = 0
        self.stalled = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StalledClient:
        self.task = asyncio.create_task(self._app(self._scope, self._receive, self._send))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._gone.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5.0)

    async def wait_stalled(self) -> None:
        """Until the server waits for this client to read."""
        try:
            await asyncio.wait_for(self.stalled.wait(), 5.0)
        except TimeoutError:
            pytest.fail(f"the server never waited for the client; it took {self.accepted} "
                        "bytes and stopped sending")

    async def _receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            return
        if self.accepted >= self._window:
            self.stalled.set()
            await self._gone.wait()
            return  # uvicorn drops what is sent after the client left
        self.accepted += len(message.get("body", b""))


@contextlib.asynccontextmanager
async def stack_with(directory: pathlib.Path, *,
                     watcher_queue_limit: int = DEFAULT_WATCHER_QUEUE_LIMIT,
                     history_bytes_limit: int = DEFAULT_HISTORY_BYTES_LIMIT,
                     ) -> AsyncIterator[Stack]:
    """The conftest's stack, with a cache of the given limits."""
    backend = SQLiteBackend(directory / "kplane.db")
    await backend.start()
    catalog = Catalog()
    cacher = Cacher(backend, CacheDecoder(catalog), watcher_queue_limit=watcher_queue_limit,
                    history_bytes_limit=history_bytes_limit)
    await cacher.start()
    store = Store(backend=backend, cacher=cacher, catalog=catalog)
    await bootstrap(store)
    app = KplaneApp(store=store, catalog=catalog, server_address="127.0.0.1:6443",
                    is_ready=lambda: True)
    try:
        yield Stack(backend, cacher, catalog, store, app)
    finally:
        await cacher.stop()
        await backend.close()


BIG_NAMESPACE = "default"
BIG = f"/api/v1/namespaces/{BIG_NAMESPACE}/configmaps"


async def fill(stack: Stack, count: int, size: int) -> int:
    """``count`` ConfigMaps of ``size`` bytes of data; how many bytes a list of them is."""
    for i in range(count):
        body = configmap(f"cm-{i:04}", BIG_NAMESPACE, blob="x" * size)
        await stack.store.create(Target(builtin.CONFIGMAPS, "root", BIG_NAMESPACE, ""), body,
                                 WriteOptions())
    listed = await stack.request("GET", BIG)
    assert listed.status == 200
    return len(listed.body)


def watchers(stack: Stack) -> int:
    return sum(len(bucket) for bucket in stack.cacher._watchers.values())


async def test_a_watch_never_read_holds_one_chunk_not_the_collection(
        tmp_path: pathlib.Path) -> None:
    window = 64 * 1024
    async with stack_with(tmp_path) as stack:
        collection = await fill(stack, 400, 10_000)
        assert collection > 4_000_000
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            async with StalledClient(stack, BIG, query="watch=1&resourceVersion=0",
                                     window=window) as stalled:
                await stalled.wait_stalled()
                held = tracemalloc.get_traced_memory()[0] - before
                # Handed to the server: up to the window, then one chunk (a frame more at
                # most) that it buffers and that makes it stop taking more.
                assert stalled.accepted <= window + watch_module.INITIAL_CHUNK_BYTES + 11_000
                # Encoded as sent: the watch holds about a chunk, not the 4 MB collection.
                assert held < 1_000_000, held

                # Others are served meanwhile: a normal watcher gets every object.
                async with stack.watch(BIG, query="watch=1") as normal:
                    events = await normal.events(400)
                    assert [e["object"]["metadata"]["name"] for e in events] == [
                        f"cm-{i:04}" for i in range(400)]
                    assert {e["type"] for e in events} == {"ADDED"}
                assert stalled.task is not None and not stalled.task.done()
        finally:
            tracemalloc.stop()
        # The stalled watch ends with its client, and the cache forgets it.
        assert stalled.task.done()
        assert watchers(stack) == 0


async def test_live_events_for_a_stalled_watch_are_bounded_by_its_queue(
        tmp_path: pathlib.Path) -> None:
    async with stack_with(tmp_path, watcher_queue_limit=3) as stack:
        await fill(stack, 40, 10_000)
        async with StalledClient(stack, BIG, query="watch=1&resourceVersion=0",
                                 window=64 * 1024) as stalled, \
                stack.watch(BIG, query="watch=1&resourceVersion=0") as normal:
            await stalled.wait_stalled()
            assert len(await normal.events(40)) == 40
            assert watchers(stack) == 2
            for i in range(4):
                await stack.store.create(
                    Target(builtin.CONFIGMAPS, "root", BIG_NAMESPACE, ""),
                    configmap(f"late-{i}", BIG_NAMESPACE), WriteOptions())
            # One event over the queue limit: the stalled watch is dropped (its queue with
            # it), and the reading one receives every event.
            late = await normal.events(4)
            assert [e["object"]["metadata"]["name"] for e in late] == [
                f"late-{i}" for i in range(4)]
            assert watchers(stack) == 1
            accepted = stalled.accepted
        assert stalled.accepted == accepted


async def test_a_client_gone_mid_initial_events_stops_the_encoding(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack_with(tmp_path) as stack:
        await fill(stack, 100, 10_000)
        monkeypatch.setattr(watch_module, "INITIAL_CHUNK_BYTES", 20_000)
        chunks: list[bytes] = []
        client = stack.watch(BIG, query="watch=1&resourceVersion=0")
        original = client._send

        async def send(message: Message) -> None:
            await original(message)
            if message["type"] == "http.response.body" and message.get("body"):
                chunks.append(message["body"])
                if len(chunks) == 2:
                    client.disconnect()
                    await asyncio.sleep(0)  # let the server see the disconnect

        client._send = send  # type: ignore[method-assign]
        async with client:
            assert client.task is not None
            await asyncio.wait_for(client.task, 5.0)
        # Two frames per chunk; nothing was encoded for the 96 objects after the client left.
        assert len(chunks) == 2
        assert sum(chunk.count(b"\n") for chunk in chunks) == 4
