"""Workspace admission: what the server decides when a Workspace is created.

It defaults the type to the parent type's default child type, refuses types that do not
exist or may not nest there (403, as kcp does), and assigns the new logical cluster: a
fresh cluster name in ``spec.cluster`` and the workspace's URL in ``spec.URL``. The new
Workspace starts in phase ``Scheduling`` with a finalizer, and the workspace controller
takes it from there.
"""

from __future__ import annotations

from typing import Any

from kplane.apimachinery import errors
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import WORKSPACE_FINALIZER
from kplane.registry.resources import ResourceType
from kplane.tenancy.names import join, new_cluster_name
from kplane.tenancy.resolver import ClusterResolver
from kplane.tenancy.types import WorkspaceTypes

SCHEDULING = "Scheduling"


class WorkspaceAdmission:
    """The admission plugin for ``tenancy.kcp.io`` Workspaces."""

    def __init__(self, *, resolver: ClusterResolver, types: WorkspaceTypes,
                 base_url: str) -> None:
        self._resolver = resolver
        self._types = types
        self._base_url = base_url.rstrip("/")

    def handles(self, rt: ResourceType) -> bool:
        return rt == builtin.WORKSPACES

    async def admit_create(self, *, rt: ResourceType, cluster: str,
                           obj: dict[str, Any]) -> None:
        parent_path = self._resolver.path_of(cluster)
        if parent_path is None:
            raise errors.forbidden(f"logical cluster {cluster} is not ready for workspaces")
        parent_type = self._types.type_of_cluster(cluster)
        if parent_type is None:
            raise errors.forbidden(f"the type of workspace {parent_path} is unknown")
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise errors.bad_request("spec must be an object")
        requested = spec.get("type")
        if requested:
            if not isinstance(requested, dict) or not requested.get("name"):
                raise errors.bad_request("spec.type must name a WorkspaceType")
            child_type = self._types.find(requested, current_path=parent_path)
            if child_type is None:
                path = requested.get("path") or parent_path
                raise errors.forbidden(
                    f"workspace type {path}:{requested['name']} does not exist")
        else:
            child_type = self._types.default_child(parent_type)
        self._types.check_allowed(parent_type, child_type)
        name = obj["metadata"].get("name") or ""
        spec["type"] = child_type.as_reference()
        spec["cluster"] = new_cluster_name()
        spec["URL"] = f"{self._base_url}/clusters/{join(parent_path, name)}"
        obj["status"] = {"phase": SCHEDULING}
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if WORKSPACE_FINALIZER not in finalizers:
            finalizers.append(WORKSPACE_FINALIZER)
        meta["finalizers"] = finalizers
        extra_labels = child_type.spec.get("additionalWorkspaceLabels") or {}
        if isinstance(extra_labels, dict) and extra_labels:
            meta["labels"] = {**extra_labels, **(meta.get("labels") or {})}

    async def admit_update(self, *, rt: ResourceType, cluster: str, new: dict[str, Any],
                           old: dict[str, Any]) -> None:
        return None
