"""Kubernetes ``Status`` errors: the one way any layer reports a failed request.

Raise a :class:`StatusError` anywhere below the HTTP layer; the server turns it into the
``{"kind":"Status",...}`` body with the matching HTTP code. The constructors below word
their messages exactly as kube-apiserver does, because clients (kubectl, client-go, kopf)
match on reason and code, and users read the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason a request failed, usually tied to a field path."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(slots=True)
class StatusError(Exception):
    """A failed request, carried as a Kubernetes ``Status``."""

    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after_seconds: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def to_status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.uid:
            details["uid"] = self.uid
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after_seconds:
            details["retryAfterSeconds"] = self.retry_after_seconds
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def qualified_resource(resource: str, group: str) -> str:
    """``configmaps`` for the core group, ``roles.rbac.authorization.k8s.io`` otherwise."""
    return f"{resource}.{group}" if group else resource


def bad_request(message: str, *, causes: list[Cause] | None = None) -> StatusError:
    return StatusError(400, "BadRequest", message, causes=causes or [])


def unauthorized(message: str = "Unauthorized") -> StatusError:
    return StatusError(401, "Unauthorized", message)


def forbidden(message: str, *, name: str = "", group: str = "", kind: str = "") -> StatusError:
    return StatusError(403, "Forbidden", message, name=name, group=group, kind=kind)


def not_found(resource: str, group: str, name: str) -> StatusError:
    qualified = qualified_resource(resource, group)
    message = f'{qualified} "{name}" not found' if name else f"{qualified} not found"
    return StatusError(404, "NotFound", message, name=name, group=group, kind=resource)


def plain_not_found(
    message: str = "the server could not find the requested resource",
) -> StatusError:
    return StatusError(404, "NotFound", message)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def already_exists(resource: str, group: str, name: str) -> StatusError:
    qualified = qualified_resource(resource, group)
    return StatusError(
        409, "AlreadyExists", f'{qualified} "{name}" already exists',
        name=name, group=group, kind=resource,
    )


def conflict(resource: str, group: str, name: str, detail: str) -> StatusError:
    qualified = qualified_resource(resource, group)
    return StatusError(
        409, "Conflict", f'Operation cannot be fulfilled on {qualified} "{name}": {detail}',
        name=name, group=group, kind=resource,
    )


def stale_conflict(resource: str, group: str, name: str) -> StatusError:
    return conflict(
        resource, group, name,
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
    )


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def too_large(message: str) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> StatusError:
    return StatusError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> StatusError:
    """422 Invalid, worded ``<Kind>.<group> "name" is invalid: [field: message, ...]``."""
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return StatusError(
        422, "Invalid", f'{qualified} "{name}" is invalid: {joined}',
        name=name, group=group, kind=kind, causes=causes,
    )


def unprocessable(message: str) -> StatusError:
    """A 422 that is not about one object's fields (a failed JSON-patch test, say)."""
    return StatusError(422, "Invalid", message)


def too_many_requests(message: str, retry_after_seconds: int = 1) -> StatusError:
    return StatusError(
        429, "TooManyRequests", message, retry_after_seconds=retry_after_seconds,
        headers={"Retry-After": str(retry_after_seconds)},
    )


def internal_error(message: str) -> StatusError:
    return StatusError(500, "InternalError", message)


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def field_required(path: str, message: str = "Required value") -> Cause:
    return Cause("FieldValueRequired", message, path)


def field_invalid(path: str, value: Any, detail: str) -> Cause:
    shown = value if isinstance(value, str | int | float | bool) else repr(value)
    if isinstance(shown, str):
        shown = f'"{shown}"'
    return Cause("FieldValueInvalid", f"Invalid value: {shown}: {detail}", path)


def field_not_supported(path: str, value: Any, supported: list[str]) -> Cause:
    options = ", ".join(f'"{s}"' for s in supported)
    return Cause(
        "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {options}',
        path,
    )


def field_forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def field_too_long(path: str, max_length: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: must have at most {max_length} bytes", path)


def field_duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {value!r}", path)
