"""Field sets: which paths of an object a manager owns, and their FieldsV1 wire format.

Server-side apply and ``metadata.managedFields`` describe ownership as a set of paths into
an object. Upstream (sigs.k8s.io/structured-merge-diff) serialises such a set as
``FieldsV1``: a trie of JSON objects whose keys are path elements (``f:<field>``,
``k:<key fields as JSON>``, ``v:<value as JSON>``, ``i:<index>``) and where ``".": {}``
marks a node that is owned itself as well as having owned children. Clients read and
write this format (``kubectl apply --server-side`` migrates ownership by patching it), so
it must be byte-compatible, including the order of keys.

This module owns:

- :class:`FieldSet`, an immutable set of paths stored directly as a FieldsV1 trie, so a
  stored ``managedFields`` entry needs no conversion to be used and unchanged sub-tries
  are shared rather than copied;
- :func:`encode` / :func:`decode` to and from the wire format;
- the schema-driven walks every write needs: :func:`fieldset_from_object` (the paths an
  applied configuration specifies, upstream's ``ToFieldSet``) and :func:`compare_objects`
  (what a write changed, upstream's ``Compare``);
- :class:`Shape`, how a :class:`~kplane.apimachinery.typeinfo.TypeNode` behaves when
  merging (granular map, list-map, set, atomic, ...), shared with
  :mod:`kplane.apimachinery.apply`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from kplane.apimachinery.builtin_schemas import object_meta
from kplane.apimachinery.typeinfo import ANY, TypeNode

Trie = dict[str, "Trie"]
"""A FieldsV1 node: path element -> child node; ``{}`` is an owned leaf, ``"."`` marks
that a node with children is owned itself."""

Path = tuple[str, ...]
"""A path as serialised path elements, e.g. ``("f:data", "f:a")``."""

SELF: Final = "."

MISSING: Final[Any] = object()
"""Stands for an absent value (as opposed to an explicit JSON null)."""


class FieldPathError(ValueError):
    """An object that does not fit its schema well enough to compute field paths."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


# Path elements.


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it (sorted keys, HTML-safe escapes).

    Path elements embed values as JSON; two encodings of the same value must give the
    same string or the same list element would be two different paths.
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(
        value
    ) < 1e21:
        value = int(value)
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if any(c in text for c in "<>&\u2028\u2029"):
        text = (
            text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        )
    return text


def field_element(name: str) -> str:
    return "f:" + name


def key_element(fields: Mapping[str, Any]) -> str:
    """The element of a list-map item identified by its key fields (sorted by name)."""
    parts = [f"{go_json(name)}:{go_json(fields[name])}" for name in sorted(fields)]
    return "k:{" + ",".join(parts) + "}"


def value_element(value: Any) -> str:
    return "v:" + go_json(value)


def index_element(index: int) -> str:
    return f"i:{index}"


def _go_quote(text: str) -> str:
    return orjson.dumps(text).decode()


