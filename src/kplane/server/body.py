"""Decoding request bodies: JSON or YAML, bounded against hostile input.

Bodies over the size limit are refused before they are read whole (413). JSON goes through
orjson, whose parser refuses nesting deeper than 1024 levels and has no Infinity or NaN. YAML
goes through PyYAML's safe loader, libyaml's C parser when PyYAML has it (an order of
magnitude faster), with aliases refused outright, since alias expansion is how a small YAML
document becomes an enormous object ("billion laughs"), and with infinities and NaN refused as
JSON refuses them. Kubernetes clients send JSON; YAML is accepted for people using curl and
for apply patches.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import Node, ScalarNode

from kplane.apimachinery import errors
from kplane.apimachinery.protobuf import PROTOBUF_CONTENT_TYPE, decode_protobuf_object

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100

JSON_TYPES = frozenset({"application/json", "*/*", ""})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml",
                        "application/apply-patch+yaml"})


class _JsonYamlRules(SafeConstructor):
    """What the safe loader does differently for a request body, with either parser."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # The composer resolves an alias to the very node its anchor names, so a node met a
        # second time is an alias (or a recursive one). Refusing it here, before anything is
        # copied, costs no separate pass over the document's events.
        if node in self.constructed_objects or node in self.recursive_objects:
            mark = node.start_mark
            raise errors.bad_request(
                f"YAML aliases are not allowed in request bodies (the node anchored at line "
                f"{mark.line + 1}, column {mark.column + 1} is used again)")
        return super().construct_object(node, deep)


def _finite_float(loader: yaml.SafeLoader | yaml.CSafeLoader, node: ScalarNode) -> float:
    """``.inf``, ``.nan`` and overflowing floats (``1.0e+999``): JSON cannot hold them, and
    storing them would silently turn them into ``null``."""
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        mark = node.start_mark
        raise errors.bad_request(
            f"the request body cannot be represented as JSON: {node.value[:32]!r} (line "
            f"{mark.line + 1}, column {mark.column + 1}) is not a finite number; JSON has no "
            "Infinity or NaN")
    return value


_Loader: type[Any]
if yaml.__with_libyaml__:
    class _CJsonYamlLoader(_JsonYamlRules, yaml.CSafeLoader):
        """libyaml's parser with the rules above."""

    _Loader = _CJsonYamlLoader
else:  # pragma: no cover - PyYAML built without libyaml
    class _PyJsonYamlLoader(_JsonYamlRules, yaml.SafeLoader):
        """PyYAML's own parser with the rules above."""

    _Loader = _PyJsonYamlLoader

_Loader.add_constructor("tag:yaml.org,2002:float", _finite_float)
# Upstream's YAML-to-JSON conversion keeps ``2024-01-02T03:04:05Z`` a string; resolving it to a
# datetime and back would rewrite the user's value (``...+00:00``).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _depth_ok(value: Any, limit: int) -> bool:
    if not isinstance(value, dict | list):
        return True
    # Only containers are walked: scalars cannot nest, and most values are scalars.
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return True


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decode_body(raw: bytes, content_type: str) -> Any:
    """The document a request body holds; 400 for anything unparsable or too deep."""
    kind = media_type(content_type)
    if not raw.strip():
        raise errors.bad_request("the request body is empty")
    if kind == PROTOBUF_CONTENT_TYPE:
        return decode_protobuf_object(raw)
    if kind not in YAML_TYPES or raw.lstrip()[:1] in (b"{", b"["):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if kind not in YAML_TYPES:
                raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None
        else:
            # Nesting needs an opening bracket per level, so a body with few of them
            # cannot be too deep and need not be walked (counting runs in C).
            openers = raw.count(b"{") + raw.count(b"[")
            if openers > MAX_DEPTH and not _depth_ok(value, MAX_DEPTH):
                raise errors.bad_request(
                    f"the request body is nested more than {MAX_DEPTH} levels deep")
            return value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.bad_request("the request body is not valid UTF-8") from None
    try:
        value = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise errors.bad_request("the request body is nested too deeply") from None
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"the request body is not valid YAML: {exc}") from None
    if not _depth_ok(value, MAX_DEPTH):
        raise errors.bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    """YAML may yield dates and non-string keys; Kubernetes objects are JSON."""
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.bad_request(f"the request body cannot be represented as JSON: {exc}") from None
