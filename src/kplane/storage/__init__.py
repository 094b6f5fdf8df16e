"""Storage: a revisioned key-value store and the watch cache in front of it.

``backend`` defines the contract (etcd's model: global revisions, compare-and-swap on the
modification revision, watch from a revision, compaction); ``sqlite`` is the embedded
implementation; ``cacher`` keeps every live object in memory so the API server's GET, LIST
and WATCH never reach storage. Nothing here knows about resources or JSON: keys are paths
and values are opaque bytes, decoded by a callback the registry supplies.
"""

from kplane.storage.backend import (
    Backend,
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RangeResult,
    StorageError,
    UnavailableError,
    WatchEvent,
)
from kplane.storage.cacher import (
    ADDED,
    DELETED,
    MODIFIED,
    CachedObject,
    CacheEvent,
    Cacher,
    CacheWatcher,
    Decoder,
    Predicate,
)
from kplane.storage.sqlite import SQLiteBackend

__all__ = [
    "ADDED",
    "DELETED",
    "MODIFIED",
    "Backend",
    "CacheEvent",
    "CacheWatcher",
    "CachedObject",
    "Cacher",
    "CompactedError",
    "ConflictError",
    "Decoder",
    "EventType",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "Predicate",
    "RangeResult",
    "SQLiteBackend",
    "StorageError",
    "UnavailableError",
    "WatchEvent",
]
