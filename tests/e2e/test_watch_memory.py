"""Watches whose clients never read, against a real HTTPS server (uvicorn, TLS, uvloop).

A hostile client can open watches on a large collection and never read them. The server
must then stop producing once the connection's buffers are full, instead of holding the
whole collection for every such watch, and go on serving everyone else.

The server runs in this process, in a thread with its own uvloop loop, built as
``kplane serve`` builds it (``build_server_config``: TLS, kplane's protocol and transport
wrapper), so the test can count what the app handed to each connection and read
uvicorn's flow-control state: deterministic measures, where a separate process would
leave only its RSS. The clients are raw TLS sockets and httpx over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import uvicorn
import uvloop
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from kplane.auth.pki import Pki, ensure_pki
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.server.app import KplaneApp
from kplane.server.runtime import bootstrap
from kplane.server.tls import build_server_config, listening_ports
from kplane.server.watch import INITIAL_CHUNK_BYTES
from kplane.storage.cacher import Cacher
from kplane.storage.sqlite import SQLiteBackend

NAMESPACE = "default"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
OBJECTS = 300
OBJECT_BYTES = 80_000  # a list of them is about 24 MB
NEVER_READING = 5
CLIENT_RCVBUF = 64 * 1024
# What the server process may hold for one connection besides the kernel's buffers:
# uvloop's TLS write buffer (uvicorn is paused at its high-water mark, 512 KiB) and the
# socket transport's (64 KiB), each overshot by at most the chunk (with the frame that
# completes it) written when it crossed its mark; plus 64 KiB of slack.
USERLAND_ALLOWANCE = 512 * 1024 + 64 * 1024 + 2 * (INITIAL_CHUNK_BYTES + OBJECT_BYTES + 1024) \
    + 64 * 1024
T = TypeVar("T")


def kernel_send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to by itself (net.ipv4.tcp_wmem)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return 4 * 1024 * 1024


class InProcessServer:
    """kplane's stack behind a real uvicorn HTTPS server, on a uvloop loop in a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pki: Pki = ensure_pki(directory, hosts=[])
        # Client port -> body bytes the app handed to that connection (sends that returned).
        self.produced: dict[int, int] = {}
        self.cacher: Cacher | None = None
        self.server: uvicorn.Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the in-process server did not start")
        if self._failure is not None:
            raise RuntimeError("the in-process server failed to start") from self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self._thread.join(30)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{listening_ports(self.server)[0]}"

    @property
    def port(self) -> int:
        assert self.server is not None
        return listening_ports(self.server)[0]

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function()`` on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(_awaited(function), self.loop).result(30)

    def _run(self) -> None:
        try:
            uvloop.run(self._main())
        except BaseException as exc:  # reported to the test thread by __enter__
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        backend = SQLiteBackend(self.directory / "kplane.db")
        await backend.start()
        catalog = Catalog()
        cacher = self.cacher = Cacher(backend, CacheDecoder(catalog))
        await cacher.start()
        try:
            store = Store(backend=backend, cacher=cacher, catalog=catalog)
            await bootstrap(store)
            target = Target(builtin.CONFIGMAPS, "root", NAMESPACE, "")
            for i in range(OBJECTS):
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"cm-{i:04}", "namespace": NAMESPACE},
                        "data": {"blob": "x" * OBJECT_BYTES}}
                await store.create(target, body, WriteOptions())
            app = KplaneApp(store=store, catalog=catalog, server_address="127.0.0.1",
                            is_ready=lambda: cacher.ready)
            config = build_server_config(self._counting(app), host="127.0.0.1", port=0,
                                         pki=self.pki, lifespan="off", log_level="warning")
            self.server = uvicorn.Server(config)
            serving = asyncio.create_task(self.server.serve())
            while not self.server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving
        finally:
            await cacher.stop()
            await backend.close()

    def _counting(self, app: KplaneApp) -> Any:
        produced = self.produced

        async def counting_app(scope: Scope, receive: ASGIReceiveCallable,
                               send: ASGISendCallable) -> None:
            client: Any = scope.get("client")
            port: int = client[1] if client else 0

            async def counted(message: Any) -> None:
                await send(message)
                if message["type"] == "http.response.body":
                    produced[port] = produced.get(port, 0) + len(message.get("body", b""))

            await app(scope, receive, counted)  # type: ignore[arg-type]

        return counting_app

    async def connection_states(self) -> dict[int, bool]:
        """Client port -> whether uvicorn is waiting for that client to read."""
        assert self.server is not None
        states: dict[int, bool] = {}
        for protocol in list(self.server.server_state.connections):
            transport: Any = getattr(protocol, "transport", None)
            flow: Any = getattr(protocol, "flow", None)
            if transport is None or flow is None:
                continue
            peer = transport.get_extra_info("peername")
            if peer:
                states[peer[1]] = bool(flow.write_paused)
        return states

    async def watcher_count(self) -> int:
        assert self.cacher is not None
        return sum(len(bucket) for bucket in self.cacher._watchers.values())


