"""Checking an object against its schema: unknown fields, wrong JSON types, pruning.

Every write of an object goes through here once. kube-apiserver gets the same answers
for free from decoding into Go structs (built-in kinds) or from the structural schema
(custom resources): which fields the schema does not know (reported per the request's
``fieldValidation``: ignored, a ``Warning`` header each, or a Strict 400), which values
have the wrong JSON type (a number where a string belongs, a Secret value that is not
base64), and, for custom resources, the pruning of unknown fields before storage.

The walk follows :class:`TypeNode` and the object together in one pass with no schema
library. Paths are printed as upstream prints them: ``.spec.containers[0].foo`` for
unknown fields (the warning drops the first dot) and ``spec.replicas`` for type errors.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kplane.apimachinery.builtin_schemas import object_meta
from kplane.apimachinery.errors import Cause, StatusError, bad_request
from kplane.apimachinery.typeinfo import TypeNode

TYPE_INVALID = "FieldValueTypeInvalid"

# A resource (the root, or an embedded resource) always keeps these, whatever its schema says.
_RESOURCE_FIELDS = ("apiVersion", "kind", "metadata")

# RFC 3339, a little looser than Go's time.Parse (lower-case 't', a space, "+0100", no zone)
# so that a CRD date-time that upstream's OpenAPI checker accepts is never refused here.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@dataclass(slots=True)
class FieldCheckResult:
    """What a walk found: unknown field paths and type errors, in document order."""

    unknown: list[str] = field(default_factory=list)
    type_errors: list[Cause] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.type_errors


# Shapes of a schema node, as far as the walk is concerned.
_OBJECT, _MAP, _LIST, _SCALAR, _ANY = range(5)


def _declared_types(schema: Mapping[str, Any]) -> frozenset[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset((declared,))
    if isinstance(declared, list):
        return frozenset(t for t in declared if t != "null")
    return frozenset()


def _option_types(schema: Mapping[str, Any]) -> frozenset[str]:
    options = schema.get("oneOf") or schema.get("anyOf")
    found: set[str] = set()
    if isinstance(options, list):
        for option in options:
            if isinstance(option, Mapping):
                found |= _declared_types(option)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the walk needs to know of one schema node, computed once per node."""

    kind: int
    types: frozenset[str]
    format: str
    preserves_unknown: bool
    embedded_resource: bool


def _classify(schema: Mapping[str, Any], *, builtin: bool) -> tuple[int, frozenset[str]]:
    """The shape of a node and, for scalars, the JSON types it accepts.

    Read from the schema's own ``type`` first: a CRD object may carry a ``oneOf`` that only
    lists required fields, and it is still an object.
    """
    if schema.get("x-kubernetes-int-or-string"):
        return _SCALAR, frozenset(("integer", "string"))
    types = _declared_types(schema)
    if "array" in types:
        return _LIST, types
    has_properties = "properties" in schema
    additional = schema.get("additionalProperties")
    if "object" in types or (not types and (has_properties or additional is not None)):
        if has_properties:
            return _OBJECT, types
        if isinstance(additional, Mapping):
            return _MAP, types
        if additional is True or schema.get("x-kubernetes-preserve-unknown-fields") or builtin:
            # Built-in free-form objects (FieldsV1, RawExtension) declare no properties;
            # in a CRD, a bare ``type: object`` means every field is pruned.
            return _ANY, types
        return _OBJECT, types
    if types:
        return _SCALAR, types
    options = _option_types(schema)
    return (_SCALAR, options) if options else (_ANY, options)


# Keyed by id(node) and holding the node itself, so an id is never reused while cached.
# Built-in nodes live for the process; a CRD's are replaced when it changes, hence a bound.
_SHAPE_CACHES: tuple[dict[int, tuple[TypeNode, _Shape]], ...] = ({}, {})
_SHAPE_CACHE_LIMIT = 65536


def _shape_of(node: TypeNode, *, builtin: bool) -> _Shape:
    cache = _SHAPE_CACHES[builtin]
    hit = cache.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    schema = node.schema
    kind, types = _classify(schema, builtin=builtin)
    schema_format = schema.get("format")
    shape = _Shape(
        kind=kind,
        types=types,
        format=schema_format if isinstance(schema_format, str) else "",
        preserves_unknown=bool(schema.get("x-kubernetes-preserve-unknown-fields")),
        embedded_resource=bool(schema.get("x-kubernetes-embedded-resource")),
    )
    if len(cache) >= _SHAPE_CACHE_LIMIT:
        cache.clear()
    cache[id(node)] = (node, shape)
    return shape


def field_path(path: str) -> str:
    """The path as upstream prints it in messages: no leading dot."""
    return path[1:] if path.startswith(".") else path


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict | Mapping):
        return "object"
    return type(value).__name__


def _scalar_accepted(value: Any, types: frozenset[str]) -> bool:
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return "integer" in types or "number" in types
    if isinstance(value, float):
        # An integral float (1.0) is a JSON integer, as upstream's OpenAPI checker decides.
        return "number" in types or ("integer" in types and value.is_integer())
    return False


def _type_error(path: str, found: str, expected: str) -> Cause:
    where = field_path(path)
    return Cause(
        TYPE_INVALID,
        f'Invalid value: "{found}": {where or "body"} in body must be of type {expected}: '
        f'"{found}"',
        where,
    )


def _base64_problem(value: str) -> str | None:
    """Go's StdEncoding: padded, line breaks ignored; the message names the bad byte."""
    data = value.replace("\r", "").replace("\n", "") if "\n" in value or "\r" in value else value
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        for index, char in enumerate(data):
            if char not in _BASE64_ALPHABET:
                return f"illegal base64 data at input byte {index}"
        return f"illegal base64 data at input byte {len(data)}"
    return None


