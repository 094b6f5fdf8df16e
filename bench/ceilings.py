"""The ceilings every kplane figure is divided by, measured in the same run.

* **Bare ASGI app** (``python -m bench.ceilings``): the same uvicorn, httptools, uvloop and
  TLS configuration as kplane (it is built with kplane's own ``build_server_config``, so
  the same certificate, the same client-certificate verification, the same keep-alive
  and protocol class), answering each known path with the status, headers and body
  captured from kplane earlier in the run. It does nothing else, so it is the fastest any
  Python ASGI server on this machine can answer those requests; kplane's ratio to it is
  the share of that speed kplane keeps after routing, authentication, authorization and
  the watch cache lookup.
* **Raw SQLite inserts** (:func:`sqlite_inserts`): stdlib ``sqlite3`` writing the bytes of
  the same objects, WAL mode, kplane's default ``synchronous`` setting, either one
  transaction per insert or batches of inserts per transaction (what kplane's group
  commit achieves when many writers are waiting).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

# The bare app must not differ from kplane in anything but the work it does; reusing
# kplane's own TLS glue and synchronous setting is what makes the ratios fair.
from kplane.auth.pki import ensure_pki
from kplane.server.tls import TLS_EXTENSION, build_server_config, run_server
from kplane.server.types import Receive, Scope, Send
from kplane.storage.sqlite import DEFAULT_SYNCHRONOUS

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

# Headers that the server sets itself for every response.
_HOP_HEADERS = frozenset({"content-length", "date", "server", "transfer-encoding", "connection",
                          "keep-alive"})


# -- captured responses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapturedResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def replayable_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers the app should send again (minus those uvicorn adds itself)."""
    return [(name, value) for name, value in headers if name.lower() not in _HOP_HEADERS]


def save_responses(path: Path, responses: dict[str, CapturedResponse]) -> None:
    document = {
        target: {"status": r.status, "headers": r.headers, "body": r.body.decode()}
        for target, r in responses.items()
    }
    path.write_bytes(orjson.dumps(document))


def load_responses(path: Path) -> dict[str, CapturedResponse]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return {
        target: CapturedResponse(
            status=entry["status"],
            headers=[(name, value) for name, value in entry["headers"]],
            body=entry["body"].encode(),
        )
        for target, entry in document.items()
    }


# -- the bare ASGI app ---------------------------------------------------------------------


class _Prepared:
    """A response turned into ready-to-send ASGI messages once, at start-up."""

    __slots__ = ("body", "start")

    def __init__(self, response: CapturedResponse) -> None:
        headers = [(n.lower().encode("latin-1"), v.encode("latin-1"))
                   for n, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        self.start = {"type": "http.response.start", "status": response.status,
                      "headers": headers}
        self.body = {"type": "http.response.body", "body": response.body}


_READY = _Prepared(CapturedResponse(200, [("content-type", "text/plain")], b"ok"))
_UNAUTHORIZED = _Prepared(CapturedResponse(401, [("content-type", "text/plain")], b"no cert"))
_NOT_FOUND = _Prepared(CapturedResponse(404, [("content-type", "text/plain")], b"not found"))


class FixedResponseApp:
    """An ASGI app answering ``path?query`` with a captured response, and nothing else.

    Like kplane it refuses requests whose connection presented no client certificate;
    unlike kplane that is all it checks.
    """

    def __init__(self, responses: dict[str, CapturedResponse]) -> None:
        self._responses = {target: _Prepared(r) for target, r in responses.items()}
        self._responses["/readyz"] = _READY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = self._choose(scope)
        await send(response.start)
        await send(response.body)

    def _choose(self, scope: Scope) -> _Prepared:
        target: str = scope["path"]
        if scope["query_string"]:
            target = f"{target}?{scope['query_string'].decode('latin-1')}"
        if target == "/readyz":
            return _READY
        identity = scope.get("extensions", {}).get(TLS_EXTENSION) or {}
        if identity.get("client_cert_der") is None:
            return _UNAUTHORIZED
        return self._responses.get(target, _NOT_FOUND)


def serve_ceiling_app(*, data_dir: Path, port: int, responses_path: Path) -> None:
    """Serve :class:`FixedResponseApp` over kplane's TLS configuration until SIGTERM."""
    pki = ensure_pki(data_dir, hosts=["127.0.0.1"])
    app = FixedResponseApp(load_responses(responses_path))
    # uvicorn types scopes as TypedDicts; the app, like kplane's, takes plain mappings.
    asgi_app = cast("ASGI3Application", app)
    config = build_server_config(asgi_app, host="127.0.0.1", port=port, pki=pki,
                                 lifespan="off", log_level="warning")
    run_server(config)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the bare ASGI ceiling app of the benchmark")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="a kplane data directory (its pki/ is reused)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--responses", type=Path, required=True,
                        help="JSON file of captured responses by path?query")
    args = parser.parse_args(argv)
    serve_ceiling_app(data_dir=args.data_dir, port=args.port, responses_path=args.responses)


# -- raw SQLite inserts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqliteSpec:
    """Insert ``value`` under fresh keys for ``duration_s``, ``batch`` inserts per commit."""

    path: str
    value: bytes
    batch: int
    duration_s: float
    synchronous: str = DEFAULT_SYNCHRONOUS


@dataclass(slots=True)
class SqliteResult:
    inserts: int = 0
    elapsed_s: float = 0.0
    # Time of each transaction (BEGIN to COMMIT), in seconds.
    commit_latencies: list[float] = field(default_factory=list)


def _open_database(spec: SqliteSpec) -> sqlite3.Connection:
    connection = sqlite3.connect(spec.path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {spec.synchronous}")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    return connection


def sqlite_inserts(spec: SqliteSpec) -> SqliteResult:
    """Insert as many objects as fit in ``duration_s``; runs in a worker process."""
    connection = _open_database(spec)
    result = SqliteResult()
    clock = time.perf_counter
    begin = clock()
    end = begin + spec.duration_s
    sequence = 0
    try:
        while clock() < end:
            rows = [(f"/registry/configmaps/bench/{spec.batch}-{sequence + i}", spec.value)
                    for i in range(spec.batch)]
            sequence += spec.batch
            started = clock()
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", rows)
            connection.execute("COMMIT")
            result.commit_latencies.append(clock() - started)
            result.inserts += spec.batch
        result.elapsed_s = clock() - begin
    finally:
        connection.close()
    return result


if __name__ == "__main__":
    main()
