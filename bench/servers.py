"""The server processes a benchmark run measures: kplane itself and the bare ceiling app.

Both are started as subprocesses on a free port of 127.0.0.1, with their output going to a
log file in the run's work directory, and are stopped (SIGTERM, then SIGKILL) when the
run ends. :class:`SyncClient` is the small blocking client the orchestrator uses to set
up fixtures and capture responses; it is never used to measure anything.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.http1 import Endpoint, TlsFiles, client_ssl_context

BENCH_ROOT = Path(__file__).resolve().parent
REPO_ROOT = BENCH_ROOT.parent
LOCALHOST = "127.0.0.1"
_STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def kplane_tls(data_dir: Path) -> TlsFiles:
    """The CA and admin client certificate kplane writes under its data directory."""
    pki = data_dir / "pki"
    return TlsFiles(ca=str(pki / "ca.crt"), cert=str(pki / "admin.crt"),
                    key=str(pki / "admin.key"))


@dataclass
class ServerProcess:
    """A started server subprocess and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    endpoint: Endpoint
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""


def _spawn(command: list[str], *, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The ceiling app runs ``python -m bench.ceilings``: bench/ is not an installed package.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                env=env)


def start_kplane(
    *, data_dir: Path, log_path: Path, timeout: float = 60.0, etcd_servers: str = ""
) -> ServerProcess:
    """Start ``kplane serve`` on a free port and wait until ``/readyz`` answers 200.

    With ``etcd_servers`` (comma-separated URLs) it stores in etcd instead of SQLite;
    several servers may then share that etcd and ``data_dir``.
    """
    port = free_port()
    command = [sys.executable, "-m", "kplane.cli.main", "serve", "--data-dir", str(data_dir),
               "--secure-port", str(port), "--bind-address", LOCALHOST]
    if etcd_servers:
        command += ["--etcd-servers", etcd_servers]
    process = _spawn(command, log_path=log_path)
    server = ServerProcess("kplane", process, Endpoint(LOCALHOST, port, kplane_tls(data_dir)),
                           log_path)
    _wait_ready(server, timeout=timeout, files=(data_dir / "admin.kubeconfig",))
    return server


def start_ceiling_app(
    *, data_dir: Path, responses_path: Path, log_path: Path, timeout: float = 30.0
) -> ServerProcess:
    """Start the bare ASGI app of :mod:`bench.ceilings` with kplane's certificates."""
    port = free_port()
    process = _spawn(
        [sys.executable, "-m", "bench.ceilings", "--data-dir", str(data_dir),
         "--port", str(port), "--responses", str(responses_path)],
        log_path=log_path,
    )
    server = ServerProcess("ceiling", process, Endpoint(LOCALHOST, port, kplane_tls(data_dir)),
                           log_path)
    _wait_ready(server, timeout=timeout, files=())
    return server


def _wait_ready(server: ServerProcess, *, timeout: float, files: tuple[Path, ...]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        if all(path.exists() for path in files) and _answers_ready(server.endpoint):
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} not ready within {timeout}s:\n{server.log_tail()}")


def _answers_ready(endpoint: Endpoint) -> bool:
    if not Path(endpoint.tls.cert).exists():
        return False
    try:
        with SyncClient(endpoint) as client:
            status, _, _ = client.request("GET", "/readyz")
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


Headers = list[tuple[str, str]]


class SyncClient:
    """A blocking keep-alive HTTPS client for setup work (not for measurements)."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = 30.0) -> None:
        self._connection = http.client.HTTPSConnection(
            endpoint.host, endpoint.port, context=client_ssl_context(endpoint.tls),
            timeout=timeout)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close()

    def request(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, Headers, bytes]:
        """Send ``body`` (encoded as JSON when given); return status, headers and body."""
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        self._connection.request(method, path, body=payload, headers=headers)
        response = self._connection.getresponse()
        return response.status, response.getheaders(), response.read()

    def expect(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...]) -> bytes:
        """Like :meth:`request`, but fail loudly on an unexpected status."""
        status, _, data = self.request(method, path, body)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {data[:500]!r}")
        return data