def _format_error(value: str, schema_format: str, path: str) -> Cause | None:
    path = field_path(path)
    if schema_format == "byte":
        problem = _base64_problem(value)
        if problem:
            # The value is not echoed: it is typically a Secret's.
            return Cause(
                TYPE_INVALID,
                f'Invalid value: "string": {path} in body must be of type byte '
                f"(base64-encoded data): {problem}",
                path,
            )
    elif schema_format == "date-time" and not _DATE_TIME.fullmatch(value):
        return Cause(
            TYPE_INVALID,
            f'Invalid value: "{value}": {path} in body must be of type date-time: "{value}"',
            path,
        )
    return None


class _Walker:
    """One pass over an object; collects findings and prunes in place when asked to."""

    __slots__ = ("builtin", "prune", "result")

    def __init__(self, *, prune: bool, builtin: bool) -> None:
        self.prune = prune
        self.builtin = builtin
        self.result = FieldCheckResult()

    def value(self, value: Any, node: TypeNode, path: str) -> None:
        if value is not None:
            self.checked(value, node, _shape_of(node, builtin=self.builtin), path)

    def checked(self, value: Any, node: TypeNode, shape: _Shape, path: str) -> None:
        kind = shape.kind
        if kind == _SCALAR:
            self.scalar(value, shape, path)
        elif kind == _LIST:
            if self.expect(value, list, "array", path):
                self.list(value, node, path)
        elif kind == _ANY or not self.expect(value, dict, "object", path):
            return
        elif kind == _MAP:
            self.map(value, node, path)
        else:
            self.object(value, node, path, resource=shape.embedded_resource)

    def expect(self, value: Any, python_type: type, json_type: str, path: str) -> bool:
        if isinstance(value, python_type):
            return True
        self.result.type_errors.append(_type_error(path, _json_type(value), json_type))
        return False

    def scalar(self, value: Any, shape: _Shape, path: str) -> None:
        if not _scalar_accepted(value, shape.types):
            expected = " or ".join(sorted(shape.types)) or "scalar"
            self.result.type_errors.append(_type_error(path, _json_type(value), expected))
            return
        if shape.format and isinstance(value, str):
            error = _format_error(value, shape.format, path)
            if error is not None:
                self.result.type_errors.append(error)

    def object(self, obj: dict[str, Any], node: TypeNode, path: str, *, resource: bool) -> None:
        preserves = _shape_of(node, builtin=self.builtin).preserves_unknown
        pruned: list[str] = []
        for key, child_value in obj.items():
            child_path = f"{path}.{key}"
            if resource and key in _RESOURCE_FIELDS:
                self.resource_field(key, child_value, node, child_path)
                continue
            child = node.field(key)
            if child is not None:
                self.value(child_value, child, child_path)
            elif not preserves:
                self.result.unknown.append(child_path)
                pruned.append(key)
        if self.prune:
            for key in pruned:
                del obj[key]

    def resource_field(self, key: str, value: Any, node: TypeNode, path: str) -> None:
        if key == "metadata":
            # Every resource's metadata is an ObjectMeta, whatever a CRD schema declares.
            walker = _Walker(prune=self.prune, builtin=True)
            walker.result = self.result
            walker.value(value, object_meta(), path)
            return
        if value is not None and not isinstance(value, str):
            self.result.type_errors.append(_type_error(path, _json_type(value), "string"))
        declared = node.field(key)
        if declared is not None and isinstance(value, str):
            self.value(value, declared, path)

    def map(self, obj: dict[str, Any], node: TypeNode, path: str) -> None:
        values = node.values()
        if values is None:
            return
        shape = _shape_of(values, builtin=self.builtin)
        if shape.kind == _ANY:
            return
        for key, child_value in obj.items():
            if child_value is not None:
                self.checked(child_value, values, shape, f"{path}.{key}")

    def list(self, items: list[Any], node: TypeNode, path: str) -> None:
        item_node = node.items()
        if item_node is None:
            return
        shape = _shape_of(item_node, builtin=self.builtin)
        if shape.kind == _ANY:
            return
        for index, item in enumerate(items):
            if item is not None:
                self.checked(item, item_node, shape, f"{path}[{index}]")


def check_fields(obj: Any, node: TypeNode, *, prune: bool) -> FieldCheckResult:
    """Walk ``obj`` (a whole resource) along ``node``; prune unknown fields when asked.

    ``apiVersion``, ``kind`` and ``metadata`` are never unknown at the root (nor in an
    embedded resource); ``metadata`` is checked against ObjectMeta. ``null`` is accepted
    everywhere. Pruning never touches a subtree whose schema preserves unknown fields.
    """
    builtin = "x-kubernetes-group-version-kind" in node.schema
    walker = _Walker(prune=prune, builtin=builtin)
    if obj is None:
        return walker.result
    if walker.expect(obj, dict, "object", ""):
        walker.object(obj, node, "", resource=True)
    return walker.result


def warning_text(path: str) -> str:
    """The ``Warning`` header text of one unknown field in ``fieldValidation=Warn``."""
    return f'unknown field "{field_path(path)}"'


def strict_error(paths: Collection[str]) -> StatusError:
    """The 400 of ``fieldValidation=Strict``, naming every unknown field."""
    listed = ", ".join(warning_text(path) for path in paths)
    return bad_request(f"strict decoding error: {listed}")


def type_error_message(causes: Collection[Cause]) -> str:
    """One line for a 400 about wrongly typed fields (built-in kinds fail to decode)."""
    return "; ".join(f"{cause.field}: {cause.message}" if cause.field else cause.message
                     for cause in causes)


__all__ = [
    "TYPE_INVALID",
    "FieldCheckResult",
    "check_fields",
    "field_path",
    "strict_error",
    "type_error_message",
    "warning_text",
]