def _value_text(value: Any) -> str:
    """A value as upstream's ``value.ToString`` shows it inside a path."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, list):
        return "[" + ",".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_value_text(v)}" for k, v in value.items())
    return str(value)


def element_text(element: str) -> str:
    """A path element as upstream prints it: ``.name``, ``[name="x"]``, ``[="v"]``, ``[0]``."""
    kind, body = element[0], element[2:]
    if kind == "f":
        return "." + body
    if kind == "k":
        fields = orjson.loads(body)
        return "[" + ",".join(f"{k}={_value_text(v)}" for k, v in fields.items()) + "]"
    if kind == "v":
        return f"[={_value_text(orjson.loads(body))}]"
    return f"[{body}]"


def path_text(path: Iterable[str]) -> str:
    """A path as upstream prints it in conflicts, e.g. ``.spec.containers[name="a"].image``."""
    return "".join(element_text(e) for e in path)


def _canonical_element(element: str) -> str:
    """Re-encode the JSON inside a decoded element so equal elements are equal strings."""
    if len(element) < 2 or element[1] != ":":
        raise ValueError(f"key must be a path element: {element!r}")
    kind, body = element[0], element[2:]
    if kind == "f":
        return element
    if kind == "i":
        return index_element(int(body))
    if kind not in ("k", "v"):
        raise _UnknownElement(element)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid path element {element!r}: {exc}") from None
    if kind == "v":
        return value_element(parsed)
    if not isinstance(parsed, dict):
        raise ValueError(f"invalid key path element {element!r}")
    return key_element(parsed)


class _UnknownElement(ValueError):
    pass


# Ordering, as upstream's PathElement.Compare: fields < keys < values < indexes.


def _value_order(value: Any) -> tuple[Any, ...]:
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_order(v) for v in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_order(value[k])) for k in sorted(value)))
    return (5,)


def _element_order(element: str) -> tuple[Any, ...]:
    kind, body = element[0], element[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        fields = orjson.loads(body)
        return (1, tuple((k, _value_order(fields[k])) for k in sorted(fields)))
    if kind == "v":
        return (2, _value_order(orjson.loads(body)))
    return (3, int(body))


def _sorted_elements(keys: list[str]) -> list[str]:
    ordered = sorted(keys)
    if ordered and ordered[0].startswith("f:") and ordered[-1].startswith("f:"):
        # Plain string order groups elements by kind; when all are fields it is also
        # the order of their names.
        return ordered
    return sorted(keys, key=_element_order)


# Trie primitives. A node's content is a Trie; whether the node itself is owned is
# "." in it, or it being empty (an owned leaf). The root is never owned itself.


def _owned(node: Trie) -> bool:
    return not node or SELF in node


def _make_node(owned: bool, children: Trie) -> Trie | None:
    """Build a node from its parts; None when it would hold nothing."""
    if not children:
        return {} if owned else None
    if owned:
        children[SELF] = {}
    return children


def _children(node: Trie) -> Iterator[tuple[str, Trie]]:
    for key, child in node.items():
        if key != SELF:
            yield key, child


def _has_children(node: Trie) -> bool:
    return len(node) > (1 if SELF in node else 0)


def _rebuild(owned: bool, trie: Trie) -> Trie | None:
    """A fresh node with ``trie``'s children and the given ownership."""
    return _make_node(owned, {k: v for k, v in trie.items() if k != SELF})


def _union(a: Trie, b: Trie) -> Trie:
    """The children of two nodes merged (ownership of the nodes themselves is the caller's)."""
    if a is b or not _has_children(b):
        return a
    if not _has_children(a):
        return b
    out: Trie | None = None
    for key, theirs in _children(b):
        mine = a.get(key)
        if mine is theirs:
            continue
        if mine is None:
            node: Trie | None = theirs
        else:
            owned = _owned(mine) or _owned(theirs)
            merged = _union(mine, theirs)
            if merged is mine and owned == _owned(mine):
                continue
            node = _rebuild(owned, merged)
        if out is None:
            out = a.copy()
        out[key] = node if node is not None else {}
    return a if out is None else out


def _difference(a: Trie, b: Trie) -> Trie:
    """Children of ``a`` minus the paths owned in ``b`` (descendants kept unless listed)."""
    if not _has_children(a) or not _has_children(b):
        return a
    out: Trie | None = None
    for key, theirs in _children(b):
        mine = a.get(key)
        if mine is None:
            continue
        was_owned = _owned(mine)
        owned = was_owned and not _owned(theirs)
        rest = _difference(mine, theirs)
        if rest is mine and owned == was_owned:
            continue
        node = _rebuild(owned, rest)
        if out is None:
            out = a.copy()
        if node is None:
            del out[key]
        else:
            out[key] = node
    return a if out is None else out


def _recursive_difference(a: Trie, b: Trie) -> Trie:
    """Children of ``a`` minus the paths in ``b`` and everything below them."""
    if not _has_children(a) or not _has_children(b):
        return a
    out: Trie | None = None
    for key, theirs in _children(b):
        mine = a.get(key)
        if mine is None:
            continue
        if _owned(theirs):
            node = None
        else:
            rest = _recursive_difference(mine, theirs)
            if rest is mine:
                continue
            node = _rebuild(_owned(mine), rest)
        if out is None:
            out = a.copy()
        if node is None:
            del out[key]
        else:
            out[key] = node
    return a if out is None else out


