"""The per-kind rules the generic Store consults: a :class:`Strategy`.

The Store does everything that is the same for every kind (keys, revisions, uid,
timestamps, finalizers, managed fields, dry runs). A Strategy holds what differs: defaults
and normalisation before a write, validation, which fields are selectable, whether the kind
has a status subresource (and so ignores ``.status`` on the main resource), and whether
``metadata.generation`` is tracked. Upstream shapes this as ``RESTCreateStrategy`` /
``RESTUpdateStrategy``; ours is one small class per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kplane.apimachinery import names
from kplane.apimachinery.builtin_schemas import type_node
from kplane.apimachinery.errors import Cause
from kplane.apimachinery.typeinfo import ANY, TypeNode
from kplane.registry.resources import ResourceType

NameValidator = Callable[[str], list[str]]


def subdomain_name(name: str) -> list[str]:
    return names.is_dns1123_subdomain(name)


def label_name(name: str) -> list[str]:
    return names.is_dns1123_label(name)


def path_segment_name(name: str) -> list[str]:
    return names.validate_path_segment_name(name, False)


def lookup_field(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted path's value, '' where absent (field selector semantics)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


class Strategy:
    """Default behaviour: a plain stored kind validated against its upstream schema."""

    name_validator: NameValidator = staticmethod(subdomain_name)  # type: ignore[assignment]
    # Kinds with a status subresource keep .status out of main-resource writes.
    has_status_subresource = False
    # Custom resources bump metadata.generation on every change outside metadata and status.
    tracks_generation = False
    # Built-in kinds refuse wrongly typed fields with 400 (upstream's decoding error).
    type_errors_are_bad_requests = True

    def __init__(self, rt: ResourceType, schema: TypeNode | None = None) -> None:
        self.rt = rt
        self.schema: TypeNode = schema or type_node(rt.gvk) or ANY

    def published_schema(self) -> tuple[str, Mapping[str, Any]] | None:
        """(definition name, schema) for /openapi/v3 when the kind is not an upstream one."""
        return None

    def storage_form(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        """The object as it is stored (custom resources: under the storage version)."""
        return obj

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as this resource type serves it (in place)."""
        return obj

    def read_bytes(self, raw: bytes) -> bytes:
        """Cached bytes as this resource type serves them; the same bytes for built-ins."""
        return raw

    def field_selector_alias(self, field: str) -> str:
        """The cached field a field selector names (kinds stored in another form rename)."""
        return field

    def printer_columns_for_table(self) -> list[Mapping[str, Any]] | None:
        """additionalPrinterColumns for ``kubectl get`` (None: the kind's own printer)."""
        return None

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        """Defaults and normalisation of a new object, in place."""
        if self.has_status_subresource:
            obj.pop("status", None)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        """Normalisation of an updated object (main resource), in place."""
        if self.has_status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        """Kind-specific checks on a new or updated object; metadata is checked by the Store."""
        return []

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new)

    def selectable_fields(self, obj: Mapping[str, Any]) -> dict[str, str]:
        meta = obj.get("metadata") or {}
        fields = {"metadata.name": str(meta.get("name", ""))}
        if self.rt.namespaced:
            fields["metadata.namespace"] = str(meta.get("namespace", ""))
        for path in self.rt.selectable_fields:
            fields[path] = lookup_field(obj, path)
        return fields

    @property
    def supported_field_selectors(self) -> frozenset[str]:
        base = {"metadata.name", "metadata.namespace"}
        return frozenset(base | set(self.rt.selectable_fields))
