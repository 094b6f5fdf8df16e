"""Names of logical clusters and the syntax of workspace paths.

A logical cluster is named ``root``, ``system:<something>``, or 16 characters of base36
from random bytes (kcp's form). A path walks Workspace names from a cluster:
``root:acme:payments``. A reference without ``:`` (other than ``root``) is a cluster name.
"""

from __future__ import annotations

import re
import secrets

ROOT = "root"
WILDCARD = "*"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_CLUSTER_NAME_LENGTH = 16
_SEGMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_PATH_LENGTH = 1024


def new_cluster_name() -> str:
    """A fresh logical cluster name: 16 base36 characters from 82 random bits."""
    value = secrets.randbits(82)
    chars = []
    for _ in range(_CLUSTER_NAME_LENGTH):
        value, digit = divmod(value, 36)
        chars.append(_BASE36[digit])
    return "".join(chars)


def is_valid_reference(reference: str) -> bool:
    """Whether ``reference`` is syntactically a path or a cluster name."""
    if not reference or len(reference) > _MAX_PATH_LENGTH:
        return False
    if reference.startswith("system:"):
        return bool(_SEGMENT.match(reference.removeprefix("system:")))
    return all(_SEGMENT.match(segment) for segment in reference.split(":"))


def join(parent_path: str, name: str) -> str:
    return f"{parent_path}:{name}"


def parent_of(path: str) -> str | None:
    """``root:a`` for ``root:a:b``; None for a path with no parent."""
    head, sep, _tail = path.rpartition(":")
    return head if sep else None