def _intersection(a: Trie, b: Trie) -> Trie:
    out: Trie = {}
    if not _has_children(a) or not _has_children(b):
        return out
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for key, child in _children(small):
        other = large.get(key)
        if other is None:
            continue
        node = _make_node(_owned(child) and _owned(other), _intersection(child, other))
        if node is not None:
            out[key] = node
    return out


def _iterate(node: Trie, prefix: Path) -> Iterator[Path]:
    """Owned paths in upstream's order: a node's owned children first, then the deeper ones."""
    keys = _sorted_elements([k for k in node if k != SELF])
    for key in keys:
        if _owned(node[key]):
            yield (*prefix, key)
    for key in keys:
        child = node[key]
        if _has_children(child):
            yield from _iterate(child, (*prefix, key))


def _insert(root: Trie, path: Path) -> None:
    """Add a path to a trie being built (mutates; only for tries nobody else holds)."""
    node = root
    last = len(path) - 1
    for i, element in enumerate(path):
        child = node.get(element)
        if child is None:
            # A node created only as a parent gets children in the next step, which
            # makes it unowned; one created last is an owned leaf.
            child = {}
            node[element] = child
        elif i == last and _has_children(child):
            child[SELF] = {}
        elif i < last and not child:
            # An owned leaf that gains children stays owned.
            child[SELF] = {}
        node = child


class FieldSet:
    """An immutable set of field paths, held as a FieldsV1 trie.

    Operations return new sets that share every unchanged sub-trie with their inputs;
    nothing ever mutates a trie once a FieldSet holds it.
    """

    __slots__ = ("_trie",)

    def __init__(self, trie: Trie | None = None) -> None:
        self._trie: Trie = trie if trie is not None else {}

    @classmethod
    def from_paths(cls, paths: Iterable[Path]) -> FieldSet:
        root: Trie = {}
        for path in paths:
            if path:
                _insert(root, tuple(path))
        return cls(root)

    @property
    def trie(self) -> Trie:
        """The underlying trie (wire layout, unordered); read-only."""
        return self._trie

    @property
    def empty(self) -> bool:
        return not self._trie

    def __bool__(self) -> bool:
        return bool(self._trie)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and self._trie == other._trie

    def __hash__(self) -> int:
        return hash(orjson.dumps(self._trie, option=orjson.OPT_SORT_KEYS))

    def __repr__(self) -> str:
        return f"FieldSet({[path_text(p) for p in self.paths()]!r})"

    def union(self, other: FieldSet) -> FieldSet:
        merged = _union(self._trie, other._trie)
        if merged is self._trie:
            return self
        return other if merged is other._trie else FieldSet(merged)

    def difference(self, other: FieldSet) -> FieldSet:
        """Paths in this set and not in ``other`` (children of a removed path stay)."""
        rest = _difference(self._trie, other._trie)
        return self if rest is self._trie else FieldSet(rest)

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Paths in this set that neither are in ``other`` nor lie below one of its paths."""
        rest = _recursive_difference(self._trie, other._trie)
        return self if rest is self._trie else FieldSet(rest)

    def intersection(self, other: FieldSet) -> FieldSet:
        return FieldSet(_intersection(self._trie, other._trie))

    def has(self, path: Path) -> bool:
        node = self._trie
        for element in path:
            child = node.get(element)
            if child is None or element == SELF:
                return False
            node = child
        return bool(path) and _owned(node)

    def paths(self) -> Iterator[Path]:
        """Every owned path, in upstream's iteration order."""
        return _iterate(self._trie, ())

    def __len__(self) -> int:
        return sum(1 for _ in self.paths())

    def child(self, element: str) -> FieldSet:
        """The paths below one element, relative to it."""
        node = self._trie.get(element)
        if node is None or not _has_children(node):
            return EMPTY
        if SELF in node:
            return FieldSet({k: v for k, v in node.items() if k != SELF})
        return FieldSet(node)


EMPTY: Final = FieldSet()


def field_paths(*dotted: str) -> FieldSet:
    """A set of simple field paths written with dots, e.g. ``field_paths("status")``."""
    return FieldSet.from_paths(
        tuple(field_element(part) for part in d.split(".")) for d in dotted if d
    )


