"""Naming things: a resource (group, version, plural) and one object of it across clusters.

kplane stamps every stored object with the ``kcp.io/cluster`` annotation, so an object read
through a wildcard (``/clusters/*``) or a virtual workspace still says which logical cluster
it lives in. ``ObjectKey`` is that cluster plus namespace and name: the identity a provider
reconciles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_ANNOTATION = "kcp.io/cluster"


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource: ``group`` "" is the core group (``/api/v1``)."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_prefix(self) -> str:
        """The path of the group version, below a cluster: ``/api/v1`` or ``/apis/g/v``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def cluster_of(obj: Mapping[str, Any]) -> str:
    """The logical cluster an object lives in, from its annotation ("" when it has none)."""
    annotations = _metadata(obj).get("annotations")
    if not isinstance(annotations, Mapping):
        return ""
    return str(annotations.get(CLUSTER_ANNOTATION) or "")


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """Where one object lives: logical cluster, namespace ("" if cluster-scoped), name."""

    cluster: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        meta = _metadata(obj)
        return cls(cluster_of(obj), str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.cluster}|{where}" if self.cluster else where
