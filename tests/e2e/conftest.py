"""Fixtures for end-to-end tests: one kplane process per test module, real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import KplaneProcess, free_port


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    base: Path = tmp_path_factory.mktemp("kplane")
    server = KplaneProcess(data_dir=base / "data", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
