"""Workspace admission over a real store: type defaulting, the nesting rules, the new cluster.

Also home of :func:`tenancy_stack`, the store assembled with the tenancy pieces the way
``kplane.server.runtime`` assembles them, which the other tenancy tests share.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.auth.authorizer import Authorizer
from kplane.auth.type_use import TypeUsePermission
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import (
    LOGICAL_CLUSTER_NAME,
    PATH_ANNOTATION,
    TYPE_ANNOTATION,
    WORKSPACE_FINALIZER,
)
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.tenancy.admission import WorkspaceAdmission
from kplane.tenancy.bootstrap import bootstrap_root
from kplane.tenancy.lifecycle import TerminatingWorkspaces
from kplane.tenancy.resolver import ClusterResolver
from kplane.tenancy.types import WorkspaceTypes
from tests.registry.test_store import running_store

BASE_URL = "https://kplane.test:6443"


@dataclass
class Tenancy:
    store: Store
    resolver: ClusterResolver
    types: WorkspaceTypes
    authorizer: Authorizer | None = None


@contextlib.asynccontextmanager
async def tenancy_stack(directory: pathlib.Path, *,
                        authorization: bool = False) -> AsyncIterator[Tenancy]:
    """A store with the tenancy admission plugins and a bootstrapped root, as the server
    has; with ``authorization``, creators must hold ``use`` on a Workspace's type."""
    async with running_store(directory) as store:
        resolver = ClusterResolver(store.cacher)
        types = WorkspaceTypes(store.cacher, resolver)
        authorizer = Authorizer(store.cacher) if authorization else None
        use = TypeUsePermission(authorizer) if authorizer is not None else None
        store.admission += [
            TerminatingWorkspaces(cacher=store.cacher, resolver=resolver),
            WorkspaceAdmission(resolver=resolver, types=types, base_url=BASE_URL + "/",
                               use_permission=use)]
        await bootstrap_root(store, base_url=BASE_URL)
        if authorizer is not None:
            await authorizer.start()
            await authorizer.wait_for(store.cacher.revision)
        try:
            yield Tenancy(store, resolver, types, authorizer)
        finally:
            if authorizer is not None:
                await authorizer.stop()


async def create_workspace(store: Store, cluster: str, name: str, *,
                           type_ref: dict[str, str] | None = None,
                           labels: dict[str, str] | None = None,
                           annotations: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                            "metadata": {"name": name}, "spec": {}}
    if type_ref is not None:
        body["spec"]["type"] = type_ref
    if labels:
        body["metadata"]["labels"] = labels
    if annotations:
        body["metadata"]["annotations"] = annotations
    return await store.create(Target(builtin.WORKSPACES, cluster, "", name), body,
                              WriteOptions(field_manager="test"))


async def create_type(store: Store, cluster: str, name: str, spec: dict[str, Any]) -> None:
    await store.create(Target(builtin.WORKSPACE_TYPES, cluster, "", name),
                       {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType",
                        "metadata": {"name": name}, "spec": spec},
                       WriteOptions(field_manager="test"))


async def materialize(store: Store, cluster: str, *, path: str, type_text: str) -> None:
    """Create the child's LogicalCluster as the workspace controller would."""
    await store.create(
        Target(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME),
        {"apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
         "metadata": {"name": LOGICAL_CLUSTER_NAME,
                      "annotations": {PATH_ANNOTATION: path, TYPE_ANNOTATION: type_text}},
         "spec": {}, "status": {"phase": "Ready"}},
        WriteOptions(field_manager="test"))


async def ready_child(store: Store, parent_cluster: str, parent_path: str, name: str, *,
                      type_ref: dict[str, str] | None = None) -> str:
    """Admit a Workspace and materialize its cluster; returns the child cluster name."""
    workspace = await create_workspace(store, parent_cluster, name, type_ref=type_ref)
    kind = workspace["spec"]["type"]
    cluster: str = workspace["spec"]["cluster"]
    await materialize(store, cluster, path=f"{parent_path}:{name}",
                      type_text=f"{kind['path']}:{kind['name']}")
    return cluster


async def refused(awaitable: Any) -> StatusError:
    with pytest.raises(StatusError) as info:
        await awaitable
    return info.value


@pytest_asyncio.fixture
async def tenancy(tmp_path: pathlib.Path) -> AsyncIterator[Tenancy]:
    async with tenancy_stack(tmp_path) as stack:
        yield stack


async def test_a_new_workspace_gets_type_cluster_url_phase_and_finalizer(
        tenancy: Tenancy) -> None:
    workspace = await create_workspace(tenancy.store, "root", "acme")
    spec = workspace["spec"]
    assert spec["type"] == {"name": "universal", "path": "root"}
    assert re.fullmatch(r"[0-9a-z]{16}", spec["cluster"])
    assert spec["URL"] == f"{BASE_URL}/clusters/root:acme"
    assert workspace["status"] == {"phase": "Scheduling"}
    assert workspace["metadata"]["finalizers"] == [WORKSPACE_FINALIZER]
    other = await create_workspace(tenancy.store, "root", "other")
    assert other["spec"]["cluster"] != spec["cluster"]


