"""The schemas of Kubernetes' built-in kinds, from upstream's published OpenAPI.

``kubernetes-validate`` ships upstream's definitions per Kubernetes version as one JSON
Schema document (862 definitions with descriptions, patch strategies, list types and
group-version-kinds). We load it once per process, lazily, and index it by
group-version-kind. The same definitions drive strategic merge patch, server-side apply,
field validation and the ``/openapi/v3`` documents, so they can never disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from kplane.apimachinery.typeinfo import TypeNode

KUBERNETES_VERSION = "v1.37.0"
_DEFINITIONS_FILE = f"kubernetes-json-schema/{KUBERNETES_VERSION}-local/_definitions.json"


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@functools.cache
def definitions() -> Mapping[str, Mapping[str, Any]]:
    """Every upstream definition by its name (``io.k8s.api.core.v1.ConfigMap``)."""
    package = resources.files("kubernetes_validate")
    raw = package.joinpath(_DEFINITIONS_FILE).read_bytes()
    document = orjson.loads(raw)
    defs: Mapping[str, Mapping[str, Any]] = document["$defs"]
    return defs


@functools.cache
def _names_by_gvk() -> Mapping[GroupVersionKind, str]:
    index: dict[GroupVersionKind, str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            key = GroupVersionKind(gvk.get("group", ""), gvk["version"], gvk["kind"])
            # Shared kinds (DeleteOptions, WatchEvent) list every group; the first owner wins.
            index.setdefault(key, name)
    return index


def definition_name(gvk: GroupVersionKind) -> str | None:
    """The upstream definition name for a kind, or None if upstream has no such kind."""
    return _names_by_gvk().get(gvk)


@functools.cache
def type_node(gvk: GroupVersionKind) -> TypeNode | None:
    """The schema tree of a built-in kind, or None if there is none."""
    name = definition_name(gvk)
    if name is None:
        return None
    return TypeNode(definitions()[name], definitions())


@functools.cache
def object_meta() -> TypeNode:
    """The schema of ``metadata`` (ObjectMeta), shared by every kind."""
    defs = definitions()
    return TypeNode(defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"], defs)
