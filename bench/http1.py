"""The load generator's HTTP/1.1 client: one asyncio protocol per keep-alive TLS connection.

The benchmark machine has two cores shared by the server and the client, so every
microsecond the client spends is taken from the server. This client is therefore as
thin as it can be: requests are pre-built bytes written straight to the transport, and
responses are parsed by ``httptools`` (the C parser uvicorn itself uses), with no header
objects, no redirects, no cookie jar. Measured against the bare ceiling app it serves
several times more requests per second per core than ``httpx`` or ``aiohttp``.

A connection carries one request at a time (HTTP/1.1 without pipelining, as real
clients do). Long-lived responses (watches) hand each decoded body chunk to a callback.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

BodyCallback = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the CA bundle and the admin client certificate live (paths as strings)."""

    ca: str
    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A server to talk to and the credentials to present."""

    host: str
    port: int
    tls: TlsFiles

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


def client_ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    """Verify the server against the CA and present the client certificate."""
    context = ssl.create_default_context(cafile=tls.ca)
    context.load_cert_chain(tls.cert, tls.key)
    return context


def build_request(
    method: str, path: str, *, authority: str, body: bytes | None = None
) -> bytes:
    """The complete bytes of one HTTP/1.1 request with a JSON body (or none)."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {authority}",
        "Accept: application/json",
        "User-Agent: kplane-bench",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if body is None else head + body


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection; ``request`` for ordinary calls, ``stream`` for watches."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []
        self._status = 0
        self._on_body: BodyCallback | None = None
        self._response: asyncio.Future[Response] | None = None
        self._headers_done: asyncio.Future[int] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, endpoint: Endpoint, context: ssl.SSLContext) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            cls, endpoint.host, endpoint.port, ssl=context, server_hostname=endpoint.host
        )
        return protocol

    async def request(self, raw: bytes) -> Response:
        """Send a complete request and wait for its complete response."""
        transport = self._live_transport()
        self._response = asyncio.get_running_loop().create_future()
        transport.write(raw)
        return await self._response

    async def stream(self, raw: bytes, on_body: BodyCallback) -> int:
        """Send a request whose response never ends; return its status once headers arrive.

        Every body chunk (chunked encoding already removed) goes to ``on_body``.
        """
        transport = self._live_transport()
        self._on_body = on_body
        self._headers_done = asyncio.get_running_loop().create_future()
        transport.write(raw)
        return await self._headers_done

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _live_transport(self) -> asyncio.Transport:
        if self._transport is None or self.closed.done():
            raise ConnectionResetError("connection is closed")
        return self._transport

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionResetError("connection closed by the server"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: Exception) -> None:
        for waiter in (self._response, self._headers_done):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)

    # -- httptools callbacks -----------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._headers_done is not None and not self._headers_done.done():
            self._headers_done.set_result(self._status)

    def on_body(self, body: bytes) -> None:
        if self._on_body is not None:
            self._on_body(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body.clear()
        if self._response is not None and not self._response.done():
            self._response.set_result(Response(self._status, body))