STRIPPED_FIELDS: Final = FieldSet.from_paths(
    [("f:apiVersion",), ("f:kind",), ("f:metadata",)]
    + [
        ("f:metadata", field_element(name))
        for name in (
            "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
            "generation", "managedFields", "resourceVersion",
        )
    ]
)
"""Paths nobody is recorded as owning (upstream's ``stripMeta``); removed exactly, so
``metadata.labels`` and other children of ``metadata`` are kept."""


# Wire format.


def _encode_node(node: Trie) -> Trie:
    out: Trie = {}
    if not node:
        return out
    if SELF in node and _has_children(node):
        out[SELF] = {}
    for key in _sorted_elements([k for k in node if k != SELF]):
        out[key] = _encode_node(node[key])
    return out


def encode(fields: FieldSet) -> dict[str, Any]:
    """The FieldsV1 object for a set, keys in upstream's order (``"."`` first)."""
    return _encode_node(fields.trie)


def _decode_node(raw: Any, where: str) -> tuple[Trie, bool]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object in fieldsV1")
    children: Trie = {}
    owned = False
    for key, value in raw.items():
        if key == SELF:
            owned = True
            continue
        if not isinstance(key, str):
            raise ValueError(f"{where}: invalid key in fieldsV1")
        try:
            element = _canonical_element(key)
        except _UnknownElement:
            # Upstream drops element kinds it does not know rather than failing.
            continue
        grandchildren, child_owned = _decode_node(value, where + "/" + key)
        node = _make_node(child_owned, grandchildren)
        if node is None:
            continue
        existing = children.get(element)
        if existing is not None:
            both = _make_node(_owned(existing) or _owned(node), _union(existing, node).copy())
            node = both if both is not None else {}
        children[element] = node
    if not children:
        owned = True
    return children, owned


def decode(raw: Any) -> FieldSet:
    """Parse a FieldsV1 object (validating it); raises ValueError when malformed."""
    children, _ = _decode_node(raw, "fieldsV1")
    children.pop(SELF, None)
    return FieldSet(children)


# Schemas: how a node merges.

ShapeKind = Literal["leaf", "map", "set", "listmap", "any"]


@dataclass(frozen=True, slots=True)
class Shape:
    """How values at one schema node merge and are tracked.

    ``leaf`` values (scalars, atomic lists and maps) are owned whole; ``map`` values are
    granular per key (``fields`` are the declared names, ``values`` the node of any other
    key, None when other keys are not allowed); ``set`` and ``listmap`` lists are granular
    per element; ``any`` (no schema) is a granular map for objects and a leaf otherwise.
    """

    kind: ShapeKind
    node: TypeNode
    fields: frozenset[str] = frozenset()
    values: TypeNode | None = None
    keys: tuple[str, ...] = ()
    key_defaults: tuple[tuple[str, Any], ...] = ()
    nullable: bool = False
    metadata: TypeNode | None = None

    def child(self, key: str) -> TypeNode | None:
        if key in self.fields:
            return self.node.field(key)
        return self.values

    def is_named(self, key: str) -> bool:
        return key in self.fields


_SHAPES: dict[int, tuple[TypeNode, Shape]] = {}
_SHAPE_CACHE_LIMIT = 100_000


def _key_default(items: TypeNode | None, key: str) -> Any:
    node = items.field(key) if items is not None else None
    if node is not None and "default" in node.schema:
        return node.schema["default"]
    if key == "protocol":
        # Upstream's OpenAPI defaults port protocols to TCP; the shipped schemas omit it,
        # and without it an applied port would not match its defaulted live twin.
        return "TCP"
    return MISSING


