"""Helpers for the HTTP-layer tests: the real stack in-process, driven over raw ASGI.

The app is called directly as ``app(scope, receive, send)``; nothing listens on a socket.
That lets a test feed the body in chunks, disconnect the client at a chosen moment, and read
a streaming watch one ``http.response.body`` message at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from kplane.auth.authn import UserInfo
from kplane.registry.catalog import Catalog
from kplane.registry.store import Store
from kplane.server.app import KplaneApp
from kplane.server.tls import TLS_EXTENSION
from kplane.server.types import Message
from kplane.storage.cacher import Cacher
from kplane.storage.sqlite import SQLiteBackend

ADMIN = UserInfo(name="admin", groups=("system:masters", "system:authenticated"))
ANONYMOUS: UserInfo | None = None
STREAM_TIMEOUT = 5.0


@dataclass
class Response:
    """Everything one request sent back."""

    status: int
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]
    messages: list[dict[str, Any]]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower().encode()
        return [v.decode("utf-8") for k, v in self.headers if k.lower() == wanted]


def make_scope(method: str, path: str, *, query: str = "",
               headers: Iterable[tuple[str, str]] = (),
               user: UserInfo | None = ADMIN, raw_path: str | None = None) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it; ``user`` None means no client certificate."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "https", "path": path,
        "raw_path": (raw_path if raw_path is not None else quote(path)).encode(),
        "query_string": query.encode("latin-1"), "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 6443),
        "extensions": {},
    }
    if user is not None:
        scope["extensions"][TLS_EXTENSION] = {
            "client_cert_der": None, "user": user, "not_after": math.inf,
        }
    return scope


@dataclass
class Stack:
    """The real server stack over a temporary SQLite file."""

    backend: SQLiteBackend
    cacher: Cacher
    catalog: Catalog
    store: Store
    app: KplaneApp
    ready: list[bool] = field(default_factory=lambda: [True])

    async def request(self, method: str, path: str, *, query: str = "",
                      headers: Iterable[tuple[str, str]] = (), body: bytes | Any = b"",
                      user: UserInfo | None = ADMIN,
                      chunks: list[bytes] | None = None) -> Response:
        """One complete request; ``body`` that is not bytes is sent as JSON."""
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        header_list = list(headers)
        names = {k.lower() for k, _ in header_list}
        if raw and "content-type" not in names:
            header_list.append(("content-type", "application/json"))
        parts = chunks if chunks is not None else [raw]
        incoming: list[dict[str, Any]] = [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop(0)
            await asyncio.sleep(3600)  # a client that has sent everything waits for the reply
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(dict(message))

        scope = make_scope(method, path, query=query, headers=header_list, user=user)
        await asyncio.wait_for(self.app(scope, receive, send), STREAM_TIMEOUT)
        return collect(sent)

    def watch(self, path: str, *, query: str = "",
              headers: Iterable[tuple[str, str]] = ()) -> WatchClient:
        return WatchClient(self.app, make_scope("GET", path, query=query, headers=headers))


def collect(sent: list[dict[str, Any]]) -> Response:
    start = sent[0]
    assert start["type"] == "http.response.start"
    chunks = [m.get("body", b"") for m in sent[1:] if m["type"] == "http.response.body"]
    return Response(start["status"], list(start.get("headers", [])), chunks, sent)


class WatchClient:
    """A streaming request whose response is read message by message."""

    def __init__(self, app: KplaneApp, scope: dict[str, Any]) -> None:
        self._app = app
        self._scope = scope
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._disconnect = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.receive_calls = 0

    async def __aenter__(self) -> WatchClient:
        self.task = asyncio.create_task(self._app(self._scope, self._receive, self._send))
        start = await self.next_message()
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.headers = list(start["headers"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.disconnect()
        assert self.task is not None
        try:
            await asyncio.wait_for(self.task, STREAM_TIMEOUT)
        finally:
            if not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task

    async def _receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        if self.receive_calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        await self._sent.put(dict(message))

    def disconnect(self) -> None:
        self._disconnect.set()

    async def next_message(self, timeout: float = STREAM_TIMEOUT) -> dict[str, Any]:
        return await asyncio.wait_for(self._sent.get(), timeout)

    async def next_chunk(self, timeout: float = STREAM_TIMEOUT) -> bytes:
        message = await self.next_message(timeout)
        assert message["type"] == "http.response.body", message
        body: bytes = message.get("body", b"")
        return body

    async def events(self, count: int, timeout: float = STREAM_TIMEOUT) -> list[dict[str, Any]]:
        """The next ``count`` watch events, however the frames were split into chunks."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            chunk = await self.next_chunk(timeout)
            assert chunk.endswith(b"\n"), chunk
            out.extend(orjson.loads(line) for line in chunk.splitlines())
        assert len(out) == count, out
        return out

    def pending(self) -> int:
        return self._sent.qsize()


def configmap(name: str, namespace: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}