async def _awaited(function: Callable[[], Awaitable[T]]) -> T:
    return await function()


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def kplane_in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("watch-memory")) as server:
        yield server


def admin_context(server: InProcessServer) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.pki.ca_cert_path))
    context.load_cert_chain(str(server.pki.admin_cert_path), str(server.pki.admin_key_path))
    return context


def never_reading_watch(server: InProcessServer) -> socket.socket:
    """A watch with initial events whose response is never read."""
    context = admin_context(server)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Set before connecting, so the window the server may fill stays small.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    raw.connect(("127.0.0.1", server.port))
    conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
    conn.sendall(f"GET {CONFIGMAPS}?watch=1&resourceVersion=0 HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\n\r\n".encode())
    return conn


def test_watches_never_read_hold_their_buffers_not_the_collection(
        kplane_in_process: InProcessServer) -> None:
    server = kplane_in_process
    with httpx.Client(base_url=server.url, timeout=30.0,
                      verify=admin_context(server)) as http:
        collection = len(http.get(CONFIGMAPS).content)
    assert collection > 20_000_000

    stalled = [never_reading_watch(server) for _ in range(NEVER_READING)]
    try:
        ports = [conn.getsockname()[1] for conn in stalled]
        rcvbuf = max(conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for conn in stalled)
        # What one connection can absorb: the kernel's buffers on both sides, kplane's.
        bound = kernel_send_buffer_max() + rcvbuf + USERLAND_ALLOWANCE
        assert bound < collection / 3

        def settled() -> bool:
            # Every connection paused by uvicorn's flow control (or one over the bound).
            states = server.call(server.connection_states)
            return all((states.get(port) and server.produced.get(port, 0) > 0)
                       or server.produced.get(port, 0) > bound for port in ports)

        wait_until(settled, "uvicorn waits for every never-reading client")
        produced = {port: server.produced[port] for port in ports}
        assert max(produced.values()) <= bound, (produced, bound)
        states = server.call(server.connection_states)
        assert all(states[port] for port in ports), states
        # The initial events did start, in chunks.
        assert min(produced.values()) >= INITIAL_CHUNK_BYTES

        # A reading watcher meanwhile gets the whole collection, then a live event.
        with httpx.Client(base_url=server.url, timeout=30.0,
                          verify=admin_context(server)) as http, \
                http.stream("GET", CONFIGMAPS,
                            params={"watch": "1", "resourceVersion": "0"}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            initial = [orjson.loads(next(lines)) for _ in range(OBJECTS)]
            assert [e["object"]["metadata"]["name"] for e in initial] == [
                f"cm-{i:04}" for i in range(OBJECTS)]
            created = http.post(CONFIGMAPS, json={
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
            assert created.status_code == 201, created.text
            live = orjson.loads(next(lines))
            assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "late")

        # The stalled watches are still waiting, and produced nothing more than before.
        states = server.call(server.connection_states)
        assert all(states.get(port) for port in ports)
        for port in ports:
            assert server.produced[port] <= bound
    finally:
        for conn in stalled:
            with contextlib.suppress(OSError):
                conn.close()
    # Once their clients leave, the stalled watches end and the cache forgets them.
    wait_until(lambda: server.call(server.watcher_count) == 0,
               "the cache forgets the closed watches")