def _compute_shape(node: TypeNode) -> Shape:
    schema = node.schema
    nullable = bool(schema.get("nullable"))
    kind = node.kind
    if kind == "scalar":
        return Shape("leaf", node, nullable=nullable)
    if kind == "any":
        return Shape("any", node, values=ANY, nullable=True)
    if kind == "list":
        list_type = node.list_type
        if list_type == "set":
            return Shape("set", node, nullable=nullable)
        if list_type == "map" and node.list_map_keys:
            items = node.items()
            defaults = tuple(
                (key, default) for key in node.list_map_keys
                if (default := _key_default(items, key)) is not MISSING
            )
            return Shape(
                "listmap", node, keys=node.list_map_keys, key_defaults=defaults,
                nullable=nullable,
            )
        return Shape("leaf", node, nullable=nullable)
    if schema.get("x-kubernetes-map-type") == "atomic":
        return Shape("leaf", node, nullable=nullable)
    if kind == "map":
        return Shape("map", node, values=node.values(), nullable=nullable)
    values: TypeNode | None = node.values()
    if values is None and node.preserves_unknown_fields:
        values = ANY
    return Shape("map", node, fields=node.field_names, values=values, nullable=nullable)


def shape_of(node: TypeNode) -> Shape:
    """The (cached) merge behaviour of a schema node."""
    cached = _SHAPES.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    shape = _compute_shape(node)
    if len(_SHAPES) >= _SHAPE_CACHE_LIMIT:
        _SHAPES.clear()
    # The node is kept alive with its shape so its id cannot be reused while cached.
    _SHAPES[id(node)] = (node, shape)
    return shape


_ROOT_SHAPES: dict[int, tuple[TypeNode, Shape]] = {}


def root_shape(node: TypeNode) -> Shape:
    """The shape of a whole object: ``metadata`` is always ObjectMeta, ``apiVersion`` and
    ``kind`` always strings, whatever a custom resource's schema declares."""
    cached = _ROOT_SHAPES.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    base = shape_of(node)
    shape = base
    if base.kind in ("map", "any"):
        declared = node.field("metadata")
        if declared is None or "labels" not in declared.field_names:
            # A custom resource's schema says little or nothing about metadata; it is
            # ObjectMeta all the same (labels granular, finalizers a set, ...).
            declared = object_meta()
        shape = Shape(
            "map", node, fields=base.fields | {"apiVersion", "kind", "metadata"},
            values=base.values, nullable=base.nullable, metadata=declared,
        )
    if len(_ROOT_SHAPES) >= _SHAPE_CACHE_LIMIT:
        _ROOT_SHAPES.clear()
    _ROOT_SHAPES[id(node)] = (node, shape)
    return shape


_STRING = TypeNode({"type": "string"})


def root_child(shape: Shape, key: str) -> TypeNode | None:
    """The node of a top-level field, with the fallbacks of :func:`root_shape`."""
    if key == "metadata":
        return shape.metadata
    if key in ("apiVersion", "kind"):
        return shape.node.field(key) or _STRING
    return shape.child(key)


def child_node(shape: Shape, key: str, *, root: bool) -> TypeNode | None:
    return root_child(shape, key) if root else shape.child(key)


def item_element(item: Any, shape: Shape) -> str | None:
    """The path element of a granular list's item; None if the item cannot have one."""
    if shape.kind == "set":
        if isinstance(item, dict | list) or item is None:
            return None
        return value_element(item)
    if not isinstance(item, dict):
        return None
    fields: dict[str, Any] = {}
    defaults = dict(shape.key_defaults)
    for key in shape.keys:
        if key in item:
            fields[key] = item[key]
        elif key in defaults:
            fields[key] = defaults[key]
    return key_element(fields) if fields else None


def item_error(shape: Shape) -> str:
    """Upstream's wording for an item :func:`item_element` rejects."""
    if shape.kind == "set":
        return "associative list without keys has an element that's a map type"
    keys = " ".join(_go_quote(k) for k in shape.keys)
    return (
        f"associative list with keys has an element that omits all key fields [{keys}] "
        "(and doesn't have default values for any key fields)"
    )


def list_elements(items: list[Any], shape: Shape) -> list[str] | None:
    """Path elements of every item of a granular list, or None if one has none."""
    out: list[str] = []
    for item in items:
        element = item_element(item, shape)
        if element is None:
            return None
        out.append(element)
    return out


def effective_kind(shape: Shape, *values: Any) -> ShapeKind:
    """The shape kind to use for these values: a value of the wrong JSON type is a leaf."""
    kind = shape.kind
    if kind == "any":
        kind = "map"
    if kind == "map":
        expected: type = dict
    elif kind in ("set", "listmap"):
        expected = list
    else:
        return "leaf"
    for value in values:
        if value is not MISSING and value is not None and not isinstance(value, expected):
            return "leaf"
    return kind


