"""TLS glue: serve HTTPS with uvicorn and tell the ASGI app who the client certificate names.

uvicorn verifies client certificates (given a CA) but does not pass them to the app, and
kplane authenticates users by them. The protocol classes below read the peer certificate
once per connection, right after the handshake, turn it into a :class:`UserInfo` and put
the same read-only mapping into every request's scope::

    scope["extensions"]["kplane.tls"] = {
        "client_cert_der": bytes | None,   # the leaf certificate the client presented
        "user": UserInfo | None,           # who it names (None: no certificate / no CN)
        "not_after": float,                # its expiry, epoch seconds (inf without one)
    }

Parsing per connection rather than per request matters: a kubectl or controller keeps its
connection open for thousands of requests, and watches hold one open for minutes.
The app should read it through :func:`certificate_user`, which also refuses a certificate
that expired while its connection stayed open.

WebSocket upgrades are switched off (``ws="none"``): uvicorn hands an upgraded connection
to a fresh protocol object that would not carry the peer identity, so a WebSocket request
would silently look anonymous.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Mapping
from typing import Any, Literal

import uvicorn
from cryptography import x509
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kplane.auth.authn import UserInfo, user_from_certificate
from kplane.auth.pki import Pki

TLS_EXTENSION = "kplane.tls"

# Longer than client-go's idle-connection timeout (90 s), so the client, not the server,
# closes an idle connection; otherwise a request sent just as the server hangs up fails.
DEFAULT_KEEP_ALIVE_SECONDS = 120
# Thousands of clients (re)connecting at once, e.g. after a restart, must not be refused.
DEFAULT_BACKLOG = 4096
# Watches never finish by themselves; wait this long for ordinary requests, then close.
DEFAULT_GRACEFUL_SHUTDOWN_SECONDS = 5

_NO_CERTIFICATE: Mapping[str, Any] = {
    "client_cert_der": None,
    "user": None,
    "not_after": math.inf,
}


def peer_identity(transport: asyncio.BaseTransport) -> Mapping[str, Any]:
    """The ``kplane.tls`` extension value for a connection whose handshake just completed."""
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return _NO_CERTIFICATE
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return _NO_CERTIFICATE
    return identity_from_der(der)


def identity_from_der(der: bytes) -> Mapping[str, Any]:
    """The extension value for a client certificate given as DER."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return _NO_CERTIFICATE
    return {
        "client_cert_der": der,
        "user": user_from_certificate(cert),
        "not_after": cert.not_valid_after_utc.timestamp(),
    }


def certificate_user(scope: Mapping[str, Any], *, now: float | None = None) -> UserInfo | None:
    """The user the connection's client certificate authenticates, if it is still valid."""
    identity = scope.get("extensions", {}).get(TLS_EXTENSION)
    if identity is None:
        return None
    user: UserInfo | None = identity["user"]
    if user is not None and (time.time() if now is None else now) > identity["not_after"]:
        return None
    return user


class CoalescingTransport:
    """A transport that sends a response's head together with what follows it.

    uvicorn writes a response's status line and headers, then its body, as two writes; over
    TLS each write is a record of its own and a system call. A head is held until the next
    write (the body, normally in the same loop turn) or the end of the turn, then both leave
    as one. Other writes go straight through: a watch's events are not delayed behind one
    another. Everything but writing and closing is the real transport's.
    """

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            self._head = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ``kplane.tls`` scope extension, writing
    through a :class:`CoalescingTransport`."""

    _identity: Mapping[str, Any] = _NO_CERTIFICATE

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)  # type: ignore[arg-type]
        self._identity = peer_identity(transport)

    def on_message_begin(self) -> None:
        # The scope of each request is born here; add the connection's identity to it.
        super().on_message_begin()
        self.scope["extensions"] = {TLS_EXTENSION: self._identity}  # type: ignore[dict-item]


class TlsH11Protocol(H11Protocol):
    """uvicorn's pure-Python h11 protocol, plus the ``kplane.tls`` scope extension.

    h11 builds the scope and starts the app in one method with no hook in between, so
    the app is wrapped per connection instead; slower, but h11 is only a fallback.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_identity(self.app, peer_identity(transport))


def _with_identity(app: ASGI3Application, identity: Mapping[str, Any]) -> ASGI3Application:
    async def app_with_identity(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        scope["extensions"] = {TLS_EXTENSION: identity}  # type: ignore[typeddict-unknown-key, dict-item]
        await app(scope, receive, send)

    return app_with_identity


_PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": TlsHttpToolsProtocol,
    "h11": TlsH11Protocol,
}


def build_server_config(
    app: ASGI3Application,
    *,
    host: str,
    port: int,
    pki: Pki,
    http: Literal["httptools", "h11"] = "httptools",
    loop: Literal["uvloop", "asyncio"] = "uvloop",
    lifespan: Literal["auto", "on", "off"] = "auto",
    keep_alive_seconds: int = DEFAULT_KEEP_ALIVE_SECONDS,
    backlog: int = DEFAULT_BACKLOG,
    graceful_shutdown_seconds: int = DEFAULT_GRACEFUL_SHUTDOWN_SECONDS,
    log_level: str | int | None = None,
) -> uvicorn.Config:
    """A uvicorn configuration serving ``app`` over HTTPS with kplane's certificates.

    Client certificates are optional (``CERT_OPTIONAL``) so that token-only clients can
    connect, but one that is presented must chain to kplane's CA or the handshake fails.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        http=_PROTOCOLS[http],
        ws="none",
        lifespan=lifespan,
        ssl_certfile=str(pki.serving_cert_path),
        ssl_keyfile=str(pki.serving_key_path),
        ssl_ca_certs=str(pki.ca_cert_path),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        access_log=False,
        log_level=log_level,
        # kplane is the edge: X-Forwarded-* from a client must not rewrite its address.
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=keep_alive_seconds,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        backlog=backlog,
    )


def run_server(config: uvicorn.Config) -> None:
    """Serve until SIGINT/SIGTERM, on the event loop the configuration names (uvloop)."""
    uvicorn.Server(config).run()


def listening_ports(server: uvicorn.Server) -> list[int]:
    """The ports a started server listens on (useful with ``port=0``)."""
    return [sock.getsockname()[1] for listener in server.servers for sock in listener.sockets]
