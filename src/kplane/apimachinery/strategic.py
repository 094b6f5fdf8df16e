"""Strategic merge patch for built-in kinds, as kubectl and the Python client send it.

A strategic merge patch is a JSON merge patch that knows, from the kind's schema, that
some lists are keyed collections: ``containers`` and ``env`` merge element-wise by
``name``, ``ports`` by ``containerPort``, ``finalizers`` are a set. kubectl's client-side
``apply``, ``edit`` and ``patch`` (and the Python client for a dict body) send this format,
with directives that only make sense next to a schema:

- ``$patch: replace | delete`` on a map, and ``{"$patch": "delete", <key>: v}`` or
  ``{"$patch": "replace"}`` as elements of a keyed list;
- ``$setElementOrder/<field>``: the order of a merged list after the patch;
- ``$deleteFromPrimitiveList/<field>``: values to drop from a set of scalars;
- ``$retainKeys``: the only keys a map keeps (union types such as a volume source).

The merge follows upstream's ``k8s.io/apimachinery/pkg/util/strategicpatch`` (patch
format v2, the one kubectl 1.2x+ sends), including where new list elements land when no
order is given. Deliberate differences, each to store clean objects as plain dicts where
upstream relies on decoding into Go structs to drop leftovers: a value the patch adds
has its directives applied and its nulls removed wherever it lands, and ``$patch:
delete`` on a map removes the key instead of leaving an empty map. Where the schema has
nothing to say (an unknown field, a free-form value) the patch behaves as a JSON merge
patch: maps merge, everything else is replaced.

The stored object passed in is copied first; the patch is only read. Malformed
directives are 400 Bad Request (as upstream), other unmergeable patches 422.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import orjson

from kplane.apimachinery import errors
from kplane.apimachinery.patch import copy_json
from kplane.apimachinery.typeinfo import TypeNode

PATCH_DIRECTIVE = "$patch"
RETAIN_KEYS_DIRECTIVE = "$retainKeys"
SET_ELEMENT_ORDER_PREFIX = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST_PREFIX = "$deleteFromPrimitiveList"

_REPLACE = "replace"
_DELETE = "delete"
_MERGE = "merge"
_RETAIN_KEYS_STRATEGY = "retainKeys"
_UNKEYED = "unkeyed"

JSONMap = dict[str, Any]


def apply_strategic_merge_patch(
    obj: JSONMap, patch_doc: Any, node: TypeNode | None
) -> JSONMap:
    """Apply ``patch_doc`` (already parsed from JSON) to a copy of ``obj``.

    ``node`` is the kind's schema from :func:`kplane.apimachinery.builtin_schemas.type_node`;
    None merges without any list knowledge.
    """
    if not isinstance(patch_doc, dict):
        raise errors.bad_request(
            f"a strategic merge patch must be a JSON object, not {_json_type(patch_doc)}"
        )
    merged = _merge_map(copy_json(obj), patch_doc, node, "")
    if merged is None:
        raise errors.unprocessable(
            "a strategic merge patch cannot delete the whole object: use DELETE instead"
        )
    return merged


# Maps.


def _merge_map(
    original: JSONMap, patch: JSONMap, node: TypeNode | None, path: str
) -> JSONMap | None:
    """Merge ``patch`` into ``original`` (our own copy, changed in place).

    None means the patch deletes this map (``$patch: delete``).
    """
    if PATCH_DIRECTIVE in patch:
        directive = patch[PATCH_DIRECTIVE]
        rest = {key: value for key, value in patch.items() if key != PATCH_DIRECTIVE}
        if directive == _DELETE:
            return None
        if directive == _REPLACE:
            return _merge_map({}, rest, node, path)
        if directive != _MERGE:
            raise _unprocessable(path, f"unknown {PATCH_DIRECTIVE} directive {directive!r}")
        patch = rest
    _reject_unknown_directives(patch, node, path)
    if RETAIN_KEYS_DIRECTIVE in patch:
        _apply_retain_keys(original, patch, path)
    ordered = _merge_ordered_lists(original, patch, node, path)
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key == RETAIN_KEYS_DIRECTIVE or key.startswith(SET_ELEMENT_ORDER_PREFIX):
            continue
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX):
            deletions.append((key, value))
        elif key not in ordered:
            _merge_field(original, key, value, _child(node, key), _join(path, key))
    # Additions first, then removals, so a patch that does both is order-independent.
    for key, value in deletions:
        _delete_from_primitive_list(original, key, value, path)
    return original


def _merge_field(
    original: JSONMap, key: str, value: Any, node: TypeNode | None, path: str
) -> None:
    if value is None:
        original.pop(key, None)
        return
    current = original.get(key)
    if isinstance(value, dict):
        base = current if isinstance(current, dict) else {}
        if _strategy(node) == _REPLACE:
            base = {}
        merged = _merge_map(base, value, node, path)
        if merged is None:
            original.pop(key, None)
        else:
            original[key] = merged
    elif isinstance(value, list):
        if node is not None and _strategy(node) == _MERGE:
            base_list = current if isinstance(current, list) else []
            original[key] = _merge_list(base_list, value, node, path)
        else:
            original[key] = _fresh_atomic_list(value, _items(node), path)
    else:
        original[key] = value


def _reject_unknown_directives(patch: JSONMap, node: TypeNode | None, path: str) -> None:
    if node is None or node.kind in ("map", "any") or node.preserves_unknown_fields:
        return  # free-form keys: a "$" may be data here
    for key in patch:
        if not key.startswith("$") or key == RETAIN_KEYS_DIRECTIVE:
            continue
        if key.startswith((SET_ELEMENT_ORDER_PREFIX, DELETE_FROM_PRIMITIVE_LIST_PREFIX)):
            continue
        if node.field(key) is None:
            raise _unprocessable(path, f"unknown strategic merge patch directive {key!r}")


def _apply_retain_keys(original: JSONMap, patch: JSONMap, path: str) -> None:
    retained = patch[RETAIN_KEYS_DIRECTIVE]
    if not isinstance(retained, list):
        raise _bad_format(path, f"{RETAIN_KEYS_DIRECTIVE} must be a list of field names")
    keep = {name for name in retained if isinstance(name, str)}
    for key, value in patch.items():
        if value is None or key.startswith("$"):
            continue
        if key not in keep:
            raise _bad_format(
                path, f"field {key!r} is set by the patch but not listed in {RETAIN_KEYS_DIRECTIVE}"
            )
    for key in [key for key in original if key not in keep]:
        del original[key]


def _delete_from_primitive_list(original: JSONMap, key: str, values: Any, path: str) -> None:
    field = _directive_target(key, DELETE_FROM_PRIMITIVE_LIST_PREFIX, path)
    if not isinstance(values, list) or any(isinstance(v, dict | list) for v in values):
        raise _bad_format(path, f"{key} must be a list of scalar values")
    current = original.get(field)
    if isinstance(current, list):
        doomed = {_identity(value) for value in values}
        original[field] = [item for item in current if _identity(item) not in doomed]


# $setElementOrder: merge a list, then order it as the patch says.


def _merge_ordered_lists(
    original: JSONMap, patch: JSONMap, node: TypeNode | None, path: str
) -> set[str]:
    """Merge every list that has a ``$setElementOrder``; return the fields so handled."""
    handled: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(SET_ELEMENT_ORDER_PREFIX):
            continue
        field = _directive_target(key, SET_ELEMENT_ORDER_PREFIX, path)
        if not isinstance(order, list):
            raise _bad_format(path, f"{key} must be a list")
        list_node = _child(node, field)
        patch_list = patch.get(field, [])
        # An order only means something for a merged list; elsewhere the field is
        # handled as if the directive were absent.
        if list_node is None or _strategy(list_node) != _MERGE:
            continue
        if not isinstance(patch_list, list):
            continue
        handled.add(field)
        current = original.get(field)
        if field not in original and field not in patch:
            continue
        base = current if isinstance(current, list) else []
        server_order = list(base)
        field_path = _join(path, field)
        key_of = _element_key_function(list_node.patch_merge_key, field_path)
        order_keys = [key_of(entry) for entry in order]
        _check_patch_follows_order(patch_list, order_keys, key_of, field_path)
        merged = _merge_list(base, patch_list, list_node, field_path)
        original[field] = _normalize_order(merged, order_keys, server_order, key_of)
    return handled


def _check_patch_follows_order(
    patch_list: list[Any],
    order_keys: list[Hashable],
    key_of: Callable[[Any], Hashable],
    path: str,
) -> None:
    """Every element the patch sets must appear in the order list, in the same order."""
    position = 0
    for item in patch_list:
        if isinstance(item, dict) and PATCH_DIRECTIVE in item:
            continue
        wanted = key_of(item)
        if isinstance(wanted, tuple) and wanted[0] == _UNKEYED:
            continue  # reported, more clearly, when the element is merged
        while position < len(order_keys) and order_keys[position] != wanted:
            position += 1
        if position == len(order_keys):
            raise _unprocessable(
                path, f"the order of the patch list does not match {SET_ELEMENT_ORDER_PREFIX}"
            )
        position += 1


# Lists.


def _merge_list(
    original: list[Any], patch: list[Any], node: TypeNode, path: str
) -> list[Any]:
    """Merge a list whose strategy is ``merge``: keyed maps or a set of scalars."""
    merge_key = node.patch_merge_key
    directives = [item for item in patch if isinstance(item, dict) and PATCH_DIRECTIVE in item]
    plain = [item for item in patch if not (isinstance(item, dict) and PATCH_DIRECTIVE in item)]
    base = _apply_list_directives(list(original), directives, merge_key, path)
    if base is None:  # "$patch: replace": the patch's elements are the whole list
        base = []
    server_order = list(base)
    holds_maps = _check_element_types(base, plain, path)
    key_of = _element_key_function(merge_key, path)
    if holds_maps:
        if not merge_key:
            raise _unprocessable(path, "cannot merge a list of objects without a merge key")
        merged = _merge_keyed_elements(base, plain, merge_key, node.items(), path)
    else:
        merged = _union(base, plain)
    patch_keys = [key_of(item) for item in plain]
    return _normalize_order(merged, patch_keys, server_order, key_of)


def _apply_list_directives(
    original: list[Any], directives: list[JSONMap], merge_key: str, path: str
) -> list[Any] | None:
    """Remove elements named by ``$patch: delete``; None if the list is to be replaced."""
    replace = False
    doomed: set[Hashable] = set()
    for item in directives:
        directive = item[PATCH_DIRECTIVE]
        if directive == _DELETE:
            if not merge_key or merge_key not in item:
                raise _unprocessable(
                    path, f"a {PATCH_DIRECTIVE}: delete element needs the merge key "
                    f"{merge_key!r}: {_short(item)}",
                )
            doomed.add(_identity(item[merge_key]))
        elif directive == _REPLACE:
            replace = True
        elif directive == _MERGE:
            raise _unprocessable(path, "merging lists cannot yet be specified in the patch")
        else:
            raise _unprocessable(path, f"unknown {PATCH_DIRECTIVE} directive {directive!r}")
    if replace:
        return None
    if not doomed:
        return original
    # One pass for all deletions, so many delete elements cannot make this quadratic.
    return [
        kept for kept in original
        if not (isinstance(kept, dict) and merge_key in kept
                and _identity(kept[merge_key]) in doomed)
    ]


def _check_element_types(original: list[Any], patch: list[Any], path: str) -> bool:
    """Whether the elements are maps; mixing maps with other values cannot merge."""
    maps = others = False
    for item in (*original, *patch):
        if isinstance(item, list):
            raise _unprocessable(path, "lists of lists are not supported")
        if isinstance(item, dict):
            maps = True
        else:
            others = True
    if maps and others:
        raise _unprocessable(path, "list element types are not identical")
    return maps


def _merge_keyed_elements(
    original: list[Any], patch: list[JSONMap], merge_key: str,
    items_node: TypeNode | None, path: str,
) -> list[Any]:
    merged = original
    where: dict[Hashable, int] = {}
    for index, item in enumerate(merged):
        if isinstance(item, dict) and merge_key in item:
            where.setdefault(_identity(item[merge_key]), index)
    for index, item in enumerate(patch):
        if merge_key not in item:
            raise _unprocessable(
                f"{path}[{index}]", f"the element has no merge key {merge_key!r}: {_short(item)}"
            )
        identity = _identity(item[merge_key])
        element_path = f"{path}[{index}]"
        at = where.get(identity)
        if at is None:
            where[identity] = len(merged)
            merged.append(_merge_map({}, item, items_node, element_path))
        else:
            merged[at] = _merge_map(merged[at], item, items_node, element_path)
    return merged


def _union(original: list[Any], patch: list[Any]) -> list[Any]:
    seen: set[Hashable] = set()
    out: list[Any] = []
    for item in (*original, *patch):
        identity = _identity(item)
        if identity not in seen:
            seen.add(identity)
            out.append(item)
    return out


def _normalize_order(
    merged: list[Any],
    patch_keys: list[Hashable],
    server_order: list[Any],
    key_of: Callable[[Any], Hashable],
) -> list[Any]:
    """Order a merged list the way upstream does.

    Elements the patch names keep the patch's order; the others keep the live order; the
    two runs interleave so that a live element goes before a patch element only when it
    also stood before it in the live list. So elements new to the list come first
    unless the live list puts something ahead of them.
    """
    patch_position = _first_positions(patch_keys)
    server_position = _first_positions(key_of(item) for item in server_order)
    named = [item for item in merged if key_of(item) in patch_position]
    rest = [item for item in merged if key_of(item) not in patch_position]
    named.sort(key=lambda item: patch_position[key_of(item)])
    unplaced = len(server_position)
    rest.sort(key=lambda item: server_position.get(key_of(item), unplaced))
    out: list[Any] = []
    i = j = 0
    while i < len(rest) and j < len(named):
        left = server_position.get(key_of(rest[i]))
        right = server_position.get(key_of(named[j]))
        if left is not None and right is not None and left < right:
            out.append(rest[i])
            i += 1
        else:
            out.append(named[j])
            j += 1
    out.extend(rest[i:])
    out.extend(named[j:])
    return out


def _first_positions(keys: Iterable[Hashable]) -> dict[Hashable, int]:
    positions: dict[Hashable, int] = {}
    for index, key in enumerate(keys):
        positions.setdefault(key, index)
    return positions


def _fresh_atomic_list(value: list[Any], items_node: TypeNode | None, path: str) -> list[Any]:
    """A list the patch sets whole: copied, with directives applied inside its maps."""
    out: list[Any] = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            if PATCH_DIRECTIVE in item:
                continue  # upstream drops directive elements of a list it replaces
            fresh = _merge_map({}, item, items_node, f"{path}[{index}]")
            if fresh is not None:
                out.append(fresh)
        elif isinstance(item, list):
            out.append(copy_json(item))
        else:
            out.append(item)
    return out


# Small helpers.


def _element_key_function(merge_key: str, path: str) -> Callable[[Any], Hashable]:
    """How list elements are told apart: the merge key's value, or the scalar itself."""
    if not merge_key:
        return _identity

    def key_of(item: Any) -> Hashable:
        if isinstance(item, dict) and merge_key in item:
            return _identity(item[merge_key])
        # An element without its key can match nothing, not even another such element.
        return (_UNKEYED, id(item))

    return key_of