def strict_json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values that, unlike ``==``, tells ``true`` from ``1``."""
    if a is b:
        return True
    if a != b:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b)
    return True


# ToFieldSet: the paths an object specifies.


_SCALAR_TYPES: Final = frozenset({str, int, float, bool})


@dataclass(slots=True)
class _SetWalk:
    strict: bool

    def fail(self, path: Path, message: str) -> None:
        raise FieldPathError(path_text(path), message)

    def value(self, value: Any, node: TypeNode | None, path: Path, *, root: bool = False) -> \
            tuple[Trie, bool]:
        """(children, owned) of the node holding ``value``."""
        if type(value) in _SCALAR_TYPES:
            return {}, True
        shape = root_shape(node) if root and node is not None else shape_of(node or ANY)
        kind = effective_kind(shape, value)
        if kind == "leaf":
            return {}, True
        if value is None:
            return {}, False
        if kind == "map":
            return self.mapping(value, shape, path, root=root), False
        return self.items(value, shape, path), False

    def mapping(self, value: dict[str, Any], shape: Shape, path: Path, *, root: bool) -> Trie:
        out: Trie = {}
        for key, child_value in value.items():
            if root and key == "metadata" and isinstance(child_value, dict) and \
                    "managedFields" in child_value:
                child_value = {k: v for k, v in child_value.items() if k != "managedFields"}
            element = field_element(key)
            node = child_node(shape, key, root=root)
            if node is None and shape.kind != "any":
                if self.strict:
                    self.fail((*path, element), "field not declared in schema")
                node = ANY
            children, owned = self.value(child_value, node, (*path, element))
            if not owned and (
                child_value is None
                or (isinstance(child_value, dict) and not child_value)
                or not shape.is_named(key)
            ):
                owned = True
            built = _make_node(owned, children)
            if built is not None:
                out[element] = built
        return out

    def items(self, value: list[Any], shape: Shape, path: Path) -> Trie:
        elements = list_elements(value, shape)
        if elements is None:
            if self.strict:
                bad = next(i for i, v in enumerate(value) if item_element(v, shape) is None)
                raise FieldPathError(path_text(path), f"element {bad}: {item_error(shape)}")
            return {}
        counts: dict[str, int] = {}
        for element in elements:
            counts[element] = counts.get(element, 0) + 1
        out: Trie = {}
        items_node = shape.node.items()
        for element, item in zip(elements, value, strict=True):
            if counts[element] > 1:
                if self.strict:
                    raise FieldPathError(
                        path_text(path), f"duplicate entries for key {element_text(element)}"
                    )
                out[element] = {}
                continue
            children, _ = self.value(item, items_node, (*path, element))
            built = _make_node(True, children)
            out[element] = built if built is not None else {}
        return out


def fieldset_from_object(
    obj: Mapping[str, Any], node: TypeNode, *, reset: FieldSet | None = None,
    strip: bool = True, strict: bool = False,
) -> FieldSet:
    """The paths an object (an applied configuration) specifies, as upstream's ToFieldSet.

    Scalars, atomic lists and atomic maps are owned whole; every item of a granular list
    and every key of a map (as opposed to a declared field) is owned itself as well as
    its children; a field set to null or ``{}`` is owned. ``strip`` drops the paths
    nobody owns (:data:`STRIPPED_FIELDS`), ``reset`` drops paths and everything below
    them (``status`` on a main resource, say). ``strict`` raises :class:`FieldPathError`
    for fields the schema does not declare, list items without keys and duplicates, as
    upstream does when it types an apply request.
    """
    walk = _SetWalk(strict=strict)
    children, _ = walk.value(dict(obj), node, (), root=True)
    fields = FieldSet(children)
    if strip:
        fields = fields.difference(STRIPPED_FIELDS)
    if reset is not None and not reset.empty:
        fields = fields.recursive_difference(reset)
    return fields


# Compare: what a write changed.


@dataclass(frozen=True, slots=True)
class Comparison:
    """What changed from one object to another: paths added or modified, and removed."""

    changed: FieldSet
    removed: FieldSet

    @property
    def same(self) -> bool:
        return self.changed.empty and self.removed.empty


def _is_empty_container(value: Any) -> bool:
    return value is MISSING or value is None or (isinstance(value, dict | list) and not value)


_LEAF_TYPES: Final = _SCALAR_TYPES | {type(None), type(MISSING)}


class _CompareWalk:
    """Walks two objects together; records changed/removed paths like upstream's Compare."""

    __slots__ = ()

    def node(self, old: Any, new: Any, node: TypeNode | None, *, root: bool = False) -> \
            tuple[Trie | None, Trie | None]:
        """(changed, removed) nodes for one path; ``old``/``new`` may be MISSING."""
        if old is not MISSING and new is not MISSING and strict_json_equal(old, new):
            return None, None
        if type(old) in _LEAF_TYPES and type(new) in _LEAF_TYPES:
            # Scalars (and nulls) are leaves whatever the schema says.
            if old is MISSING:
                return {}, None
            if new is MISSING:
                return None, {}
            return {}, None
        shape = root_shape(node) if root and node is not None else shape_of(node or ANY)
        kind = effective_kind(shape, old, new)
        if kind != "leaf" and _is_empty_container(old) and _is_empty_container(new):
            kind = "leaf"
        if kind == "map":
            changed, removed = self.mapping(
                old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {},
                shape, root=root,
            )
        elif kind != "leaf":
            lists = self.items(
                old if isinstance(old, list) else [], new if isinstance(new, list) else [],
                shape,
            )
            if lists is None:
                kind = "leaf"
            else:
                changed, removed = lists
        if kind == "leaf":
            if old is MISSING:
                return {}, None
            if new is MISSING:
                return None, {}
            return {}, None
        return _make_node(old is MISSING, changed), _make_node(new is MISSING, removed)

    def mapping(self, old: dict[str, Any], new: dict[str, Any], shape: Shape, *,
                root: bool) -> tuple[Trie, Trie]:
        changed: Trie = {}
        removed: Trie = {}
        for key, new_value in new.items():
            old_value = old.get(key, MISSING)
            if root and key == "metadata":
                old_value, new_value = _without_managed_fields(old_value, new_value)
            if old_value is new_value:
                continue
            self._record(key, old_value, new_value, shape, root, changed, removed)
        for key, old_value in old.items():
            if key not in new:
                self._record(key, old_value, MISSING, shape, root, changed, removed)
        return changed, removed

    def _record(self, key: str, old_value: Any, new_value: Any, shape: Shape, root: bool,
                changed: Trie, removed: Trie) -> None:
        child = child_node(shape, key, root=root)
        c, r = self.node(old_value, new_value, child)
        element = field_element(key)
        if c is not None:
            changed[element] = c
        if r is not None:
            removed[element] = r

    def items(self, old: list[Any], new: list[Any], shape: Shape) -> \
            tuple[Trie, Trie] | None:
        """Changed and removed items, or None when some item has no identity (then the
        list can only be compared whole)."""
        old_elements = list_elements(old, shape)
        new_elements = list_elements(new, shape)
        if old_elements is None or new_elements is None:
            return None
        old_by = _group(old_elements, old)
        new_by = _group(new_elements, new)
        changed: Trie = {}
        removed: Trie = {}
        items_node = shape.node.items()
        for element in dict.fromkeys([*old_elements, *new_elements]):
            lhs = old_by.get(element, [])
            rhs = new_by.get(element, [])
            if len(lhs) <= 1 and len(rhs) <= 1:
                c, r = self.node(lhs[0] if lhs else MISSING, rhs[0] if rhs else MISSING,
                                 items_node)
            elif len(lhs) >= 2 and len(rhs) >= 2:
                same = len(lhs) == len(rhs) and all(
                    strict_json_equal(a, b) for a, b in zip(lhs, rhs, strict=True)
                )
                c, r = (None, None) if same else ({}, None)
            elif len(lhs) >= 2:
                c = self.node(MISSING, rhs[0], items_node)[0] if rhs else None
                r = {}
            else:
                r = self.node(lhs[0], MISSING, items_node)[1] if lhs else None
                c = {}
            if c is not None:
                changed[element] = c
            if r is not None:
                removed[element] = r
        return changed, removed


