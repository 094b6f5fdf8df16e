"""Continue tokens for paged lists (``limit`` / ``continue``).

A token is opaque to clients: base64 of a small JSON document naming the list's revision
and the last key returned (relative to the list's prefix), in upstream's shape
(``{"v":"meta.k8s.io/v1","rv":N,"start":"..."}``) so tokens look familiar in logs.
Later pages are read from the cache after that key. A token that does not decode, or names
a key outside the collection, is a 400.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from kplane.apimachinery import errors
from kplane.storage.cacher import CachedObject

_TOKEN_VERSION = "meta.k8s.io/v1"
_MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class ContinueToken:
    start_after: str
    revision: int


def encode_continue(*, start_after: str, revision: int) -> str:
    doc = {"v": _TOKEN_VERSION, "rv": revision, "start": start_after + "\x00"}
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


def decode_continue(token: str) -> ContinueToken:
    def invalid(detail: str) -> errors.StatusError:
        return errors.bad_request(f"continue key is not valid: {detail}")

    if len(token) > _MAX_TOKEN_LENGTH:
        raise invalid("too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid("not a continue token") from None
    if not isinstance(doc, dict) or doc.get("v") != _TOKEN_VERSION:
        raise invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    revision = doc.get("rv")
    start = doc.get("start")
    # bool is an int subclass in Python, but ``true`` is no revision.
    if (not isinstance(revision, int) or isinstance(revision, bool) or revision <= 0
            or not isinstance(start, str)):
        raise invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    start = start.removesuffix("\x00")
    if not start or start.startswith("/") or ".." in start.split("/"):
        raise invalid("invalid start key")
    return ContinueToken(start, revision)


def after_key(objects: Sequence[CachedObject], key: str) -> list[CachedObject]:
    """The objects (sorted by key) whose key sorts after ``key``."""
    keys = [o.key for o in objects]
    return list(objects[bisect.bisect_right(keys, key):])
