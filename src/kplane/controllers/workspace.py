"""Workspace lifecycle: from a new Workspace to a Ready logical cluster, and back to nothing.

One watch over the Workspaces of every logical cluster feeds one bounded work queue, drained
by a few concurrent workers so that their writes share the store's group commits. For a
Workspace in ``Scheduling`` the controller creates the child cluster's LogicalCluster (with
the ``kcp.io/path`` annotation, the type and the initializers) and its ``default``
namespace, then moves the Workspace to ``Initializing`` or straight to ``Ready``. A second
watch over LogicalClusters notices when the last initializer has removed itself.

Deleting a Workspace first deletes its LogicalCluster, as kcp does: the
``core.kcp.io/logicalcluster-deletion`` finalizer keeps it, now with a deletionTimestamp,
and from then on the logical cluster refuses new content (:mod:`kplane.tenancy.lifecycle`).
The LogicalClusters of the whole subtree are marked in the same pass, so no descendant
keeps taking content while the deletion works its way down. Then the child Workspaces are
deleted (each through this same path, so deletion is recursive), every object that carries
finalizers is marked as deleted and waited for (reporting which finalizers it waits for),
whatever else the logical cluster holds is purged, and the Workspace goes. Nothing here
runs per workspace while workspaces are idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.conditions import find_condition, with_conditions
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.keys import resource_prefix
from kplane.registry.kinds.tenancy import (
    CLUSTER_FIELD,
    LOGICAL_CLUSTER_NAME,
    OWNER_ANNOTATION,
    PATH_ANNOTATION,
    TYPE_ANNOTATION,
    WORKSPACE_FINALIZER,
)
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.store import Store, Target
from kplane.storage.cacher import CachedObject
from kplane.tenancy.lifecycle import LOGICAL_CLUSTER_FINALIZER, is_being_deleted
from kplane.tenancy.names import join
from kplane.tenancy.resolver import ClusterResolver
from kplane.tenancy.types import WorkspaceTypes

log = logging.getLogger(__name__)

MANAGER = "workspace-controller"
SCHEDULING, INITIALIZING, READY, TERMINATING = "Scheduling", "Initializing", "Ready", "Terminating"
WORKERS = 16
# The creator of a workspace becomes its admin through this binding in the new workspace.
OWNER_BINDING = "workspace-admin"
_RETRY_SECONDS = 1.0
# kcp's condition on a deleting workspace whose content is not all gone yet.
CONTENT_DELETED = "WorkspaceContentDeleted"


def _owner(workspace: dict[str, Any]) -> str:
    """The user who created the workspace (recorded by the server), or ''."""
    text = ((workspace.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
    if not text:
        return ""
    try:
        owner = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ""
    return str(owner.get("username") or "") if isinstance(owner, dict) else ""


def _phase(cached: CachedObject) -> str:
    return cached.fields.get("status.phase", "")


class WorkspaceController:
    def __init__(self, *, store: Store, catalog: Catalog, resolver: ClusterResolver,
                 types: WorkspaceTypes) -> None:
        self._store = store
        self._catalog = catalog
        self._resolver = resolver
        self._types = types
        self._queue = WorkQueue(self.reconcile, retry_after=lambda: _RETRY_SECONDS,
                                what="workspace")
        self._tasks: list[asyncio.Task[None]] = []
        self._options = WriteOptions(field_manager=MANAGER)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(follow_prefix(self._store, resource_prefix(builtin.WORKSPACES),
                                              self._on_workspace), name="workspace-watch"),
            asyncio.create_task(
                follow_prefix(self._store, resource_prefix(builtin.LOGICAL_CLUSTERS),
                              self._on_logical_cluster), name="logicalcluster-watch"),
            *self._queue.workers(WORKERS, name="workspace-worker"),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    # Watching ----------------------------------------------------------------------------

    def _on_workspace(self, cached: CachedObject, deleted: bool) -> None:
        if deleted:
            return
        if b'"deletionTimestamp"' in cached.raw or _phase(cached) in (SCHEDULING, ""):
            self._queue.add_key(cached.key)

    def _on_logical_cluster(self, cached: CachedObject, deleted: bool) -> None:
        if deleted or _phase(cached) != INITIALIZING:
            return
        # Every change while Initializing matters: the Workspace mirrors the initializers
        # still pending, and becomes Ready once none is.
        obj = orjson.loads(cached.raw)
        owner = (obj.get("spec") or {}).get("owner") or {}
        if owner.get("cluster") and owner.get("name"):
            self._queue.add(owner["cluster"], owner["name"])

    # Reconciling -------------------------------------------------------------------------

    async def reconcile(self, cluster: str, name: str) -> bool:
        """Move one Workspace forward. True when nothing is left to do for now."""
        target = Target(builtin.WORKSPACES, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            return True
        workspace: dict[str, Any] = orjson.loads(cached.raw)
        if workspace["metadata"].get("deletionTimestamp"):
            return await self._tear_down(target, workspace)
        phase = (workspace.get("status") or {}).get("phase", "")
        if phase in (SCHEDULING, ""):
            return await self._initialize(target, workspace)
        if phase == INITIALIZING:
            return await self._finish_initializing(target, workspace)
        return True

    async def _initialize(self, target: Target, workspace: dict[str, Any]) -> bool:
        spec = workspace.get("spec") or {}
        child = spec.get("cluster")
        if not child:
            return True
        parent_path = self._resolver.path_of(target.cluster)
        if parent_path is None:
            return False
        path = join(parent_path, target.name)
        type_ref = spec.get("type") or {}
        kind = self._types.find(type_ref, current_path=parent_path)
        initializers = self._types.initializers(kind) if kind is not None else []
        phase = INITIALIZING if initializers else READY
        type_text = f"{type_ref.get('path', '')}:{type_ref.get('name', '')}"
        logical_cluster = {
            "apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
            "metadata": {"name": LOGICAL_CLUSTER_NAME,
                         "annotations": {PATH_ANNOTATION: path, TYPE_ANNOTATION: type_text},
                         "finalizers": [LOGICAL_CLUSTER_FINALIZER]},
            "spec": {"owner": {"apiVersion": "tenancy.kcp.io/v1alpha1",
                               "resource": "workspaces", "name": target.name,
                               "cluster": target.cluster,
                               "uid": workspace["metadata"].get("uid", "")},
                     "initializers": initializers},
            "status": {"phase": phase, "URL": spec.get("URL", ""),
                       "initializers": initializers},
        }
        await self._create_if_absent(
            Target(builtin.LOGICAL_CLUSTERS, child, "", LOGICAL_CLUSTER_NAME), logical_cluster)
        await self._create_if_absent(
            Target(builtin.NAMESPACES, child, "", "default"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        owner = _owner(workspace)
        if owner:
            await self._create_if_absent(
                Target(builtin.CLUSTERROLEBINDINGS, child, "", OWNER_BINDING),
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": OWNER_BINDING},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "cluster-admin"},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                               "name": owner}]})
        await self._set_phase(target, phase, initializers)
        return True

    async def _finish_initializing(self, target: Target, workspace: dict[str, Any]) -> bool:
        child = (workspace.get("spec") or {}).get("cluster")
        if not child:
            return True
        lc_target = Target(builtin.LOGICAL_CLUSTERS, child, "", LOGICAL_CLUSTER_NAME)
        cached = self._store.get_cached(lc_target)
        if cached is None:
            return await self._initialize(target, workspace)
        logical_cluster = orjson.loads(cached.raw)
        remaining = (logical_cluster.get("status") or {}).get("initializers") or []
        if remaining:
            await self._set_phase(target, INITIALIZING, list(remaining))
            return True

        def ready(current: dict[str, Any]) -> dict[str, Any]:
            current.setdefault("status", {})["phase"] = READY
            return current

        await self._store.update_with(lc_target, ready, self._options, subresource="status")
        await self._set_phase(target, READY, [])
        return True

    async def _set_phase(self, target: Target, phase: str, initializers: list[str]) -> None:
        def with_phase(current: dict[str, Any]) -> dict[str, Any]:
            status = current.setdefault("status", {})
            status["phase"] = phase
            if initializers:
                status["initializers"] = initializers
            else:
                status.pop("initializers", None)
            return current

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, with_phase, self._options,
                                          subresource="status")

    async def _create_if_absent(self, target: Target, body: dict[str, Any]) -> None:
        if self._store.get_cached(target) is not None:
            return
        try:
            await self._store.create(target, body, self._options)
        except StatusError as exc:
            if exc.reason != "AlreadyExists":
                raise

    async def _tear_down(self, target: Target, workspace: dict[str, Any]) -> bool:
        child = (workspace.get("spec") or {}).get("cluster")
        if child:
            await self._mark_subtree(child)
            if (workspace.get("status") or {}).get("phase") != TERMINATING:
                await self._set_phase(target, TERMINATING, [])
            children = await self._store.list(Target(builtin.WORKSPACES, child),
                                              ListOptions(resource_version="0"))
            if children.items:
                for item in children.items:
                    if b'"deletionTimestamp"' not in item.raw:
                        with contextlib.suppress(StatusError):
                            await self._store.delete(
                                Target(builtin.WORKSPACES, child, "", item.name),
                                DeleteOptions())
                return False
            waiting = await self._finalize_content(child)
            if waiting:
                await self._report_finalizers(target, waiting)
                return False
            await self._store.purge_cluster(child)
            if self._holds_anything(child):
                # A create admitted before the mark landed after the purge: go again.
                return False

        def without_finalizer(current: dict[str, Any]) -> dict[str, Any]:
            meta = current["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or []
                                  if f != WORKSPACE_FINALIZER]
            return current

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, without_finalizer, self._options)
        return True

    async def _mark_subtree(self, cluster: str) -> None:
        """Delete the LogicalCluster of ``cluster`` and of every workspace below it, so
        that all of them refuse new content from now on. Once the top one is marked its
        subtree was marked too (or is being, by another worker or server); a workspace
        created below it since then is marked when the recursion reaches it."""
        if self._mark(cluster) is None:
            return
        pending = [cluster]
        while pending:
            current = pending.pop()
            await self._mark_one(current)
            for cached in self._store.cacher.list(
                    f"{resource_prefix(builtin.WORKSPACES)}{current}/"):
                below = cached.fields.get(CLUSTER_FIELD)
                if below:
                    pending.append(below)

    def _mark(self, cluster: str) -> Target | None:
        """The LogicalCluster of ``cluster`` if it exists and is not being deleted yet."""
        target = Target(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)
        cached = self._store.get_cached(target)
        if cached is None or is_being_deleted(cached):
            return None
        return target

    async def _mark_one(self, cluster: str) -> None:
        target = self._mark(cluster)
        if target is None:
            return

        def with_finalizer(current: dict[str, Any]) -> dict[str, Any]:
            finalizers = current["metadata"].setdefault("finalizers", [])
            if LOGICAL_CLUSTER_FINALIZER not in finalizers:
                finalizers.append(LOGICAL_CLUSTER_FINALIZER)
            return current

        cached = self._store.get_cached(target)
        meta = orjson.loads(cached.raw).get("metadata") or {} if cached is not None else {}
        with contextlib.suppress(StatusError):
            if LOGICAL_CLUSTER_FINALIZER not in (meta.get("finalizers") or []):
                # A LogicalCluster from before the finalizer existed: without it, the
                # delete below would remove it at once instead of marking it.
                await self._store.update_with(target, with_finalizer, self._options)
            await self._store.delete(target, DeleteOptions())

    def _holds_anything(self, cluster: str) -> bool:
        return any(self._store.cacher.count(f"{prefix}{cluster}/")
                   for prefix in self._catalog.storage_prefixes(cluster))

    async def _finalize_content(self, cluster: str) -> dict[str, int]:
        """Mark every object of ``cluster`` that carries finalizers as deleted, so that the
        controllers owning them clean up (a provider dropping a database, a binding
        removing its bound objects); how many objects each finalizer still holds.

        Objects without finalizers are left to the purge that follows: deleting them one
        by one first would only slow every workspace deletion down."""
        waiting: dict[str, int] = {}
        seen: set[str] = set()
        for rt in self._catalog.resources(cluster):
            prefix = resource_prefix(rt)
            if prefix in seen or rt == builtin.LOGICAL_CLUSTERS or "delete" not in rt.verbs:
                continue
            seen.add(prefix)
            for cached in self._store.cacher.list(f"{prefix}{cluster}/"):
                if b'"finalizers"' not in cached.raw:
                    continue
                meta = orjson.loads(cached.raw).get("metadata") or {}
                finalizers = meta.get("finalizers") or []
                if not finalizers:
                    continue  # a Namespace's spec.finalizers: the purge takes it
                for finalizer in finalizers:
                    waiting[finalizer] = waiting.get(finalizer, 0) + 1
                if not meta.get("deletionTimestamp"):
                    with contextlib.suppress(StatusError):
                        await self._store.delete(
                            Target(rt, cluster, meta.get("namespace") or "", meta["name"]),
                            DeleteOptions())
        return waiting

    async def _report_finalizers(self, target: Target, waiting: dict[str, int]) -> None:
        """Say on the Workspace which finalizers its deletion waits for."""
        held = ", ".join(f"{finalizer} ({count} object{'s' if count != 1 else ''})"
                         for finalizer, count in sorted(waiting.items()))
        message = f"Waiting for finalizers of the workspace's content: {held}"

        def with_condition(current: dict[str, Any]) -> dict[str, Any]:
            return with_conditions(
                current, [(CONTENT_DELETED, False, "SomeFinalizersRemain", message)])

        cached = self._store.get_cached(target)
        if cached is not None:
            said = (orjson.loads(cached.raw).get("status") or {}).get("conditions")
            if find_condition(said, CONTENT_DELETED).get("message") == message:
                return  # already said; do not rewrite the Workspace every retry
        with contextlib.suppress(StatusError):
            await self._store.update_with(target, with_condition, self._options,
                                          subresource="status")
