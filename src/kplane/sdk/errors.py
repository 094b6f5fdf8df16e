"""The errors a provider sees from the server: a Kubernetes Status turned into an exception.

Only answers the server gave become ``ApiError``s. A connection that fails never reaches
here; it surfaces as ``httpx.TransportError`` (re-exported as ``TransportError``), which the
Informer and the Controller treat as "try again later".
"""

from __future__ import annotations

from typing import Any

import httpx

TransportError = httpx.TransportError


class ApiError(Exception):
    """The server answered with an error status (its ``Status`` body, when it sent one)."""

    def __init__(self, status: int, reason: str, message: str,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body: dict[str, Any] = body if body is not None else {}


class NotFound(ApiError):
    """404: the object (or the resource, or the workspace) does not exist."""


class Conflict(ApiError):
    """409: a stale resourceVersion on write, or a create of a name that exists."""


class Gone(ApiError):
    """410: the resourceVersion asked for is older than the history the server keeps."""


_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 410: Gone}


def error_from_status(status: int, body: dict[str, Any], *, fallback: str = "") -> ApiError:
    """The exception for an HTTP status and the (possibly empty) Status object that came
    with it; an ERROR watch event is the same Status with its code inside."""
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or fallback or f"HTTP {status}")
    cls = _BY_STATUS.get(status, ApiError)
    return cls(status, reason, message, body)
