"""The contract every storage backend (SQLite, etcd) fulfils.

A backend is a revisioned key-value store in the shape of etcd's: one global, monotonically
increasing decimal revision; each key remembers the revision that created it and the one that
last modified it; writes are compare-and-swap on the modification revision; and a watch
replays every change after a given revision, in order. Values are opaque bytes (the encoded
object, without its resourceVersion: readers derive that from ``mod_revision``).

Everything above this module (the watch cache, the registry) is written against this
protocol only, so a backend can be swapped without touching them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One stored key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(StrEnum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETE, ``kv.value`` is the last value the key held and
    ``kv.mod_revision`` is the revision of the delete itself."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StorageError(Exception):
    """Base of the errors a backend raises."""


class KeyExistsError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class KeyNotFoundError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StorageError):
    """The key's modification revision is not the one the caller expected."""

    def __init__(self, key: str, *, expected: int, actual: int) -> None:
        super().__init__(f"revision conflict on {key}: expected {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StorageError):
    """The requested revision has been compacted away."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept: {compacted})")
        self.requested = requested
        self.compacted = compacted


class UnavailableError(StorageError):
    """The backend cannot be reached right now; the caller may retry later."""


class ValueTooLargeError(StorageError):
    """The backend refuses to store a value this large (etcd's request size limit)."""


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Keys under a prefix, read at one revision."""

    items: list[KeyValue]
    revision: int


class Backend(Protocol):
    """A revisioned key-value store. All methods are safe to call concurrently."""

    async def start(self) -> None:
        """Open the store; after this, reads and writes work."""

    async def close(self) -> None:
        """Flush and release everything; pending watches end."""

    async def current_revision(self) -> int:
        """The revision of the latest write (0 for an empty store)."""

    async def get(self, key: str) -> KeyValue | None:
        """The current value of one key, or None."""

    async def range(self, prefix: str) -> RangeResult:
        """Every live key starting with ``prefix``, ordered by key, read at one revision."""

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a new key. Raises KeyExistsError if it is already there."""

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        """Replace a key's value if its mod revision still is ``expected_mod_revision``.

        Raises KeyNotFoundError or ConflictError."""

    async def delete(self, key: str, *, expected_mod_revision: int | None = None) -> KeyValue:
        """Remove a key (if its mod revision matches, when given). Returns the deleted value
        with ``mod_revision`` set to the revision of the delete.

        Raises KeyNotFoundError or ConflictError."""

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Every change to keys under ``prefix`` with a revision greater than
        ``after_revision``, in revision order, in batches; the iterator runs until closed.

        Raises CompactedError (on first iteration) if ``after_revision`` is older than the
        oldest revision the backend still keeps history for."""

    async def compact(self, revision: int) -> None:
        """Forget history at and below ``revision``; live keys are kept."""

    async def compacted_revision(self) -> int:
        """The newest revision that has been compacted (0 if none)."""
