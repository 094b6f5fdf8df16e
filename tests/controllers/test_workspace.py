"""The workspace controller over a real store: Scheduling -> (Initializing ->) Ready, and
recursive deletion of a workspace's logical cluster."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.controllers import workspace as workspace_module
from kplane.controllers.workspace import WorkspaceController
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import LOGICAL_CLUSTER_NAME, WORKSPACE_FINALIZER
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.store import MERGE_PATCH, Store, Target
from kplane.tenancy.lifecycle import LOGICAL_CLUSTER_FINALIZER
from tests.tenancy.test_admission import BASE_URL, Tenancy, create_type, tenancy_stack
from tests.tenancy.test_admission import create_workspace as admit_workspace

WAIT_SECONDS = 5.0


@pytest_asyncio.fixture
async def tenancy(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                  ) -> AsyncIterator[Tenancy]:
    monkeypatch.setattr(workspace_module, "_RETRY_SECONDS", 0.05)
    async with tenancy_stack(tmp_path) as stack:
        controller = WorkspaceController(store=stack.store, catalog=stack.store.catalog,
                                         resolver=stack.resolver, types=stack.types)
        await controller.start()
        try:
            yield stack
        finally:
            await controller.stop()


def workspace_target(cluster: str, name: str) -> Target:
    return Target(builtin.WORKSPACES, cluster, "", name)


def logical_cluster_target(cluster: str) -> Target:
    return Target(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)


def read(store: Store, target: Target) -> dict[str, Any] | None:
    cached = store.get_cached(target)
    return None if cached is None else dict(orjson.loads(cached.raw))


async def until(check: Callable[[], Any], what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not reached in {WAIT_SECONDS}s")


async def in_phase(store: Store, cluster: str, name: str, phase: str) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        obj = read(store, workspace_target(cluster, name))
        return obj if obj and (obj.get("status") or {}).get("phase") == phase else None

    found: dict[str, Any] = await until(current, f"{cluster}/{name} in {phase}")
    return found


async def ready(tenancy: Tenancy, cluster: str, name: str,
                type_ref: dict[str, str] | None = None) -> str:
    """Create a workspace, wait until Ready, return its logical cluster."""
    await admit_workspace(tenancy.store, cluster, name, type_ref=type_ref)
    workspace = await in_phase(tenancy.store, cluster, name, "Ready")
    child: str = workspace["spec"]["cluster"]
    return child


async def names(store: Store, target: Target) -> list[str]:
    return [item.name for item in (await store.list(target, ListOptions())).items]


async def test_a_workspace_becomes_ready_with_its_cluster_and_default_namespace(
        tenancy: Tenancy) -> None:
    store = tenancy.store
    created = await admit_workspace(store, "root", "acme",
                                    type_ref={"name": "organization", "path": "root"})
    child = created["spec"]["cluster"]
    workspace = await in_phase(store, "root", "acme", "Ready")
    assert "initializers" not in workspace["status"]
    logical = read(store, logical_cluster_target(child))
    assert logical is not None
    assert logical["metadata"]["annotations"] == {
        "kcp.io/path": "root:acme", "tenancy.kcp.io/workspace-type": "root:organization",
        "kcp.io/cluster": child}
    assert logical["metadata"]["finalizers"] == [LOGICAL_CLUSTER_FINALIZER]
    assert logical["spec"]["owner"] == {
        "apiVersion": "tenancy.kcp.io/v1alpha1", "resource": "workspaces", "name": "acme",
        "cluster": "root", "uid": created["metadata"]["uid"]}
    assert logical["status"] == {"phase": "Ready", "URL": f"{BASE_URL}/clusters/root:acme",
                                 "initializers": []}
    assert await names(store, Target(builtin.NAMESPACES, child)) == ["default"]
    assert tenancy.resolver.resolve("root:acme") == child
    assert tenancy.types.type_of_cluster(child) == tenancy.types.get("organization", "root")


async def test_nested_workspaces_resolve_along_their_path(tenancy: Tenancy) -> None:
    org = await ready(tenancy, "root", "acme", {"name": "organization", "path": "root"})
    team = await ready(tenancy, org, "team-1", {"name": "team", "path": "root"})
    leaf = await ready(tenancy, team, "leaf")
    assert tenancy.resolver.resolve("root:acme:team-1:leaf") == leaf
    assert tenancy.resolver.path_of(leaf) == "root:acme:team-1:leaf"
    assert len({org, team, leaf}) == 3


async def test_initializers_hold_the_workspace_until_removed(tenancy: Tenancy) -> None:
    store = tenancy.store
    org = await ready(tenancy, "root", "acme", {"name": "organization", "path": "root"})
    await create_type(store, org, "base", {"initializer": True})
    await create_type(store, org, "gated", {"initializer": True,
                                            "extend": {"with": [{"name": "base"}]}})
    created = await admit_workspace(store, org, "held",
                                    type_ref={"name": "gated", "path": "root:acme"})
    child = created["spec"]["cluster"]
    held = await in_phase(store, org, "held", "Initializing")
    both = ["root:acme:gated", "root:acme:base"]
    assert held["status"]["initializers"] == both
    logical = read(store, logical_cluster_target(child))
    assert logical is not None
    assert logical["spec"]["initializers"] == both
    assert logical["status"]["phase"] == "Initializing"
    # The workspace is reachable while initializing: initializers work inside it.
    assert tenancy.resolver.resolve("root:acme:held") == child

    async def set_initializers(remaining: list[str]) -> None:
        await store.patch(logical_cluster_target(child), MERGE_PATCH,
                          {"status": {"initializers": remaining}},
                          WriteOptions(field_manager="initializer"), subresource="status")

    await set_initializers(["root:acme:base"])

    def mirrored() -> bool:
        obj = read(store, workspace_target(org, "held"))
        return bool(obj and obj["status"].get("initializers") == ["root:acme:base"])

    await until(mirrored, "the Workspace mirroring the remaining initializer")
    assert read(store, workspace_target(org, "held"))["status"]["phase"] == "Initializing"  # type: ignore[index]
    await set_initializers([])
    done = await in_phase(store, org, "held", "Ready")
    assert "initializers" not in done["status"]
    final = read(store, logical_cluster_target(child))
    assert final is not None and final["status"]["phase"] == "Ready"


async def test_deleting_a_workspace_removes_its_tree(tenancy: Tenancy) -> None:
    store = tenancy.store
    org = await ready(tenancy, "root", "acme", {"name": "organization", "path": "root"})
    team = await ready(tenancy, org, "team-1", {"name": "team", "path": "root"})
    leaf = await ready(tenancy, team, "leaf")
    sibling = await ready(tenancy, "root", "sibling")
    for cluster in (org, team, leaf, sibling):
        await store.create(Target(builtin.CONFIGMAPS, cluster, "default", "cm"),
                           {"metadata": {"name": "cm"}}, WriteOptions())

    _obj, gone = await store.delete(workspace_target("root", "acme"), DeleteOptions())
    assert not gone  # the finalizer holds it until the tree is gone
    marked = read(store, workspace_target("root", "acme"))
    assert marked is not None and WORKSPACE_FINALIZER in marked["metadata"]["finalizers"]
    await until(lambda: read(store, workspace_target("root", "acme")) is None,
                "the Workspace gone")
    for cluster in (org, team, leaf):
        for rt in (builtin.CONFIGMAPS, builtin.NAMESPACES, builtin.WORKSPACES,
                   builtin.LOGICAL_CLUSTERS):
            assert await names(store, Target(rt, cluster)) == [], (cluster, rt.resource)
        assert tenancy.resolver.resolve(cluster) is None
    for path in ("root:acme", "root:acme:team-1", "root:acme:team-1:leaf"):
        assert tenancy.resolver.resolve(path) is None
    assert await names(store, Target(builtin.CONFIGMAPS, sibling, "default")) == ["cm"]
    assert tenancy.resolver.resolve("root:sibling") == sibling


async def test_deleting_a_workspace_waits_for_the_finalizers_of_its_content(
        tenancy: Tenancy) -> None:
    """As in kcp: a controller holding a finalizer on an object in the workspace (a
    provider that must drop a database) gets to clean up before the content goes."""
    store = tenancy.store
    parent = await ready(tenancy, "root", "team")
    child = await ready(tenancy, parent, "app")
    held = Target(builtin.CONFIGMAPS, child, "default", "held")
    await store.create(held, {"metadata": {"name": "held",
                                           "finalizers": ["example.com/cleanup"]}},
                       WriteOptions())
    plain = Target(builtin.CONFIGMAPS, parent, "default", "plain")
    await store.create(plain, {"metadata": {"name": "plain"}}, WriteOptions())

    await store.delete(workspace_target("root", "team"), DeleteOptions())
    marked = await until(lambda: (read(store, held) or {}).get("metadata", {})
                         .get("deletionTimestamp"), "the held object marked deleted")
    assert marked

    def reported() -> dict[str, Any] | None:
        workspace = read(store, workspace_target(parent, "app"))
        for condition in ((workspace or {}).get("status") or {}).get("conditions") or []:
            if condition["type"] == "WorkspaceContentDeleted":
                return dict(condition)
        return None

    condition = await until(reported, "the waiting reported on the child Workspace")
    assert condition["status"] == "False"
    assert condition["reason"] == "SomeFinalizersRemain"
    assert "example.com/cleanup (1 object)" in condition["message"]
    # Nothing is purged while the finalizer holds: not the child, not its parent.
    await asyncio.sleep(0.3)
    assert read(store, held) is not None
    assert read(store, workspace_target("root", "team")) is not None
    assert tenancy.resolver.resolve(child) == child

    await store.patch(held, MERGE_PATCH, {"metadata": {"finalizers": None}}, WriteOptions())
    await until(lambda: read(store, workspace_target("root", "team")) is None,
                "the parent Workspace gone")
    for cluster in (parent, child):
        assert read(store, logical_cluster_target(cluster)) is None
        assert await names(store, Target(builtin.CONFIGMAPS, cluster)) == []
    assert read(store, plain) is None


async def test_a_workspace_still_initializing_can_be_deleted(tenancy: Tenancy) -> None:
    store = tenancy.store
    await create_type(store, "root", "gated", {"initializer": True})
    created = await admit_workspace(store, "root", "held",
                                    type_ref={"name": "gated", "path": "root"})
    child = created["spec"]["cluster"]
    await in_phase(store, "root", "held", "Initializing")
    await store.delete(workspace_target("root", "held"), DeleteOptions())
    await until(lambda: read(store, workspace_target("root", "held")) is None,
                "the Workspace gone")
    assert read(store, logical_cluster_target(child)) is None
    assert tenancy.resolver.resolve("root:held") is None


def deletion_marked(store: Store, cluster: str) -> bool:
    logical = read(store, logical_cluster_target(cluster))
    return bool(logical and logical["metadata"].get("deletionTimestamp"))


async def create_configmap(store: Store, cluster: str, name: str, **meta: Any) -> None:
    await store.create(Target(builtin.CONFIGMAPS, cluster, "default", name),
                       {"metadata": {"name": name, **meta}}, WriteOptions())


async def test_a_deleted_workspace_and_its_subtree_refuse_new_content(
        tenancy: Tenancy) -> None:
    store = tenancy.store
    org = await ready(tenancy, "root", "fam", {"name": "organization", "path": "root"})
    team = await ready(tenancy, org, "team-1", {"name": "team", "path": "root"})
    leaf = await ready(tenancy, team, "leaf")
    held = Target(builtin.CONFIGMAPS, leaf, "default", "held")
    await create_configmap(store, leaf, "held", finalizers=["example.com/cleanup"])

    await store.delete(workspace_target("root", "fam"), DeleteOptions())
    await until(lambda: all(deletion_marked(store, c) for c in (org, team, leaf)),
                "the LogicalClusters of the subtree marked deleted")
    # The finalizer on `held` keeps the whole tree in place meanwhile.
    for cluster, path in ((org, "root:fam"), (team, "root:fam:team-1"),
                          (leaf, "root:fam:team-1:leaf")):
        with pytest.raises(StatusError) as refused:
            await create_configmap(store, cluster, "late")
        assert (refused.value.code, refused.value.reason) == (403, "Forbidden")
        assert f"in workspace {path} because it is being terminated" in refused.value.message
        with pytest.raises(StatusError) as child:
            await admit_workspace(store, cluster, "late")
        assert child.value.code == 403
    # Updates still pass, and so does the finalizer's removal, which ends the deletion.
    updated = await store.patch(held, MERGE_PATCH, {"data": {"k": "v"}}, WriteOptions())
    assert updated["metadata"]["deletionTimestamp"]
    await store.patch(held, MERGE_PATCH, {"metadata": {"finalizers": None}}, WriteOptions())
    await until(lambda: read(store, workspace_target("root", "fam")) is None,
                "the Workspace gone")
    for cluster in (org, team, leaf):
        assert read(store, logical_cluster_target(cluster)) is None
    # The name is free again, for a brand-new logical cluster that takes content.
    again = await ready(tenancy, "root", "fam")
    assert again not in (org, team, leaf)
    await create_configmap(store, again, "fresh")


async def test_a_logical_cluster_from_before_the_finalizer_is_marked_not_removed(
        tenancy: Tenancy) -> None:
    """Data directories written before the finalizer existed keep working."""
    store = tenancy.store
    child = await ready(tenancy, "root", "old")
    await store.patch(logical_cluster_target(child), MERGE_PATCH,
                      {"metadata": {"finalizers": None}}, WriteOptions())
    assert "finalizers" not in (read(store, logical_cluster_target(child)) or {})["metadata"]
    held = Target(builtin.CONFIGMAPS, child, "default", "held")
    await create_configmap(store, child, "held", finalizers=["example.com/cleanup"])

    await store.delete(workspace_target("root", "old"), DeleteOptions())
    await until(lambda: deletion_marked(store, child), "the old LogicalCluster marked")
    logical = read(store, logical_cluster_target(child))
    assert logical is not None
    assert logical["metadata"]["finalizers"] == [LOGICAL_CLUSTER_FINALIZER]
    assert tenancy.resolver.resolve("root:old") == child
    with pytest.raises(StatusError):
        await create_configmap(store, child, "late")
    await store.patch(held, MERGE_PATCH, {"metadata": {"finalizers": None}}, WriteOptions())
    await until(lambda: read(store, workspace_target("root", "old")) is None,
                "the Workspace gone")


async def test_deletion_finishes_while_a_client_keeps_creating(tenancy: Tenancy) -> None:
    store = tenancy.store
    parent = await ready(tenancy, "root", "busy")
    child = await ready(tenancy, parent, "kid")
    outcomes: dict[str, int] = {}
    stop = asyncio.Event()

    async def keep_creating(cluster: str, prefix: str) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            try:
                if number % 2:
                    await create_configmap(store, cluster, f"{prefix}-{number}")
                else:
                    await admit_workspace(store, cluster, f"{prefix}-{number}")
                outcomes["created"] = outcomes.get("created", 0) + 1
            except StatusError as exc:
                outcomes[str(exc.code)] = outcomes.get(str(exc.code), 0) + 1
            # A client in another process; here it shares the event loop with the
            # controller, so it paces itself instead of spinning on instant refusals.
            await asyncio.sleep(0.001)

    creators = [asyncio.create_task(keep_creating(parent, "p")),
                asyncio.create_task(keep_creating(child, "c"))]
    try:
        await until(lambda: outcomes.get("created", 0) >= 10, "creates under way")
        await store.delete(workspace_target("root", "busy"), DeleteOptions())
        await until(lambda: read(store, workspace_target("root", "busy")) is None,
                    "the Workspace gone while creates continue")
    finally:
        stop.set()
        await asyncio.gather(*creators)
    assert outcomes.get("403", 0) > 0, outcomes
    for cluster in (parent, child):
        for rt in (builtin.CONFIGMAPS, builtin.WORKSPACES, builtin.LOGICAL_CLUSTERS):
            assert await names(store, Target(rt, cluster)) == [], (cluster, rt.resource)
