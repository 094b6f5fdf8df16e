"""Random identifiers: object UIDs (version-4 UUIDs) and ``generateName`` suffixes.

Every create needs a UID. ``uuid.uuid4()`` (and ``secrets.choice``, once per character) ask
the kernel for randomness each time, and that system call releases the GIL: on the event
loop thread, next to the storage writer thread, each release can hand the GIL away for a
whole switch interval. Reading the same cryptographic randomness 4 KiB at a time makes that
one release per 256 UIDs.
"""

from __future__ import annotations

import os
import threading

_BLOCK = 4096
_UUID_BYTES = 16


class _RandomPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._offset = _BLOCK

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._offset + count > len(self._block):
                self._block = os.urandom(max(_BLOCK, count))
                self._offset = 0
            start = self._offset
            self._offset = start + count
            return self._block[start:start + count]


_POOL = _RandomPool()


def new_uid() -> str:
    """A random (version 4, RFC 4122 variant) UUID in its canonical text form."""
    raw = bytearray(_POOL.take(_UUID_BYTES))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_chars(alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly from ``alphabet`` (at most 256 characters):
    bytes that would bias the draw are skipped."""
    limit = 256 - 256 % len(alphabet)
    chars: list[str] = []
    while len(chars) < length:
        for byte in _POOL.take(length * 2):
            if byte < limit:
                chars.append(alphabet[byte % len(alphabet)])
                if len(chars) == length:
                    break
    return "".join(chars)