def _group(elements: list[str], items: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for element, item in zip(elements, items, strict=True):
        out.setdefault(element, []).append(item)
    return out


def _without_managed_fields(old: Any, new: Any) -> tuple[Any, Any]:
    if isinstance(old, dict) and "managedFields" in old:
        old = {k: v for k, v in old.items() if k != "managedFields"}
    if isinstance(new, dict) and "managedFields" in new:
        new = {k: v for k, v in new.items() if k != "managedFields"}
    return old, new


def _added(value: Any, node: TypeNode | None) -> Trie:
    """The node of a value that did not exist before, in wire order: what
    :meth:`_CompareWalk.node` records against MISSING, built sorted so that it needs no
    encoding pass (a create's managedFields are exactly this)."""
    if type(value) in _LEAF_TYPES or not value:
        return {}
    shape = shape_of(node or ANY)
    kind = effective_kind(shape, value)
    if kind == "map":
        return _added_children(value, shape, root=False)
    if kind == "leaf":
        return {}
    elements = list_elements(value, shape)
    if elements is None:
        return {}
    by_element = _group(elements, value)
    items_node = shape.node.items()
    out: Trie = {SELF: {}}
    for element in _sorted_elements(list(by_element)):
        items = by_element[element]
        out[element] = _added(items[0], items_node) if len(items) == 1 else {}
    return out


def _added_children(value: dict[str, Any], shape: Shape, *, root: bool) -> Trie:
    """A new map's node (owned, so ``"."`` first) or, at the root, its bare children."""
    out: Trie = {} if root else {SELF: {}}
    for key in sorted(value):
        child = value[key]
        if root and key == "metadata" and isinstance(child, dict) and "managedFields" in child:
            child = {k: v for k, v in child.items() if k != "managedFields"}
        out["f:" + key] = _added(child, child_node(shape, key, root=root))
    return out


def created_fields(new: Mapping[str, Any], node: TypeNode) -> Trie:
    """What a create sets: ``compare_objects(None, new, node, strip=True).changed`` as a
    FieldsV1 trie already in upstream's wire order (what :func:`encode` would produce)."""
    changed = _added_children(dict(new), root_shape(node), root=True)
    _strip_in_place(changed)
    return changed


_COMPARE = _CompareWalk()


_STRIPPED_META_ELEMENTS: Final = tuple(
    field_element(name) for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion",
    )
)


