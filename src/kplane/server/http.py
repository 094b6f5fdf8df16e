"""A thin request/response layer over raw ASGI: just what a Kubernetes API needs.

No framework: a request is its method, path, query and headers parsed once, and a body read
with a hard size limit; a response is bytes with a content type.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson

from kplane.apimachinery import errors
from kplane.auth.authn import UserInfo
from kplane.server.body import MAX_BODY_BYTES
from kplane.server.types import Receive, Scope, Send

JSON_CONTENT_TYPE = b"application/json"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# What Go's strconv.ParseInt(s, 10, 64) accepts: an optional sign and ASCII digits, nothing
# else (no blanks, no "_" separators, no other scripts' digits, which Python's int() takes).
_DECIMAL = re.compile(r"[+-]?[0-9]+")


class Request:
    """One HTTP request."""

    __slots__ = ("_body", "_pairs", "headers", "method", "path", "query", "receive", "scope",
                 "user")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        query: dict[str, str] = {}
        pairs: list[tuple[str, str]] = []
        raw_query: bytes = scope.get("query_string", b"")
        if raw_query:
            try:
                pairs = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True,
                                  max_num_fields=64)
            except ValueError:
                raise errors.bad_request("too many query parameters") from None
            for key, value in pairs:
                query.setdefault(key, value)
        self.query = query
        self._pairs = pairs
        self.headers: dict[str, str] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self._body: bytes | None = None
        # Who the request acts as, once authenticated (None: anonymous on a public path).
        self.user: UserInfo | None = None

    def created_name(self) -> str:
        """metadata.name of a JSON body already read (for the audit log), else ''."""
        if not self._body:
            return ""
        try:
            body = orjson.loads(self._body)
        except orjson.JSONDecodeError:
            return ""
        meta = body.get("metadata") if isinstance(body, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""

    def query_values(self, name: str) -> list[str]:
        """Every value of a repeated parameter, in order (``dryRun`` is a list upstream)."""
        return [value for key, value in self._pairs if key == name]

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    async def body(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole body; 413 as soon as it exceeds ``limit``, without reading the rest."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise errors.too_large(
                f"the request body is {declared} bytes; the limit is {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise errors.bad_request("the client disconnected while sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise errors.too_large(f"the request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body


def query_flag(value: str | None) -> bool:
    """A boolean query parameter as upstream converts one: present and not ``0``/``false``
    (any case) is true, so a bare ``?watch`` counts."""
    return value is not None and value.lower() not in ("0", "false")


def query_int64(query: dict[str, str], name: str) -> int | None:
    """An integer query parameter parsed as upstream's conversion does (``strconv.ParseInt``
    into an int64): absent is None; anything else that is not a decimal int64, the empty
    string included, is a 400 BadRequest."""
    raw = query.get(name)
    if raw is None:
        return None
    shown = raw if len(raw) <= 32 else raw[:32] + "..."
    if not _DECIMAL.fullmatch(raw):
        raise errors.bad_request(f'{name}: Invalid value: "{shown}": must be an integer')
    # Leading zeros are fine (as in Go); more than 19 significant digits cannot fit, and
    # int() of thousands of digits would itself raise.
    significant = raw.lstrip("+-").lstrip("0")
    value = int(raw) if len(significant) <= 19 else INT64_MAX + 1
    if not INT64_MIN <= value <= INT64_MAX:
        raise errors.bad_request(
            f'{name}: Invalid value: "{shown}": must be an integer between {INT64_MIN} '
            f"and {INT64_MAX}")
    return value


async def send_bytes(send: Send, status: int, body: bytes, *,
                     content_type: bytes = JSON_CONTENT_TYPE,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, value: Any, *,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(value), headers=headers)


async def send_status_error(send: Send, error: errors.StatusError) -> None:
    # ASGI wants response header names lowercased.
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
               for k, v in error.headers.items()]
    await send_json(send, error.code, error.to_status(), headers=headers)


def warning_headers(warnings: list[str]) -> list[tuple[bytes, bytes]]:
    """``Warning: 299 - "text"`` headers, as kube-apiserver sends them."""
    out: list[tuple[bytes, bytes]] = []
    for text in warnings[:64]:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        # A control character (a newline in an unknown field's name, say) is not allowed in a
        # header value: the server would refuse to send the response at all.
        escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
        out.append((b"warning", f'299 - "{escaped}"'.encode("utf-8", "replace")))
    return out
