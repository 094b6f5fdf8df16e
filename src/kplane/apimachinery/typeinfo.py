"""Type information about object fields, read from OpenAPI / JSON schemas.

Strategic merge patch, server-side apply and field validation all need to ask the same
questions while walking an object: what kind of value lives at this field (object, map,
list, scalar), how lists merge (``x-kubernetes-list-type``, ``list-map-keys``,
``patch-strategy``, ``patch-merge-key``), and which fields exist at all.

:class:`TypeNode` answers them for one schema node and hands out child nodes lazily, so a
large schema is only resolved where objects actually go. It reads two dialects:

- the built-in definitions shipped by ``kubernetes-validate`` (``$ref: #/$defs/<name>``,
  ``type: ["string", "null"]``), loaded once by :mod:`kplane.apimachinery.builtin_schemas`;
- a CRD's ``openAPIV3Schema`` (plain ``type``, no refs, ``x-kubernetes-*`` extensions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

NodeKind = Literal["object", "map", "list", "scalar", "any"]

Schema = Mapping[str, Any]


def _types_of(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if t != "null"}
    return set()


class TypeNode:
    """One node of a schema: what may stand at one place in an object."""

    __slots__ = ("_children", "_defs", "_items", "_schema", "_values")

    def __init__(self, schema: Schema, defs: Mapping[str, Schema] | None = None) -> None:
        self._defs = defs or {}
        self._schema = self._resolve(schema)
        self._children: dict[str, TypeNode | None] = {}
        self._items: TypeNode | None = None
        self._values: TypeNode | None = None

    def _resolve(self, schema: Schema) -> Schema:
        seen = 0
        while "$ref" in schema and seen < 32:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            target = self._defs.get(name)
            if target is None:
                return {}
            extras = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extras} if extras else target
            seen += 1
        # allOf with a single member is how some generators wrap a $ref with a description.
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
            siblings = {k: v for k, v in schema.items() if k != "allOf"}
            return {**self._resolve(all_of[0]), **siblings}
        return schema

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def kind(self) -> NodeKind:
        s = self._schema
        types = _types_of(s)
        if s.get("x-kubernetes-int-or-string") or (not types and ("oneOf" in s or "anyOf" in s)):
            return "scalar"
        if "array" in types:
            return "list"
        if "object" in types or (not types and ("properties" in s or "additionalProperties" in s)):
            if "properties" in s:
                return "object"
            additional = s.get("additionalProperties")
            if isinstance(additional, Mapping):
                return "map"
            return "any" if s.get("x-kubernetes-preserve-unknown-fields") or not s else "object"
        if types:
            return "scalar"
        return "any"

    @property
    def scalar_types(self) -> set[str]:
        """The JSON types a scalar node accepts: string, integer, number, boolean."""
        s = self._schema
        if s.get("x-kubernetes-int-or-string"):
            return {"string", "integer"}
        options = s.get("oneOf") or s.get("anyOf")
        if isinstance(options, list):
            out: set[str] = set()
            for option in options:
                if isinstance(option, Mapping):
                    out |= _types_of(option)
            return out
        return _types_of(s)

    @property
    def preserves_unknown_fields(self) -> bool:
        return bool(self._schema.get("x-kubernetes-preserve-unknown-fields")) or self.kind == "any"

    @property
    def embedded_resource(self) -> bool:
        return bool(self._schema.get("x-kubernetes-embedded-resource"))

    @property
    def field_names(self) -> frozenset[str]:
        props = self._schema.get("properties")
        return frozenset(props) if isinstance(props, Mapping) else frozenset()

    def field(self, name: str) -> TypeNode | None:
        """The node of a named field of an object, or None if the schema has no such field."""
        if name in self._children:
            return self._children[name]
        props = self._schema.get("properties")
        child: TypeNode | None = None
        if isinstance(props, Mapping) and isinstance(props.get(name), Mapping):
            child = TypeNode(props[name], self._defs)
        self._children[name] = child
        return child

    def values(self) -> TypeNode | None:
        """The node of every value of a map (``additionalProperties``)."""
        if self._values is None:
            additional = self._schema.get("additionalProperties")
            if isinstance(additional, Mapping):
                self._values = TypeNode(additional, self._defs)
        return self._values

    def items(self) -> TypeNode | None:
        """The node of every element of a list."""
        if self._items is None:
            items = self._schema.get("items")
            if isinstance(items, Mapping):
                self._items = TypeNode(items, self._defs)
        return self._items

    def child(self, key: str) -> TypeNode | None:
        """The node for ``key`` whether this is an object (a field) or a map (a value)."""
        if self.kind == "map":
            return self.values()
        return self.field(key)

    # How lists merge.

    @property
    def list_type(self) -> str:
        """``atomic``, ``set`` or ``map`` (x-kubernetes-list-type); atomic when unset."""
        declared = self._schema.get("x-kubernetes-list-type")
        if isinstance(declared, str):
            return declared
        if self.patch_strategy == "merge" and self.patch_merge_key:
            return "map"
        return "atomic"

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        keys = self._schema.get("x-kubernetes-list-map-keys")
        if isinstance(keys, list) and keys:
            return tuple(str(k) for k in keys)
        merge_key = self.patch_merge_key
        return (merge_key,) if merge_key else ()

    @property
    def patch_strategy(self) -> str:
        """``merge``, ``replace``, ``retainKeys`` or a comma list of them; '' when unset."""
        value = self._schema.get("x-kubernetes-patch-strategy")
        return value if isinstance(value, str) else ""

    @property
    def patch_merge_key(self) -> str:
        value = self._schema.get("x-kubernetes-patch-merge-key")
        return value if isinstance(value, str) else ""

    def __repr__(self) -> str:
        return f"TypeNode(kind={self.kind!r}, fields={sorted(self.field_names)[:5]!r})"


ANY = TypeNode({"x-kubernetes-preserve-unknown-fields": True})
"""A node that accepts anything and knows nothing: the fallback where no schema exists."""
