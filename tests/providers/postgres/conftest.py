"""Fixtures for the PostgreSQL provider's tests: one real PostgreSQL server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.providers.postgres.pg_server import PostgresServer, available


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    if not available():
        # scripts/test installs them where it may; CI (KPLANE_REQUIRE_POSTGRES=1) must not
        # pass by skipping the provider's tests.
        message = "PostgreSQL 15 binaries are not installed (scripts/ensure-postgres)"
        if os.environ.get("KPLANE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