async def test_client_supplied_cluster_url_and_status_are_replaced(tenancy: Tenancy) -> None:
    body = {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "sneaky", "finalizers": ["mine"]},
            "spec": {"cluster": "root", "URL": "https://evil/clusters/root"},
            "status": {"phase": "Ready"}}
    created = await tenancy.store.create(Target(builtin.WORKSPACES, "root", "", "sneaky"),
                                         body, WriteOptions(field_manager="test"))
    assert created["spec"]["cluster"] != "root"
    assert created["spec"]["URL"] == f"{BASE_URL}/clusters/root:sneaky"
    assert created["status"] == {"phase": "Scheduling"}
    assert created["metadata"]["finalizers"] == ["mine", WORKSPACE_FINALIZER]


async def test_nested_workspaces_get_nested_urls(tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    team = await create_workspace(tenancy.store, org, "team-1",
                                  type_ref={"name": "team", "path": "root"})
    assert team["spec"]["URL"] == f"{BASE_URL}/clusters/root:acme:team-1"
    assert team["spec"]["type"] == {"name": "team", "path": "root"}


async def test_a_type_reference_without_path_is_looked_up_here_then_in_root(
        tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    from_root = await create_workspace(tenancy.store, org, "t", type_ref={"name": "team"})
    assert from_root["spec"]["type"] == {"name": "team", "path": "root"}
    await create_type(tenancy.store, org, "team", {})
    local = await create_workspace(tenancy.store, org, "t2", type_ref={"name": "team"})
    assert local["spec"]["type"] == {"name": "team", "path": "root:acme"}


@pytest.mark.parametrize(("type_ref", "message"), [
    ({"name": "team", "path": "root"}, "only allows parents"),
    ({"name": "root", "path": "root"}, "only allows parents"),
    ({"name": "missing", "path": "root"}, "workspace type root:missing does not exist"),
    ({"name": "team", "path": "root:nowhere"}, "does not exist"),
])
async def test_refused_types_are_forbidden(tenancy: Tenancy, type_ref: dict[str, str],
                                           message: str) -> None:
    error = await refused(create_workspace(tenancy.store, "root", "x", type_ref=type_ref))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert message in error.message
    assert tenancy.store.get_cached(Target(builtin.WORKSPACES, "root", "", "x")) is None


async def test_a_type_without_a_name_is_a_bad_request(tenancy: Tenancy) -> None:
    error = await refused(create_workspace(tenancy.store, "root", "x",
                                           type_ref={"path": "root"}))
    assert error.code in (400, 422)


async def test_a_cluster_that_is_not_materialized_cannot_hold_workspaces(
        tenancy: Tenancy) -> None:
    error = await refused(create_workspace(tenancy.store, "abcdefghijklmnop", "x"))
    # No LogicalCluster: the cluster does not exist (or was just purged), as a request
    # addressed to it would be told.
    assert (error.code, error.reason) == (404, "NotFound")
    assert "abcdefghijklmnop" in error.message


async def test_the_parent_type_refusing_children_is_enforced(tenancy: Tenancy) -> None:
    await create_type(tenancy.store, "root", "leaf", {"limitAllowedChildren": {"none": True}})
    leaf = await ready_child(tenancy.store, "root", "root", "l",
                             type_ref={"name": "leaf", "path": "root"})
    error = await refused(create_workspace(tenancy.store, leaf, "x",
                                           type_ref={"name": "universal", "path": "root"}))
    assert error.code == 403
    assert "not allowed as a child of workspace type root:leaf" in error.message
    # Without a default child type, the type has to be named.
    untyped = await refused(create_workspace(tenancy.store, leaf, "x"))
    assert untyped.code == 403
    assert "spec.type must be set" in untyped.message


async def test_additional_workspace_labels_yield_to_the_users_labels(tenancy: Tenancy) -> None:
    await create_type(tenancy.store, "root", "labelled",
                      {"additionalWorkspaceLabels": {"tier": "gold", "team": "platform"}})
    workspace = await create_workspace(tenancy.store, "root", "w", labels={"tier": "mine"},
                                       type_ref={"name": "labelled", "path": "root"})
    assert workspace["metadata"]["labels"] == {"tier": "mine", "team": "platform"}


async def test_updates_cannot_move_or_retype_a_workspace(tenancy: Tenancy) -> None:
    workspace = await create_workspace(tenancy.store, "root", "w")
    target = Target(builtin.WORKSPACES, "root", "", "w")
    moved = dict(workspace, spec={**workspace["spec"], "cluster": "zzzzzzzzzzzzzzzz",
                                  "URL": "https://elsewhere"})
    updated = await tenancy.store.update(target, moved, WriteOptions(field_manager="test"))
    assert updated["spec"]["cluster"] == workspace["spec"]["cluster"]
    assert updated["spec"]["URL"] == workspace["spec"]["URL"]
    retyped = dict(updated, spec={**updated["spec"],
                                  "type": {"name": "organization", "path": "root"}})
    error = await refused(tenancy.store.update(target, retyped,
                                               WriteOptions(field_manager="test")))
    assert error.code == 422
