"""Where objects live in the keyspace.

One keyspace holds every tenant (DESIGN.md): ``/registry/<group>/<resource>/<cluster>/``
followed by ``<namespace>/<name>`` for namespaced kinds or ``<name>`` for cluster-scoped ones.
The core group is spelled ``core`` so every key has the same number of segments before the
cluster. Prefixes always end in ``/`` so ``ns-a`` never matches ``ns-ab``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kplane.registry.resources import ResourceType

ROOT = "/registry/"
ALL_CLUSTERS = "*"


def storage_prefix(group: str, resource: str) -> str:
    """Every object stored under one group and resource, across all logical clusters."""
    return f"{ROOT}{group or 'core'}/{resource}/"


def resource_prefix(rt: ResourceType) -> str:
    """Every object of one resource, across all logical clusters."""
    return storage_prefix(rt.stored_group, rt.stored_resource)


def cluster_prefix(rt: ResourceType, cluster: str) -> str:
    return f"{resource_prefix(rt)}{cluster}/"


def collection_prefix(rt: ResourceType, cluster: str, namespace: str) -> str:
    """The objects a LIST returns: one namespace, or the whole cluster when ``namespace`` is
    ''; every logical cluster for the wildcard cluster ``*`` (namespace filtered by caller)."""
    if cluster == ALL_CLUSTERS:
        return resource_prefix(rt)
    base = cluster_prefix(rt, cluster)
    return f"{base}{namespace}/" if rt.namespaced and namespace else base


def object_key(rt: ResourceType, cluster: str, namespace: str, name: str) -> str:
    base = cluster_prefix(rt, cluster)
    return f"{base}{namespace}/{name}" if rt.namespaced else f"{base}{name}"


def cluster_of_key(key: str) -> str:
    """The logical cluster of an object key (the segment after group and resource)."""
    return key.split("/", 5)[4]


@dataclass(frozen=True, slots=True)
class ParsedKey:
    group: str
    resource: str
    cluster: str
    namespace: str
    name: str


def parse_key(key: str) -> ParsedKey | None:
    """Split a key into its parts; None for keys outside the object layout."""
    if not key.startswith(ROOT):
        return None
    parts = key[len(ROOT):].split("/")
    if len(parts) == 4:
        group, resource, cluster, name = parts
        namespace = ""
    elif len(parts) == 5:
        group, resource, cluster, namespace, name = parts
    else:
        return None
    return ParsedKey("" if group == "core" else group, resource, cluster, namespace, name)
