"""Decoding request bodies: JSON or YAML, bounded against hostile input.

Bodies over the size limit are refused before they are read whole (413). JSON goes through
orjson, whose parser refuses nesting deeper than 1024 levels; YAML through PyYAML's C loader
with aliases refused outright, since alias expansion is how a small YAML document becomes an
enormous object ("billion laughs"). Kubernetes clients send JSON; YAML is accepted for
people using curl and for apply patches.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from kplane.apimachinery import errors
from kplane.apimachinery.protobuf import PROTOBUF_CONTENT_TYPE, decode_protobuf_object

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100

JSON_TYPES = frozenset({"application/json", "*/*", ""})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml",
                        "application/apply-patch+yaml"})


class _JsonYamlLoader(yaml.CSafeLoader):
    """The safe C loader, leaving timestamps as the strings the client wrote.

    Upstream's YAML-to-JSON conversion keeps ``2024-01-02T03:04:05Z`` a string; resolving it
    to a datetime and back would rewrite the user's value (``...+00:00``)."""


_JsonYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def _refuse_aliases(text: str) -> None:
    """Alias expansion is how a small YAML document becomes enormous; refuse any alias."""
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise errors.bad_request(
                f"YAML aliases are not allowed in request bodies (at {event.start_mark})")


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
            if not _depth_ok(value, MAX_DEPTH):
                raise errors.bad_request(
                    f"the request body is nested more than {MAX_DEPTH} levels deep")
            return value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.bad_request("the request body is not valid UTF-8") from None
    try:
        _refuse_aliases(text)
        value = yaml.load(text, Loader=_JsonYamlLoader)
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
