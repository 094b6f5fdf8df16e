"""WorkspaceTypes: which workspaces may nest where, and how a new one starts.

A type is referenced by name and the path of the workspace that defines it. The built-in
types live in ``root``: ``root`` (the root workspace; never a child), ``organization``
(children of root), ``team`` (children of an organization or a team) and ``universal``
(anywhere). A child is allowed only when both sides agree: the parent type's
``limitAllowedChildren`` and the child type's ``limitAllowedParents``. A type with
``initializer: true`` holds new workspaces in ``Initializing`` until its initializer,
named ``<path>:<name>``, removes itself; so do the types it extends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kplane.apimachinery import errors
from kplane.registry import builtin
from kplane.registry.keys import object_key
from kplane.registry.kinds.tenancy import TYPE_FIELD
from kplane.storage.cacher import Cacher
from kplane.tenancy.names import ROOT
from kplane.tenancy.resolver import ClusterResolver

_MAX_EXTEND_DEPTH = 8

BUILTIN_TYPES: tuple[dict[str, Any], ...] = tuple(
    {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "WorkspaceType",
     "metadata": {"name": name}, "spec": spec}
    for name, spec in (
        ("root", {"limitAllowedParents": {"none": True},
                  "defaultChildWorkspaceType": {"name": "universal", "path": ROOT}}),
        ("organization", {"limitAllowedParents": {"types": [{"name": "root", "path": ROOT}]},
                          "defaultChildWorkspaceType": {"name": "universal", "path": ROOT}}),
        ("team", {"limitAllowedParents": {"types": [{"name": "organization", "path": ROOT},
                                                    {"name": "team", "path": ROOT}]},
                  "defaultChildWorkspaceType": {"name": "universal", "path": ROOT}}),
        ("universal", {"defaultChildWorkspaceType": {"name": "universal", "path": ROOT}}),
    )
)
"""The types every server has, created in root on first start."""


@dataclass(frozen=True, slots=True)
class WorkspaceType:
    name: str
    path: str
    spec: Mapping[str, Any]
    # The logical cluster that holds the type ('' for one built in memory, as in tests).
    cluster: str = ""

    @property
    def reference(self) -> str:
        return f"{self.path}:{self.name}"

    def as_reference(self) -> dict[str, str]:
        return {"name": self.name, "path": self.path}


def parse_reference(text: str) -> tuple[str, str]:
    """``root:team`` -> (path ``root``, name ``team``)."""
    path, _, name = text.rpartition(":")
    return path, name


class WorkspaceTypes:
    """Looks WorkspaceTypes up in the watch cache and applies their rules."""

    def __init__(self, cacher: Cacher, resolver: ClusterResolver) -> None:
        self._cacher = cacher
        self._resolver = resolver

    def get(self, name: str, path: str) -> WorkspaceType | None:
        cluster = self._resolver.resolve(path)
        if cluster is None:
            return None
        cached = self._cacher.get(object_key(builtin.WORKSPACE_TYPES, cluster, "", name))
        if cached is None:
            return None
        obj = orjson.loads(cached.raw)
        canonical = self._resolver.path_of(cluster) or path
        return WorkspaceType(name, canonical, obj.get("spec") or {}, cluster)

    def find(self, reference: Mapping[str, Any], *, current_path: str) -> WorkspaceType | None:
        """A type by reference; without a path, in the current workspace, then in root."""
        name = str(reference.get("name") or "")
        path = str(reference.get("path") or "")
        if path:
            return self.get(name, path)
        return self.get(name, current_path) or self.get(name, ROOT)

    def type_of_cluster(self, cluster: str) -> WorkspaceType | None:
        """The type a logical cluster was created with (root's is ``root:root``)."""
        if cluster == ROOT:
            return self.get("root", ROOT)
        text = self._resolver.logical_cluster_field(cluster, TYPE_FIELD)
        if not text:
            return None
        path, name = parse_reference(text)
        return self.get(name, path)

    def default_child(self, parent: WorkspaceType) -> WorkspaceType:
        reference = parent.spec.get("defaultChildWorkspaceType")
        if not isinstance(reference, Mapping) or not reference.get("name"):
            raise errors.forbidden(
                f"spec.type must be set: workspace type {parent.reference} has no "
                "defaultChildWorkspaceType")
        found = self.find(reference, current_path=parent.path)
        if found is None:
            raise errors.forbidden(
                f"the default child type of {parent.reference} does not exist: "
                f"{reference.get('path') or parent.path}:{reference.get('name')}")
        return found

    def check_allowed(self, parent: WorkspaceType, child: WorkspaceType) -> None:
        """Both the parent's allowed children and the child's allowed parents must agree."""
        children = parent.spec.get("limitAllowedChildren") or {}
        parents = child.spec.get("limitAllowedParents") or {}
        if children.get("none") or (children.get("types") and not _lists(
                children["types"], child, default_path=parent.path)):
            raise errors.forbidden(
                f"workspace type {child.reference} is not allowed as a child of workspace "
                f"type {parent.reference}")
        if parents.get("none") or (parents.get("types") and not _lists(
                parents["types"], parent, default_path=child.path)):
            raise errors.forbidden(
                f"workspace type {child.reference} only allows parents of the types "
                f"{_describe(parents)}, not {parent.reference}")

    def aliases(self, kind: WorkspaceType) -> list[WorkspaceType]:
        """The type and every type it extends, transitively (as kcp resolves them): using a
        type means using each of them. Extended types that do not exist are skipped."""
        found: list[WorkspaceType] = []
        self._collect_aliases(kind, found, depth=0)
        return found

    def _collect_aliases(self, kind: WorkspaceType, found: list[WorkspaceType], *,
                         depth: int) -> None:
        if depth > _MAX_EXTEND_DEPTH or any(t.reference == kind.reference for t in found):
            return
        found.append(kind)
        for reference in (kind.spec.get("extend") or {}).get("with") or []:
            if isinstance(reference, Mapping):
                base = self.find(reference, current_path=kind.path)
                if base is not None:
                    self._collect_aliases(base, found, depth=depth + 1)

    def initializers(self, kind: WorkspaceType) -> list[str]:
        """The initializers a new workspace of this type waits for (own and extended)."""
        found: list[str] = []
        self._collect_initializers(kind, found, depth=0)
        return found

    def _collect_initializers(self, kind: WorkspaceType, found: list[str], *, depth: int) -> None:
        if depth > _MAX_EXTEND_DEPTH:
            return
        if kind.spec.get("initializer") and kind.reference not in found:
            found.append(kind.reference)
        for reference in (kind.spec.get("extend") or {}).get("with") or []:
            if isinstance(reference, Mapping):
                base = self.find(reference, current_path=kind.path)
                if base is not None:
                    self._collect_initializers(base, found, depth=depth + 1)


def _lists(references: Any, kind: WorkspaceType, *, default_path: str) -> bool:
    for reference in references if isinstance(references, list) else ():
        if not isinstance(reference, Mapping):
            continue
        path = str(reference.get("path") or default_path)
        if reference.get("name") == kind.name and path == kind.path:
            return True
    return False


def _describe(selector: Mapping[str, Any]) -> str:
    names = [f"{r.get('path', '')}:{r.get('name', '')}" for r in selector.get("types") or []
             if isinstance(r, Mapping)]
    return ", ".join(names) or "(none)"