def _identity(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value that never confuses ``true`` with ``1``."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def _strategy(node: TypeNode | None) -> str:
    """The field's patch strategy without ``retainKeys`` (honoured wherever it appears)."""
    if node is None:
        return ""
    parts = [part.strip() for part in node.patch_strategy.split(",") if part.strip()]
    others = [part for part in parts if part != _RETAIN_KEYS_STRATEGY]
    return others[0] if len(others) == 1 else ""


def _child(node: TypeNode | None, key: str) -> TypeNode | None:
    if node is None or node.kind not in ("object", "map"):
        return None
    return node.child(key)


def _items(node: TypeNode | None) -> TypeNode | None:
    if node is None or node.kind != "list":
        return None
    return node.items()


def _directive_target(key: str, prefix: str, path: str) -> str:
    head, slash, field = key.partition("/")
    if head != prefix or not slash or not field:
        raise _bad_format(path, f"malformed directive {key!r}: expected {prefix}/<field>")
    return field


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    return f"strategic merge patch: {path}: " if path else "strategic merge patch: "


def _bad_format(path: str, detail: str) -> errors.StatusError:
    return errors.bad_request(_where(path) + detail)


def _unprocessable(path: str, detail: str) -> errors.StatusError:
    return errors.unprocessable(_where(path) + detail)


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 200 else text[:200] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"
