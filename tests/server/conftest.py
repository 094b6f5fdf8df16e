"""The ``stack`` fixture: a real server stack over a temporary SQLite file (see harness)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder
from kplane.registry.store import Store
from kplane.server.app import KplaneApp
from kplane.server.runtime import bootstrap
from kplane.storage.cacher import Cacher
from kplane.storage.sqlite import SQLiteBackend
from tests.server.harness import Stack


@pytest.fixture
async def stack(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """Parametrize indirectly with ``{"history_limit": n}`` for a short watch history."""
    settings: dict[str, int] = getattr(request, "param", {})
    backend = SQLiteBackend(tmp_path / "kplane.db")
    await backend.start()
    catalog = Catalog()
    cacher = Cacher(backend, CacheDecoder(catalog),
                    history_limit=settings.get("history_limit", 10_000))
    await cacher.start()
    store = Store(backend=backend, cacher=cacher, catalog=catalog)
    await bootstrap(store)
    ready = [True]
    app = KplaneApp(store=store, catalog=catalog, server_address="127.0.0.1:6443",
                    is_ready=lambda: ready[0])
    try:
        yield Stack(backend, cacher, catalog, store, app, ready)
    finally:
        await cacher.stop()
        await backend.close()
