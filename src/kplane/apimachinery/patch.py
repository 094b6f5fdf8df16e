"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) applied to objects as dicts.

A PATCH request names its format in ``Content-Type``; the two schema-free formats live
here and the strategic merge patch of built-in kinds lives in
:mod:`kplane.apimachinery.strategic`. Both functions work on a private copy, so the
stored object a caller passes in is never changed, and every failure is a
:class:`~kplane.apimachinery.errors.StatusError` worded for the user:

- a body of the wrong shape (not an array of operations, not an object) is 400;
- more than 10,000 JSON-patch operations is 413, as kube-apiserver answers;
- an operation that cannot apply (a failed ``test``, a missing path, a malformed
  operation) is 422. kube-apiserver answers 500 for some of these; a client error is
  the honest code, and kopf relies on 422 for a failed ``test``.

Hostile input stays bounded: the parser rejects deep nesting before we run, every
operation is linear in the document, and ``copy`` operations (the one way a small patch
can grow a document exponentially) are capped by the bytes they duplicate.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer
import orjson

from kplane.apimachinery import errors

MAX_JSON_PATCH_OPERATIONS = 10_000
"""kube-apiserver's limit on operations in one JSON patch."""

MAX_COPIED_BYTES = 8 * 1024 * 1024
"""How many bytes ``copy`` operations of one patch may duplicate, all together."""

_REJECTED = "the server rejected our request due to an error in our request"
_DETAIL_LIMIT = 512
_OPERATIONS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars), much faster than deepcopy."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def json_equal(first: Any, second: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``, but ``1`` is ``1.0``."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(
            json_equal(item, second[key]) for key, item in first.items()
        )
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(
            json_equal(a, b) for a, b in zip(first, second, strict=True)
        )
    if isinstance(first, dict | list) or isinstance(second, dict | list):
        return False
    return bool(first == second)


# JSON patch.


def apply_json_patch(obj: dict[str, Any], patch_doc: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch (already parsed from JSON) to a copy of ``obj``."""
    operations = _checked_operations(patch_doc)
    document: Any = copy_json(obj)
    copied_bytes = 0
    for index, operation in enumerate(operations):
        try:
            if operation.get("op") == "copy":
                copied_bytes += _size_of_copy_source(document, operation)
                if copied_bytes > MAX_COPIED_BYTES:
                    raise errors.too_large(
                        f"the copy operations of this JSON patch would duplicate more than "
                        f"{MAX_COPIED_BYTES} bytes"
                    )
            document = _apply_operation(document, operation)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as failure:
            raise _operation_failed(index, operation, str(failure)) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as failure:
            raise _operation_failed(index, operation, repr(failure)) from None
    if not isinstance(document, dict):
        raise errors.unprocessable(f"{_REJECTED}: the patched document is not a JSON object")
    return document


def _checked_operations(patch_doc: Any) -> list[dict[str, Any]]:
    if not isinstance(patch_doc, list):
        raise errors.bad_request(
            f"a JSON patch must be a JSON array of operations, not {_json_type(patch_doc)}"
        )
    if len(patch_doc) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(patch_doc)}"
        )
    for index, operation in enumerate(patch_doc):
        if not isinstance(operation, dict):
            raise errors.bad_request(
                f"JSON patch operation {index} must be a JSON object, "
                f"not {_json_type(operation)}"
            )
    return patch_doc


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    kind = operation.get("op")
    if kind not in _OPERATIONS:
        raise jsonpatch.InvalidJsonPatch(f"unknown operation {kind!r}")
    if kind == "test":
        _run_test(document, operation)
        return document
    # The library copies inserted values, so the caller's patch document stays untouched.
    return jsonpatch.JsonPatch([operation]).apply(document, in_place=True)


def _run_test(document: Any, operation: dict[str, Any]) -> None:
    path = _pointer_member(operation, "path")
    if "value" not in operation:
        raise jsonpatch.InvalidJsonPatch("the operation has no 'value' member")
    try:
        actual = jsonpointer.JsonPointer(path).resolve(document)
    except jsonpointer.JsonPointerException:
        raise _test_failed(f"{path!r} does not exist") from None
    if not json_equal(actual, operation["value"]):
        raise _test_failed(f"the value at {path!r} is not equal to the tested value")


def _size_of_copy_source(document: Any, operation: dict[str, Any]) -> int:
    source = jsonpointer.JsonPointer(_pointer_member(operation, "from")).resolve(document)
    try:
        return len(orjson.dumps(source))
    except orjson.JSONEncodeError:
        return len(repr(source))


def _pointer_member(operation: dict[str, Any], member: str) -> str:
    value = operation.get(member)
    if not isinstance(value, str):
        raise jsonpatch.InvalidJsonPatch(f"the operation's {member!r} must be a string")
    return value


def _test_failed(detail: str) -> jsonpatch.JsonPatchTestFailed:
    return jsonpatch.JsonPatchTestFailed(f"test failed: {detail}")


def _operation_failed(index: int, operation: dict[str, Any], detail: str) -> errors.StatusError:
    if len(detail) > _DETAIL_LIMIT:
        detail = detail[:_DETAIL_LIMIT] + "..."
    where = f"operation {index}"
    kind, path = operation.get("op"), operation.get("path")
    if isinstance(kind, str) and isinstance(path, str):
        where = f"operation {index} ({kind} {path!r})"
    return errors.unprocessable(f"{_REJECTED}: {where}: {detail}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# JSON merge patch.


def apply_merge_patch(obj: dict[str, Any], patch_doc: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch (already parsed from JSON) to a copy of ``obj``."""
    if not isinstance(patch_doc, dict):
        raise errors.bad_request(
            f"a JSON merge patch must be a JSON object, not {_json_type(patch_doc)}"
        )
    return _merge_object(copy_json(obj), patch_doc)


def _merge_object(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``target`` in place; ``target`` is always our own copy."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            target[key] = _merge_object(current if isinstance(current, dict) else {}, value)
        else:
            target[key] = copy_json(value)
    return target
