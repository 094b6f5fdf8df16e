"""Reading a delete's DeleteOptions, from the request body or else from the query, as upstream.

Upstream's delete handler decodes a non-empty body as a meta.k8s.io DeleteOptions (any group
version: the kind is registered unversioned, so ``v1``, ``meta.k8s.io/v1`` and per-group
versions all decode) and then ignores the query; only a request without a body has its
query converted. Either way a value of the wrong type is a 400 BadRequest, the decoder's
error, before anything happens; ``ValidateDeleteOptions`` then makes a wrong
propagationPolicy or dryRun, or orphanDependents together with propagationPolicy, a 422
Invalid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kplane.apimachinery import errors
from kplane.apimachinery.protobuf import PROTOBUF_CONTENT_TYPE
from kplane.registry.options import DeleteOptions
from kplane.server.body import decode_body, media_type
from kplane.server.http import INT64_MAX, INT64_MIN, query_flag, query_int64

POLICIES = ("Foreground", "Background", "Orphan")
BODY_TYPES = ("application/json", "application/yaml", PROTOBUF_CONTENT_TYPE)
_GROUP = "meta.k8s.io"


def _json_kind(value: Any) -> str:
    """How Go's encoding/json names a JSON value in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if isinstance(value, int) else f"number {value!r}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_error(path: str, value: Any, go_type: str) -> errors.StatusError:
    """Upstream's decode error, e.g. ``json: cannot unmarshal string into Go struct field
    DeleteOptions.preconditions of type v1.Preconditions``."""
    return errors.bad_request(f"json: cannot unmarshal {_json_kind(value)} into Go struct "
                              f"field DeleteOptions.{path} of type {go_type}")


def _string(body: dict[str, Any], key: str, path: str, go_type: str = "string") -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _type_error(path, value, go_type)


def _boolean(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _type_error(key, value, "bool")


def _int64(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and (
            INT64_MIN <= value <= INT64_MAX):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # Go names the literal that did not fit: "number 99999999999999999999".
        raise errors.bad_request(f"json: cannot unmarshal number {value} into Go struct "
                                 f"field DeleteOptions.{key} of type int64")
    raise _type_error(key, value, "int64")


def _check_type_meta(body: dict[str, Any]) -> None:
    kind = _string(body, "kind", "kind") or ""
    api_version = _string(body, "apiVersion", "apiVersion") or ""
    if api_version.count("/") > 1:
        raise errors.bad_request(f"unexpected GroupVersion string: {api_version[:64]}")
    if kind not in ("", "DeleteOptions"):
        raise errors.bad_request(
            f'no kind "{kind[:64]}" is registered for version "{api_version[:64]}": '
            "the body of a delete must be DeleteOptions")


class _Fields:
    """The options as given, None meaning absent (upstream's nil pointers)."""

    def __init__(self) -> None:
        self.grace_period_seconds: int | None = None
        self.uid: str | None = None
        self.resource_version: str | None = None
        self.orphan_dependents: bool | None = None
        self.propagation_policy: str | None = None
        self.dry_run: list[str] | None = None


def _from_body(raw: bytes, content_type: str) -> _Fields:
    kind = media_type(content_type)
    if kind and kind not in BODY_TYPES:
        raise errors.unsupported_media_type(kind, list(BODY_TYPES))
    body = decode_body(raw, content_type)
    if body is None:
        body = {}  # Go decodes a JSON null into a struct as nothing at all
    if not isinstance(body, dict):
        raise errors.bad_request(f"json: cannot unmarshal {_json_kind(body)} into Go value "
                                 "of type v1.DeleteOptions")
    _check_type_meta(body)
    fields = _Fields()
    fields.grace_period_seconds = _int64(body, "gracePeriodSeconds")
    preconditions = body.get("preconditions")
    if preconditions is not None:
        if not isinstance(preconditions, dict):
            raise _type_error("preconditions", preconditions, "v1.Preconditions")
        fields.uid = _string(preconditions, "uid", "preconditions.uid", "types.UID")
        fields.resource_version = _string(preconditions, "resourceVersion",
                                          "preconditions.resourceVersion")
    fields.orphan_dependents = _boolean(body, "orphanDependents")
    fields.propagation_policy = _string(body, "propagationPolicy", "propagationPolicy",
                                        "v1.DeletionPropagation")
    dry_run = body.get("dryRun")
    if dry_run is not None:
        if not isinstance(dry_run, list):
            raise _type_error("dryRun", dry_run, "[]string")
        for item in dry_run:
            if item is not None and not isinstance(item, str):
                raise _type_error("dryRun", item, "string")
        # A JSON null in a []string decodes to "" in Go, which validation then refuses.
        fields.dry_run = [item or "" for item in dry_run]
    # Behind a feature gate upstream leaves off, which drops the field; its type still counts.
    _boolean(body, "ignoreStoreReadErrorWithClusterBreakingPotential")
    return fields


def _from_query(query: dict[str, str], values: Callable[[str], list[str]]) -> _Fields:
    fields = _Fields()
    fields.grace_period_seconds = query_int64(query, "gracePeriodSeconds")
    if "orphanDependents" in query:
        fields.orphan_dependents = query_flag(query["orphanDependents"])
    fields.propagation_policy = query.get("propagationPolicy")
    if "dryRun" in query:
        fields.dry_run = values("dryRun")
    return fields


def _validate(fields: _Fields) -> None:
    causes: list[errors.Cause] = []
    policy = fields.propagation_policy
    if fields.orphan_dependents is not None and policy is not None:
        causes.append(errors.field_invalid(
            "propagationPolicy", policy[:32],
            "orphanDependents and deletionPropagation cannot be both set"))
    if policy is not None and policy not in POLICIES:
        causes.append(errors.field_not_supported("propagationPolicy", policy[:32],
                                                 [*POLICIES, "nil"]))
    wrong = [value for value in fields.dry_run or [] if value != "All"]
    if wrong:
        causes.append(errors.field_not_supported("dryRun", wrong[0][:32], ["All"]))
    if causes:
        raise errors.invalid("DeleteOptions", _GROUP, "", causes)


def delete_options(raw_body: bytes, content_type: str, query: dict[str, str],
                   query_values: Callable[[str], list[str]]) -> DeleteOptions:
    """The DeleteOptions of a DELETE: from its body when it has one, else from its query."""
    if raw_body.strip():
        fields = _from_body(raw_body, content_type)
    else:
        fields = _from_query(query, query_values)
    _validate(fields)
    policy = fields.propagation_policy or ""
    if fields.orphan_dependents is not None:
        # The deprecated spelling of the same choice (the two together were refused above).
        policy = "Orphan" if fields.orphan_dependents else "Background"
    grace = fields.grace_period_seconds
    if grace is not None and grace < 0:
        # Upstream's BeforeDelete: "Negative values will be treated as the value `1s`".
        grace = 1
    return DeleteOptions(uid=fields.uid or "", resource_version=fields.resource_version or "",
                         propagation_policy=policy, grace_period_seconds=grace,
                         dry_run=bool(fields.dry_run))
