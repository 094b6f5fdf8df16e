"""What the server knows about one kind of resource, independent of any object.

A :class:`ResourceType` names a resource the way every other layer needs it: the URL path
segment (``configmaps``), the kind (``ConfigMap``), its group and version, whether it lives in
namespaces, its short names and categories for discovery, the verbs it supports, and its
subresources. Discovery, OpenAPI, routing, storage keys and Table output all read from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kplane.apimachinery.builtin_schemas import GroupVersionKind

ALL_VERBS: tuple[str, ...] = (
    "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
)


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource in one group-version."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    # The group/resource objects are stored under; differs from ``group`` when one stored
    # resource is served in several groups (core/v1 Event and events.k8s.io/v1 Event).
    storage_group: str | None = None
    storage_resource: str | None = None
    # Field selectors beyond metadata.name / metadata.namespace, as JSON paths without the
    # leading dot (``status.phase``, ``type``).
    selectable_fields: tuple[str, ...] = ()
    # Strategic merge patch is only defined for kinds with a Go struct upstream.
    supports_strategic_merge: bool = True
    # Custom resource types belong to the logical cluster whose CRD defines them; built-in
    # types ('') are the same in every cluster.
    cluster: str = ""
    # Resource types are dictionary keys on every request (strategies, caches), so their
    # identity is computed once rather than field by field on each lookup.
    _key: tuple[object, ...] = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.group, self.version, self.resource, self.kind, self.namespaced,
               self.singular, self.short_names, self.categories, self.verbs,
               self.subresources, self.storage_group, self.storage_resource,
               self.selectable_fields, self.supports_strategic_merge, self.cluster)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, ResourceType):
            return NotImplemented
        return self._hash == other._hash and self._key == other._key

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gvk(self) -> GroupVersionKind:
        return GroupVersionKind(self.group, self.version, self.kind)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def stored_group(self) -> str:
        return self.group if self.storage_group is None else self.storage_group

    @property
    def stored_resource(self) -> str:
        return self.resource if self.storage_resource is None else self.storage_resource

    @property
    def group_resource(self) -> str:
        """``configmaps`` or ``roles.rbac.authorization.k8s.io``: how errors name it."""
        return f"{self.resource}.{self.group}" if self.group else self.resource
