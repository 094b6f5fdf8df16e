"""A logical cluster whose LogicalCluster is being deleted takes no new content: creates are
refused with 403, while updates, deletes and finalizer removal still pass."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from kplane.registry import builtin
from kplane.registry.kinds.tenancy import LOGICAL_CLUSTER_NAME
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.store import MERGE_PATCH, Store, Target
from kplane.tenancy.lifecycle import (
    LOGICAL_CLUSTER_FINALIZER,
    TerminatingWorkspaces,
    is_being_deleted,
)
from tests.tenancy.test_admission import (
    Tenancy,
    create_workspace,
    ready_child,
    refused,
    tenancy_stack,
)

OPTIONS = WriteOptions(field_manager="test")


@pytest_asyncio.fixture
async def tenancy(tmp_path: pathlib.Path) -> AsyncIterator[Tenancy]:
    async with tenancy_stack(tmp_path) as stack:
        yield stack


def logical_cluster(cluster: str) -> Target:
    return Target(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)


def configmap(cluster: str, name: str) -> Target:
    return Target(builtin.CONFIGMAPS, cluster, "default", name)


async def create_configmap(store: Store, cluster: str, name: str, **meta: Any) -> None:
    await store.create(configmap(cluster, name),
                       {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, **meta}}, OPTIONS)


async def mark_deleted(store: Store, cluster: str) -> None:
    """What the workspace controller does when the workspace is deleted."""
    target = logical_cluster(cluster)
    await store.patch(target, MERGE_PATCH,
                      {"metadata": {"finalizers": [LOGICAL_CLUSTER_FINALIZER]}}, OPTIONS)
    _obj, gone = await store.delete(target, DeleteOptions())
    assert not gone


async def terminating_child(tenancy: Tenancy, name: str = "fam") -> str:
    store = tenancy.store
    child = await ready_child(store, "root", "root", name)
    await store.create(Target(builtin.NAMESPACES, child, "", "default"),
                       {"metadata": {"name": "default"}}, OPTIONS)
    await create_configmap(store, child, "before", finalizers=["example.com/hold"])
    await mark_deleted(store, child)
    return child


def plugin(tenancy: Tenancy) -> TerminatingWorkspaces:
    return TerminatingWorkspaces(cacher=tenancy.store.cacher, resolver=tenancy.resolver)


async def test_creates_in_a_terminating_workspace_are_forbidden(tenancy: Tenancy) -> None:
    store = tenancy.store
    child = await terminating_child(tenancy)
    error = await refused(create_configmap(store, child, "after"))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == ('configmaps "after" is forbidden: unable to create new content '
                             "in workspace root:fam because it is being terminated")
    assert store.get_cached(configmap(child, "after")) is None
    # Every kind: cluster-scoped ones, and Workspaces (the group is named as upstream does).
    namespace = await refused(store.create(Target(builtin.NAMESPACES, child, "", "more"),
                                           {"metadata": {"name": "more"}}, OPTIONS))
    assert namespace.code == 403
    workspace = await refused(create_workspace(store, child, "kid"))
    assert workspace.code == 403
    assert workspace.message.startswith('workspaces.tenancy.kcp.io "kid" is forbidden: '
                                        "unable to create new content in workspace root:fam")


async def test_updates_deletes_and_finalizer_removal_still_work(tenancy: Tenancy) -> None:
    store = tenancy.store
    child = await terminating_child(tenancy)
    before = configmap(child, "before")
    updated = await store.patch(before, MERGE_PATCH, {"data": {"k": "v"}}, OPTIONS)
    assert updated["data"] == {"k": "v"}
    _obj, gone = await store.delete(before, DeleteOptions())
    assert not gone
    await store.patch(before, MERGE_PATCH, {"metadata": {"finalizers": None}}, OPTIONS)
    assert store.get_cached(before) is None
    # The LogicalCluster's status still takes writes (initializers, the controller).
    await store.patch(logical_cluster(child), MERGE_PATCH, {"status": {"phase": "Ready"}},
                      OPTIONS, subresource="status")


async def test_other_workspaces_are_not_affected(tenancy: Tenancy) -> None:
    store = tenancy.store
    await terminating_child(tenancy)
    sibling = await ready_child(store, "root", "root", "sibling")
    await store.create(Target(builtin.NAMESPACES, sibling, "", "default"),
                       {"metadata": {"name": "default"}}, OPTIONS)
    await create_configmap(store, sibling, "fine")
    await create_configmap(store, "root", "fine")
    assert store.get_cached(configmap(sibling, "fine")) is not None
    # A new workspace in the terminating one's parent is fine too.
    await create_workspace(store, "root", "newcomer")


async def test_only_a_real_deletion_timestamp_counts(tenancy: Tenancy) -> None:
    store = tenancy.store
    child = await ready_child(store, "root", "root", "tricky")
    # An annotation named like the field matches the byte search; decoding settles it.
    await store.patch(logical_cluster(child), MERGE_PATCH,
                      {"metadata": {"annotations": {"deletionTimestamp": "soon"}}}, OPTIONS)
    cached = store.get_cached(logical_cluster(child))
    assert cached is not None and b'"deletionTimestamp"' in cached.raw
    assert not is_being_deleted(cached)
    assert not plugin(tenancy).is_terminating(child)
    await store.create(Target(builtin.NAMESPACES, child, "", "ok"),
                       {"metadata": {"name": "ok"}}, OPTIONS)


@pytest.mark.parametrize("cluster", ["root", "abcdefghijklmnop"])
def test_root_and_unknown_clusters_are_not_terminating(tenancy: Tenancy, cluster: str) -> None:
    assert not plugin(tenancy).is_terminating(cluster)


async def test_a_cluster_without_its_logical_cluster_takes_nothing_but_that(
        tenancy: Tenancy) -> None:
    """A workspace purged while a create was on its way: the create must not leave an
    orphan behind. Root (whose namespaces come before its LogicalCluster) is exempt."""
    store = tenancy.store
    gone = await refused(store.create(Target(builtin.NAMESPACES, "abcdefghijklmnop", "", "x"),
                                      {"metadata": {"name": "x"}}, OPTIONS))
    assert (gone.code, gone.reason) == (404, "NotFound")
    assert gone.message == 'workspace "abcdefghijklmnop" not found'
    # The LogicalCluster itself is how a new workspace's cluster comes to exist.
    cluster = await ready_child(store, "root", "root", "new")
    await store.create(Target(builtin.NAMESPACES, cluster, "", "default"),
                       {"metadata": {"name": "default"}}, OPTIONS)
    await store.delete(Target(builtin.LOGICAL_CLUSTERS, "root", "", LOGICAL_CLUSTER_NAME),
                       DeleteOptions())
    await store.create(Target(builtin.NAMESPACES, "root", "", "still-fine"),
                       {"metadata": {"name": "still-fine"}}, OPTIONS)
