"""Helpers for the HTTP-layer tests: the real stack in-process, driven over raw ASGI.

The app is called directly as ``app(scope, receive, send)``; nothing listens on a socket.
That lets a test feed the body in chunks, disconnect the client at a chosen moment, and read
a streaming watch one ``http.response.body`` message at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from kplane.auth.authn import UserInfo
from kplane.auth.authorizer import Authorizer
from kplane.auth.pki import ensure_pki
from kplane.auth.serviceaccounts import ServiceAccountTokens
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.store import Store, Target
from kplane.server.app import KplaneApp
from kplane.server.reviews import Reviews
from kplane.server.security import Security
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


def with_app(stack: Stack, **app_options: Any) -> Stack:
    """The same store behind a new app built with ``app_options`` (security, reviews,
    limiter, audit, resolver), for tests of the layers the plain stack leaves out."""
    app = KplaneApp(store=stack.store, catalog=stack.catalog, server_address="127.0.0.1:6443",
                    is_ready=lambda: stack.ready[0], **app_options)
    return Stack(stack.backend, stack.cacher, stack.catalog, stack.store, app, stack.ready)


def cert_user(name: str, *groups: str) -> UserInfo:
    """A client-certificate user (always also in system:authenticated)."""
    return UserInfo(name=name, groups=(*groups, "system:authenticated"))


STATIC_TOKENS = {"alice-token": UserInfo(name="alice", uid="a-1", groups=("devs",))}


async def static_token(token: str) -> UserInfo | None:
    """A stand-in for the static token file: one known token."""
    return STATIC_TOKENS.get(token)


@dataclass
class SecureStack:
    """The stack behind an app with real authentication, RBAC and reviews."""

    stack: Stack
    authorizer: Authorizer
    sa_tokens: ServiceAccountTokens
    security: Security
    reviews: Reviews

    @property
    def app(self) -> KplaneApp:
        return self.stack.app

    async def request(self, method: str, path: str, **options: Any) -> Response:
        return await self.stack.request(method, path, **options)

    async def admin_create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object as system:masters and wait until authorization reflects it."""
        response = await self.stack.request("POST", path, body=body)
        assert response.status == 201, response.json()
        created: dict[str, Any] = response.json()
        await self.authorizer.wait_for(int(created["metadata"]["resourceVersion"]))
        return created

    async def bind(self, cluster: str, role: str, *, user: str = "", group: str = "",
                   name: str = "") -> None:
        """A ClusterRoleBinding of ``role`` in ``cluster`` to one user or group."""
        subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User" if user else "Group",
                   "name": user or group}
        await self.admin_create(
            f"/clusters/{cluster}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name or f"{role}-{user or group}".replace(":", "-")},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": role},
             "subjects": [subject]})

    async def cluster_role(self, cluster: str, name: str, rules: list[dict[str, Any]]) -> None:
        await self.admin_create(
            f"/clusters/{cluster}/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": name}, "rules": rules})

    async def service_account(self, cluster: str, namespace: str, name: str) -> str:
        """Create the namespace (if needed) and the ServiceAccount; return a token for it."""
        await self.stack.request("POST", f"/clusters/{cluster}/api/v1/namespaces",
                                 body={"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": namespace}})
        created = await self.admin_create(
            f"/clusters/{cluster}/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
        token, _ = self.sa_tokens.issue(
            cluster=cluster, namespace=namespace, name=name, uid=created["metadata"]["uid"],
            audiences=list(self.sa_tokens.api_audiences), expiration_seconds=3600)
        return token


@contextlib.asynccontextmanager
async def secured(stack: Stack, pki_dir: Path, **app_options: Any) -> AsyncIterator[SecureStack]:
    """``stack`` served by an app with a real Authorizer, static and ServiceAccount tokens
    (keys from ``ensure_pki(pki_dir)``) and Reviews; ``app_options`` add a limiter, audit."""
    pki = ensure_pki(pki_dir, hosts=[])
    sa_tokens = ServiceAccountTokens(private_key_pem=pki.sa_key_path.read_bytes(),
                                     public_key_pem=pki.sa_pub_path.read_bytes())
    store = stack.store

    def lookup(cluster: str, namespace: str, name: str) -> str | None:
        cached = store.get_cached(Target(builtin.SERVICEACCOUNTS, cluster, namespace, name))
        return None if cached is None else str(orjson.loads(cached.raw)["metadata"]["uid"])

    authenticators = [static_token, sa_tokens.authenticator(lookup=lookup)]
    authorizer = Authorizer(stack.cacher)
    await authorizer.start()
    security = Security(authorizer=authorizer, token_authenticators=authenticators)
    reviews = Reviews(security=security, store=store, token_authenticators=authenticators,
                      service_account_tokens=sa_tokens)
    try:
        yield SecureStack(with_app(stack, security=security, reviews=reviews, **app_options),
                          authorizer, sa_tokens, security, reviews)
    finally:
        await authorizer.stop()
