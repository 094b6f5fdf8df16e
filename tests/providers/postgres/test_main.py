"""The console script's start-up: clear exits for unusable configuration, and a signal during
start-up ends it promptly. Runs the installed ``kplane-postgres-provider`` as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.e2e.server import free_port
from tests.providers.postgres.pg_server import PostgresServer

PROVIDER_BIN = Path(sys.executable).parent / "kplane-postgres-provider"


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {server}\n"
        "    insecure-skip-tls-verify: true\n"
        "users:\n- name: u\n  user:\n    token: t\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n")
    return path


def run(*args: str, dsn: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KPLANE_POSTGRES_DSN"}
    if dsn is not None:
        env["KPLANE_POSTGRES_DSN"] = dsn
    return subprocess.run([str(PROVIDER_BIN), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # Nothing listens there: start-up fails at the first request, if it gets that far.
    return kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{free_port()}")


def test_a_dsn_is_required(config: Path) -> None:
    result = run("--kubeconfig", str(config), "--workspace", "root:p")
    assert result.returncode == 2
    assert "--postgres-dsn" in result.stderr


def test_a_unix_socket_dsn_needs_a_public_host(config: Path) -> None:
    result = run("--kubeconfig", str(config), "--workspace", "root:p",
                 dsn="host=/var/run/postgresql user=x")
    assert result.returncode == 2
    assert "--public-host" in result.stderr


def test_unreachable_postgres(config: Path) -> None:
    result = run("--kubeconfig", str(config), "--workspace", "root:p",
                 dsn=f"host=127.0.0.1 port={free_port()} user=x connect_timeout=5")
    assert result.returncode == 2
    assert "cannot reach PostgreSQL" in result.stderr


@pytest.fixture
def ordinary_user(pg: PostgresServer) -> Iterator[str]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE plain_user LOGIN PASSWORD {}").format(
            sql.Literal("plain-pw")))
    yield f"postgresql://plain_user:plain-pw@{pg.host}:{pg.port}/postgres"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE plain_user")


def test_a_superuser_is_required(config: Path, ordinary_user: str) -> None:
    result = run("--kubeconfig", str(config), "--workspace", "root:p", dsn=ordinary_user)
    assert result.returncode == 2
    assert "must be a PostgreSQL superuser" in result.stderr


def test_unreachable_kplane(config: Path, pg: PostgresServer) -> None:
    result = run("--kubeconfig", str(config), "--workspace", "root:p", dsn=pg.url())
    assert result.returncode == 2
    assert "cannot reach kplane" in result.stderr


def test_a_missing_kubeconfig(tmp_path: Path, pg: PostgresServer) -> None:
    result = run("--kubeconfig", str(tmp_path / "nope"), "--workspace", "root:p",
                 dsn=pg.url())
    assert result.returncode == 2
    assert "cannot read kubeconfig" in result.stderr


def test_a_signal_during_start_up_stops_it(tmp_path: Path, pg: PostgresServer) -> None:
    # A server that accepts connections and never answers: start-up hangs in its first
    # request, as it would against a wedged API server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = kubeconfig(tmp_path / "kubeconfig",
                            f"https://127.0.0.1:{silent.getsockname()[1]}")
        log_path = tmp_path / "provider.log"
        with log_path.open("w") as log:
            env = {**os.environ, "KPLANE_POSTGRES_DSN": pg.url()}
            process = subprocess.Popen(
                [str(PROVIDER_BIN), "--kubeconfig", str(config), "--workspace", "root:p"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                deadline = time.monotonic() + 30
                while "reachable" not in log_path.read_text():
                    assert process.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.05)
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=10) == 0, log_path.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
