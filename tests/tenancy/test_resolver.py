"""Path and cluster-name resolution against the watch cache."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from kplane.registry import builtin
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.store import Target
from tests.tenancy.test_admission import Tenancy, create_workspace, ready_child, tenancy_stack


@pytest_asyncio.fixture
async def tenancy(tmp_path: pathlib.Path) -> AsyncIterator[Tenancy]:
    async with tenancy_stack(tmp_path) as stack:
        yield stack


async def test_root_always_resolves(tenancy: Tenancy) -> None:
    assert tenancy.resolver.resolve("root") == "root"
    assert tenancy.resolver.path_of("root") == "root"
    assert tenancy.resolver.cluster_exists("root")


async def test_paths_and_cluster_names_resolve_to_the_same_cluster(tenancy: Tenancy) -> None:
    store = tenancy.store
    org = await ready_child(store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    team = await ready_child(store, org, "root:acme", "team-1",
                             type_ref={"name": "team", "path": "root"})
    resolve = tenancy.resolver.resolve
    assert resolve("root:acme") == org
    assert resolve("root:acme:team-1") == team
    assert resolve(org) == org
    assert resolve(team) == team
    # A path may start from a cluster name, as kcp's paths may.
    assert resolve(f"{org}:team-1") == team
    assert tenancy.resolver.path_of(org) == "root:acme"
    assert tenancy.resolver.path_of(team) == "root:acme:team-1"
    assert tenancy.resolver.child_cluster(org, "team-1") == team
    assert tenancy.resolver.child_cluster("root", "team-1") is None


async def test_unknown_and_malformed_references_resolve_to_nothing(tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    for reference in ("root:nope", "root:acme:nope", "root:nope:acme", "nope",
                      "abcdefghijklmnop", "system:admin", "root:", "ROOT:acme", "",
                      "root:acme:", f"{org}x"):
        assert tenancy.resolver.resolve(reference) is None, reference
    assert tenancy.resolver.path_of("abcdefghijklmnop") is None


async def test_a_workspace_resolves_only_once_its_cluster_exists(tenancy: Tenancy) -> None:
    workspace = await create_workspace(tenancy.store, "root", "pending")
    # Admitted (spec.cluster set) but not yet materialized by the controller.
    assert workspace["spec"]["cluster"]
    assert tenancy.resolver.child_cluster("root", "pending") == workspace["spec"]["cluster"]
    assert tenancy.resolver.resolve("root:pending") is None
    assert tenancy.resolver.resolve(workspace["spec"]["cluster"]) is None


async def test_a_deleted_workspace_stops_resolving(tenancy: Tenancy) -> None:
    store = tenancy.store
    org = await ready_child(store, "root", "root", "gone",
                            type_ref={"name": "organization", "path": "root"})
    assert await store.purge_cluster(org) >= 1
    assert tenancy.resolver.resolve("root:gone") is None
    assert tenancy.resolver.resolve(org) is None
    target = Target(builtin.WORKSPACES, "root", "", "gone")
    _obj, gone = await store.delete(target, DeleteOptions())
    # The workspace finalizer holds the Workspace until the controller has cleaned up.
    assert not gone
    await store.update_with(target, without_finalizers, WriteOptions(field_manager="test"))
    assert tenancy.resolver.child_cluster("root", "gone") is None


def without_finalizers(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["finalizers"] = []
    return obj


async def test_the_same_workspace_name_under_different_parents(tenancy: Tenancy) -> None:
    store = tenancy.store
    a = await ready_child(store, "root", "root", "a",
                          type_ref={"name": "organization", "path": "root"})
    b = await ready_child(store, "root", "root", "b",
                          type_ref={"name": "organization", "path": "root"})
    under_a = await ready_child(store, a, "root:a", "x")
    under_b = await ready_child(store, b, "root:b", "x")
    assert under_a != under_b
    assert tenancy.resolver.resolve("root:a:x") == under_a
    assert tenancy.resolver.resolve("root:b:x") == under_b
