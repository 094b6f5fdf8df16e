"""Fixtures for the PostgreSQL provider's tests: one real PostgreSQL server per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers.postgres.pg_server import PostgresServer, available


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    if not available():
        pytest.skip("PostgreSQL 15 binaries are not installed")
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
