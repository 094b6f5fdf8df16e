"""Watch streaming over ASGI: framing, initial events, bookmarks, timeouts, errors, Tables."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from kplane.server import watch as watch_module
from tests.server.harness import Stack, WatchClient, configmap

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