def _strip_in_place(changed: Trie) -> None:
    """``changed`` minus :data:`STRIPPED_FIELDS`, on a trie this module just built (so
    nothing else holds it): cheaper than :meth:`FieldSet.difference`, which must copy."""
    changed.pop("f:apiVersion", None)
    changed.pop("f:kind", None)
    meta = changed.get("f:metadata")
    if meta is None:
        return
    meta.pop(SELF, None)
    for element in _STRIPPED_META_ELEMENTS:
        meta.pop(element, None)
    if not meta:
        # An empty node would read as an owned leaf; nothing of metadata is left owned.
        del changed["f:metadata"]


def compare_objects(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], node: TypeNode, *,
    reset: FieldSet | None = None, strip: bool = False,
) -> Comparison:
    """The paths a write added or modified, and those it removed (upstream's Compare).

    ``old`` None is a create (compared with an empty object). A granular node that
    appears or disappears is itself added or removed along with its children, which is
    where the ``".": {}`` of a freshly created map comes from. ``metadata.managedFields``
    is ignored; ``reset`` paths and everything below them are left out; ``strip`` leaves
    :data:`STRIPPED_FIELDS` out of ``changed``.
    """
    changed, removed = _COMPARE.mapping(
        dict(old) if old is not None else {}, dict(new), root_shape(node), root=True
    )
    if strip:
        _strip_in_place(changed)
    result = Comparison(FieldSet(changed), FieldSet(removed))
    if reset is not None and not reset.empty:
        result = Comparison(
            result.changed.recursive_difference(reset),
            result.removed.recursive_difference(reset),
        )
    return result
