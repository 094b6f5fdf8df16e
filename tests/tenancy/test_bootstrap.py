"""The root logical cluster's bootstrap: its LogicalCluster and WorkspaceTypes, made once."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest_asyncio

from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.store import Store, Target
from kplane.storage.cacher import Cacher
from kplane.storage.sqlite import SQLiteBackend
from kplane.tenancy.bootstrap import (
    MANAGER,
    TYPE_USE_BINDING,
    TYPE_USE_ROLE,
    bootstrap_root,
)
from kplane.tenancy.types import BUILTIN_TYPES

BASE_URL = "https://10.0.0.1:6443/"
ROOT_CLUSTER = Target(builtin.LOGICAL_CLUSTERS, "root", "", "cluster")
TYPE_USE_ROLE_TARGET = Target(builtin.CLUSTERROLES, "root", "", TYPE_USE_ROLE)
TYPE_USE_BINDING_TARGET = Target(builtin.CLUSTERROLEBINDINGS, "root", "", TYPE_USE_BINDING)


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    backend = SQLiteBackend(tmp_path / "kplane.db")
    await backend.start()
    catalog = Catalog()
    cacher = Cacher(backend, CacheDecoder(catalog))
    await cacher.start()
    try:
        yield Store(backend=backend, cacher=cacher, catalog=catalog)
    finally:
        await cacher.stop()
        await backend.close()


def stored(store: Store, target: Target) -> dict[str, Any]:
    cached = store.get_cached(target)
    assert cached is not None, target
    obj: dict[str, Any] = orjson.loads(cached.raw)
    return obj


def workspace_type(name: str) -> Target:
    return Target(builtin.WORKSPACE_TYPES, "root", "", name)


async def test_creates_the_root_logical_cluster(store: Store) -> None:
    await bootstrap_root(store, base_url=BASE_URL)
    root = stored(store, ROOT_CLUSTER)
    annotations = root["metadata"]["annotations"]
    assert annotations["kcp.io/path"] == "root"
    assert annotations["tenancy.kcp.io/workspace-type"] == "root:root"
    assert root["status"]["phase"] == "Ready"
    assert root["status"]["URL"] == "https://10.0.0.1:6443/clusters/root"
    assert root["metadata"]["managedFields"][0]["manager"] == MANAGER


async def test_creates_every_builtin_workspace_type(store: Store) -> None:
    await bootstrap_root(store, base_url=BASE_URL)
    for body in BUILTIN_TYPES:
        name = body["metadata"]["name"]
        assert stored(store, workspace_type(name))["spec"] == body["spec"], name


async def test_lets_every_authenticated_user_use_the_public_types(store: Store) -> None:
    await bootstrap_root(store, base_url=BASE_URL)
    role = stored(store, TYPE_USE_ROLE_TARGET)
    assert role["rules"] == [{"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"],
                              "resourceNames": ["universal", "organization", "team"],
                              "verbs": ["use"]}]
    binding = stored(store, TYPE_USE_BINDING_TARGET)
    assert binding["roleRef"]["name"] == TYPE_USE_ROLE
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:authenticated"}]


async def test_an_older_root_gets_the_role_on_the_next_start(store: Store) -> None:
    await bootstrap_root(store, base_url=BASE_URL)
    for target in (TYPE_USE_BINDING_TARGET, TYPE_USE_ROLE_TARGET):
        await store.delete(target, DeleteOptions())
    await bootstrap_root(store, base_url=BASE_URL)
    assert stored(store, TYPE_USE_BINDING_TARGET)["roleRef"]["name"] == TYPE_USE_ROLE


async def test_is_idempotent(store: Store) -> None:
    await bootstrap_root(store, base_url=BASE_URL)
    names = [ROOT_CLUSTER, *(workspace_type(b["metadata"]["name"]) for b in BUILTIN_TYPES),
             TYPE_USE_ROLE_TARGET, TYPE_USE_BINDING_TARGET]
    versions = [stored(store, t)["metadata"]["resourceVersion"] for t in names]
    revision = await store.backend.current_revision()
    await bootstrap_root(store, base_url="https://elsewhere:1")
    assert [stored(store, t)["metadata"]["resourceVersion"] for t in names] == versions
    assert await store.backend.current_revision() == revision


async def test_keeps_what_an_operator_changed(store: Store) -> None:
    await bootstrap_root(store, base_url=BASE_URL)
    name = BUILTIN_TYPES[0]["metadata"]["name"]
    changed = stored(store, workspace_type(name))
    changed["metadata"].setdefault("labels", {})["edited"] = "yes"
    await store.update(workspace_type(name), changed, WriteOptions(field_manager="op"))
    await bootstrap_root(store, base_url=BASE_URL)
    assert stored(store, workspace_type(name))["metadata"]["labels"]["edited"] == "yes"


async def test_does_not_mutate_the_builtin_definitions(store: Store) -> None:
    before = orjson.dumps(BUILTIN_TYPES)
    await bootstrap_root(store, base_url=BASE_URL)
    assert orjson.dumps(BUILTIN_TYPES) == before
