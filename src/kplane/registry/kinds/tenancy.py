"""Strategies of kcp's tenancy kinds: Workspace, WorkspaceType and LogicalCluster.

What needs other objects (the parent's type, the allowed children, a new cluster name) is
decided by workspace admission in :mod:`kplane.tenancy`; these strategies hold the rules
that look at one object alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplane.apimachinery.errors import Cause, field_invalid
from kplane.apimachinery.typeinfo import TypeNode
from kplane.registry.kinds.tenancy_schemas import (
    LOGICAL_CLUSTER_SCHEMA,
    WORKSPACE_SCHEMA,
    WORKSPACE_TYPE_SCHEMA,
)
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy, label_name

LOGICAL_CLUSTER_NAME = "cluster"
WORKSPACE_FINALIZER = "tenancy.kcp.io/workspace"
PATH_ANNOTATION = "kcp.io/path"
OWNER_ANNOTATION = "experimental.tenancy.kcp.io/owner"
TYPE_ANNOTATION = "tenancy.kcp.io/workspace-type"
# Cache-indexed fields that path resolution reads without decoding objects.
CLUSTER_FIELD = "spec.cluster"
PATH_FIELD = "metadata.annotations.kcp.io/path"
TYPE_FIELD = "metadata.annotations.tenancy.kcp.io/workspace-type"
MAX_OBJECTS_ANNOTATION = "core.kcp.io/max-total-objects"
MAX_OBJECTS_FIELD = f"metadata.annotations.{MAX_OBJECTS_ANNOTATION}"


def _immutable(new: Mapping[str, Any], old: Mapping[str, Any], path: str) -> list[Cause]:
    def at(obj: Mapping[str, Any]) -> Any:
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        return current

    before = at(old)
    if before is not None and at(new) != before:
        return [field_invalid(path, at(new), "field is immutable")]
    return []


class WorkspaceStrategy(Strategy):
    name_validator = staticmethod(label_name)  # type: ignore[assignment]
    has_status_subresource = True

    def __init__(self, rt: ResourceType) -> None:
        super().__init__(rt, TypeNode(WORKSPACE_SCHEMA))

    def published_schema(self) -> tuple[str, Mapping[str, Any]] | None:
        return "io.kcp.tenancy.v1alpha1.Workspace", WORKSPACE_SCHEMA

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        # The server owns where the workspace lives; clients cannot move it.
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        for key in ("cluster", "URL"):
            if key in old_spec:
                spec[key] = old_spec[key]

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return _immutable(new, old, "spec.type")

    def selectable_fields(self, obj: Mapping[str, Any]) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        # Path resolution reads spec.cluster from the cache index on every request.
        spec = obj.get("spec") or {}
        fields[CLUSTER_FIELD] = str(spec.get("cluster") or "")
        fields["status.phase"] = str((obj.get("status") or {}).get("phase") or "")
        return fields


class WorkspaceTypeStrategy(Strategy):
    name_validator = staticmethod(label_name)  # type: ignore[assignment]

    def __init__(self, rt: ResourceType) -> None:
        super().__init__(rt, TypeNode(WORKSPACE_TYPE_SCHEMA))

    def published_schema(self) -> tuple[str, Mapping[str, Any]] | None:
        return "io.kcp.tenancy.v1alpha1.WorkspaceType", WORKSPACE_TYPE_SCHEMA


class LogicalClusterStrategy(Strategy):
    has_status_subresource = True

    def __init__(self, rt: ResourceType) -> None:
        super().__init__(rt, TypeNode(LOGICAL_CLUSTER_SCHEMA))

    def published_schema(self) -> tuple[str, Mapping[str, Any]] | None:
        return "io.kcp.core.v1alpha1.LogicalCluster", LOGICAL_CLUSTER_SCHEMA

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        # Only the server creates LogicalClusters, and it creates them with their status
        # in the same write (one write fewer per new workspace).
        return

    def selectable_fields(self, obj: Mapping[str, Any]) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        fields[PATH_FIELD] = str(annotations.get(PATH_ANNOTATION) or "")
        fields[TYPE_FIELD] = str(annotations.get(TYPE_ANNOTATION) or "")
        fields[MAX_OBJECTS_FIELD] = str(annotations.get(MAX_OBJECTS_ANNOTATION) or "")
        fields["status.phase"] = str((obj.get("status") or {}).get("phase") or "")
        return fields

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        name = (obj.get("metadata") or {}).get("name")
        if name != LOGICAL_CLUSTER_NAME:
            return [field_invalid("metadata.name", name,
                                  f'must be "{LOGICAL_CLUSTER_NAME}": a logical cluster has '
                                  "exactly one LogicalCluster object")]
        return []

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + _immutable(new, old, "spec.owner")
