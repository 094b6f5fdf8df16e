"""Streaming a watch to one client.

A watch response is a chunked stream of newline-terminated JSON events. Each change is
encoded once per representation and the frame bytes are shared by every watcher that
receives it (kept in the event's ``memo``). The stream ends at ``timeoutSeconds`` (or a
random 30-60 minutes, as upstream), when the client goes away, or when the cache drops a
watcher that fell too far behind; clients then re-watch from their last resourceVersion.

Memory per watch is bounded however slowly the client reads. The initial events (a whole
collection, possibly tens of megabytes) are encoded as they are sent and handed to the
server in chunks of about ``INITIAL_CHUNK_BYTES``; the server (uvicorn) makes ``send``
wait while its socket buffer is over its high-water mark, so a client that does not read
stops the encoding, and the watch holds about one chunk plus that buffer. Live events
wait in the cache watcher's bounded queue meanwhile; one that overflows is dropped (see
``kplane.storage.cacher``), and the stream ends once the client reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.registry.resources import ResourceType
from kplane.registry.store import WatchStart
from kplane.registry.strategy import Strategy
from kplane.registry.tables import table_for_kind
from kplane.server.metadata_only import partial_object
from kplane.server.types import Receive, Send
from kplane.storage.cacher import CachedObject, CacheEvent

BOOKMARK_INTERVAL_SECONDS = 60.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# Initial events go out in chunks of at least this much (one frame more at most): large
# enough that a normal list leaves in one or a few writes, small next to the collection a
# client that never reads would otherwise make the server buffer whole.
INITIAL_CHUNK_BYTES = 64 * 1024


def default_timeout() -> float:
    return random.uniform(1800, 3600)


def _frame(event_type: str, raw_object: bytes) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + raw_object + b"}\n"


def error_frame(error: StatusError) -> bytes:
    return _frame("ERROR", orjson.dumps(error.to_status()))


class WatchStream:
    """Writes one watch to one client."""

    def __init__(self, *, rt: ResourceType, send: Send, receive: Receive,
                 table_version: str = "", include_object: str = "Metadata",
                 bookmarks: bool = False, timeout: float | None = None,
                 strategy: Strategy | None = None, metadata_version: str = "") -> None:
        self._rt = rt
        self._strategy = strategy or Strategy(rt)
        self._send = send
        self._receive = receive
        self._table_version = table_version
        # Set: every object goes out as PartialObjectMetadata of this meta.k8s.io version.
        self._metadata_version = metadata_version
        self._include_object = include_object
        self._bookmarks = bookmarks
        self._deadline = time.monotonic() + (timeout if timeout is not None else default_timeout())
        self._columns_sent = False
        self._disconnected = asyncio.Event()
        # Event type -> this stream's key into an event's shared frames (built once).
        self._memo_keys: dict[str, str] = {}

    async def _start(self) -> None:
        await self._send({
            "type": "http.response.start", "status": 200,
            "headers": [(b"content-type", b"application/json"),
                        (b"cache-control", b"no-cache, private")],
        })

    async def _write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    def _encode(self, event_type: str, cached: CachedObject) -> bytes:
        if self._metadata_version:
            obj = self._strategy.reading_form(orjson.loads(cached.raw))
            return _frame(event_type, orjson.dumps(partial_object(obj, self._metadata_version)))
        if not self._table_version:
            return _frame(event_type, self._strategy.read_bytes(cached.raw))
        obj = self._strategy.reading_form(orjson.loads(cached.raw))
        return _frame(event_type, self._table_bytes(obj))

    def _table_bytes(self, obj: dict[str, Any]) -> bytes:
        # Like upstream's table convertor, a one-object Table carries that object's version.
        list_meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
        table = table_for_kind(self._strategy, [obj], include_object=self._include_object,
                          list_meta=list_meta, with_column_definitions=not self._columns_sent)
        table["apiVersion"] = f"meta.k8s.io/{self._table_version}"
        self._columns_sent = True
        return orjson.dumps(table)

    def _event_frame(self, event: CacheEvent) -> bytes:
        if self._table_version and not self._columns_sent:
            return self._encode(event.type, event.obj)
        # Watchers of another version of the same custom resource see other bytes.
        memo_key = self._memo_keys.get(event.type)
        if memo_key is None:
            memo_key = self._memo_keys[event.type] = (
                f"{event.type}:{self._rt.api_version}:{self._table_version}:"
                f"{self._include_object}:{self._metadata_version}")
        frame = event.memo.get(memo_key)
        if frame is None:
            frame = event.memo[memo_key] = self._encode(event.type, event.obj)
        return frame

    def _bookmark(self, revision: int, *, initial_events_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self._rt.kind, "apiVersion": self._rt.api_version, "metadata": meta}
        if self._metadata_version:
            # A metadata client decodes every event as PartialObjectMetadata, bookmarks too.
            obj = partial_object(obj, self._metadata_version)
        return _frame("BOOKMARK", orjson.dumps(obj))

    async def _watch_disconnect(self, watcher: Any) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._disconnected.set()
                watcher.close()
                return

    async def send_error(self, error: StatusError) -> None:
        await self._start()
        await self._send({"type": "http.response.body", "body": error_frame(error)})

    async def run(self, start: WatchStart, *, send_initial_end: bool,
                  current_revision: Callable[[], int]) -> None:
        watcher = start.watcher
        listener = asyncio.ensure_future(self._watch_disconnect(watcher))
        try:
            await self._start()
            initial, start.initial = start.initial, []
            await self._send_initial(initial)
            if self._disconnected.is_set():
                return
            if send_initial_end:
                await self._write(self._bookmark(start.revision, initial_events_end=True))
            await self._follow(watcher, current_revision)
        finally:
            watcher.close()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        with contextlib.suppress(Exception):
            await self._send({"type": "http.response.body", "body": b""})

    async def _send_initial(self, objects: list[CachedObject]) -> None:
        """ADDED for each object, encoded only as fast as the client takes them.

        Consumes ``objects``: an object is let go once sent, so a client stuck halfway
        does not keep alive the old states of objects replaced since."""
        objects.reverse()
        chunk: list[bytes] = []
        size = 0
        while objects:
            frame = self._encode("ADDED", objects.pop())
            chunk.append(frame)
            size += len(frame)
            if size >= INITIAL_CHUNK_BYTES:
                # Waits here while the client is not reading (the server's flow control).
                await self._write(b"".join(chunk))
                chunk.clear()
                size = 0
                if self._disconnected.is_set():
                    return
        if chunk:
            await self._write(b"".join(chunk))

    async def _follow(self, watcher: Any, current_revision: Callable[[], int]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._deadline - time.monotonic())
        next_bookmark = (loop.time() + BOOKMARK_INTERVAL_SECONDS if self._bookmarks
                         else math.inf)
        while not self._disconnected.is_set():
            # The same wake-up time until a bookmark is due: the watcher keeps one timer.
            try:
                event = await watcher.next_event_until(min(deadline, next_bookmark))
            except StopAsyncIteration:
                return
            if self._disconnected.is_set():
                return
            if event is None:
                now = loop.time()
                if now >= deadline:
                    return
                if now >= next_bookmark:
                    await self._write(self._bookmark(current_revision()))
                    next_bookmark = now + BOOKMARK_INTERVAL_SECONDS
                continue
            await self._write(self._event_frame(event))
