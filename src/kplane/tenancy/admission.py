"""Workspace admission: what the server decides when a Workspace is created.

It defaults the type to the parent type's default child type, refuses types that do not
exist or may not nest there (403, as kcp does), checks that the creator may ``use`` the
type (:mod:`kplane.tenancy.type_use`), and assigns the new logical cluster: a fresh
cluster name in ``spec.cluster`` and the workspace's URL in ``spec.URL``. The new
Workspace starts in phase ``Scheduling`` with a finalizer, and the workspace controller
takes it from there.
"""

from __future__ import annotations

from typing import Any

from kplane.apimachinery import errors
from kplane.apimachinery.users import UserInfo
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import WORKSPACE_FINALIZER
from kplane.registry.resources import ResourceType
from kplane.tenancy.names import ROOT, join, new_cluster_name
from kplane.tenancy.resolver import ClusterResolver
from kplane.tenancy.type_use import TypeUseCheck, creator_of, denial
from kplane.tenancy.types import WorkspaceType, WorkspaceTypes

SCHEDULING = "Scheduling"


class WorkspaceAdmission:
    """The admission plugin for ``tenancy.kcp.io`` Workspaces."""

    def __init__(self, *, resolver: ClusterResolver, types: WorkspaceTypes,
                 base_url: str, use_permission: TypeUseCheck | None = None) -> None:
        self._resolver = resolver
        self._types = types
        self._base_url = base_url.rstrip("/")
        # None: nobody is checked (a store without authorization, as in unit tests).
        self._use = use_permission

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
        name = obj["metadata"].get("name") or ""
        creator = creator_of(obj) if self._use is not None else None
        requested = spec.get("type")
        if requested:
            if not isinstance(requested, dict) or not requested.get("name"):
                raise errors.bad_request("spec.type must name a WorkspaceType")
            child_type, shown = self._requested_type(requested, parent_path, creator,
                                                     workspace=name)
        else:
            child_type = self._types.default_child(parent_type)
            shown = child_type.reference
        if self._use is not None and creator is not None:
            self._use.check(creator, name, self._types.aliases(child_type), shown=shown)
        self._types.check_allowed(parent_type, child_type)
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

    def _requested_type(self, requested: dict[str, Any], parent_path: str,
                        creator: UserInfo | None, *,
                        workspace: str) -> tuple[WorkspaceType, str]:
        """The type ``spec.type`` names, and how a denial names it (as the client wrote
        it). Without a path the current workspace is searched, then root."""
        name = str(requested["name"])
        path = str(requested.get("path") or "")
        if not path:
            local = self._types.get(name, parent_path)
            if local is not None:
                return local, local.reference
            path = ROOT
        shown = f"{path}:{name}"
        found = self._types.get(name, path)
        if found is not None:
            return found, shown
        # A missing type is only reported to whom may use that name there; everyone else
        # gets the answer an existing type would give them.
        if self._use is not None and creator is not None and not self._use.may_use(
                creator, self._resolver.resolve(path), name):
            raise denial(workspace, shown)
        raise errors.forbidden(f"workspace type {shown} does not exist")

    async def admit_update(self, *, rt: ResourceType, cluster: str, new: dict[str, Any],
                           old: dict[str, Any]) -> None:
        return None
