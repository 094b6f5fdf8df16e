"""The embedded storage backend: one SQLite file in WAL mode behind the ``Backend`` protocol.

Why it looks like this:

* **One writer thread, group commit.** SQLite allows one writer at a time and each commit
  costs a WAL sync, so every write is queued to a single thread that takes *all* pending
  operations and runs them in one ``BEGIN IMMEDIATE`` transaction. Under load the sync is
  paid once per batch instead of once per write. Compare-and-swap conditions are checked
  inside that transaction, per operation, before anything is written, so a conflict fails
  only its own operation and never the rest of the batch.
* **Acknowledge after commit.** An operation's future is resolved only after ``COMMIT``
  returned, in the same event-loop callback that pushes the batch's events to watchers, so
  an acknowledged write is durable and watchers see it no later than the writer does.
* **Global revisions** are handed out by the writer thread in commit order (1 for the first
  write). They are not stored in a counter row: the current revision is the newest history
  row, or the compacted revision when compaction removed every row, which keeps each write
  to two row inserts.
* **Watches need no polling**: each subscriber is registered *before* history is read, so an
  event is either in the history snapshot or arrives live (or both, and is then skipped by
  revision): no gap, no duplicate.
* **Compaction** deletes history rows at and below a revision and remembers that revision;
  a watch asking for changes after an older revision gets ``CompactedError``. A replayed
  update carries ``prev`` only while the previous version's own history row still exists
  (live events always carry it).
* **Reads** (``get``, ``range``, history replay) go through a separate connection on a
  reader thread; WAL lets them run next to the writer, and ``range`` reads rows and the
  revision inside one read transaction, so both come from the same snapshot.

Durability and the default ``synchronous`` setting. Measured on the project's 2-core build
machine (ext4 on a virtual disk), 32 concurrent asyncio writers, 300-byte values, 20,000 to
40,000 creates per run, several runs (the command is in docs/storage.md):

* ``synchronous=FULL``   17,000 - 27,000 creates/s (the WAL is synced at every commit)
* ``synchronous=NORMAL`` 18,000 - 28,000 creates/s (synced only at checkpoints)
* one writer alone, without group commit to help: FULL 5,000 - 8,000/s, NORMAL 9,000 - 14,000/s

Both keep every acknowledged write across ``kill -9`` of the process, because a committed
transaction is in the WAL file (at least in the OS page cache) before ``COMMIT`` returns;
only FULL also keeps it across power loss or an OS crash. With group commit the two are
within run-to-run noise of each other, so FULL is the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import pathlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kplane.storage.backend import (
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

__all__ = ["DEFAULT_SYNCHRONOUS", "SQLiteBackend"]

logger = logging.getLogger(__name__)

DEFAULT_SYNCHRONOUS = "FULL"
_SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

# A batch is one transaction; capping it bounds how long one commit holds the writer.
_MAX_BATCH = 1_000
# History is replayed in pages so a watch from far back never loads the whole log at once.
_REPLAY_PAGE = 1_000
# Batches a live subscriber may have pending while it replays or is slow; past this the
# watch fails with UnavailableError rather than growing without bound.
_SUBSCRIBER_BACKLOG = 10_000

_PUT = 0
_DELETE = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    type INTEGER NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

_REVISION_SQL = (
    "SELECT max(coalesce((SELECT max(revision) FROM log), 0),"
    " coalesce((SELECT value FROM meta WHERE name = 'compacted'), 0))"
)
_COMPACTED_SQL = "SELECT coalesce((SELECT value FROM meta WHERE name = 'compacted'), 0)"

_T = TypeVar("_T")


class _OpKind(enum.Enum):
    CREATE = enum.auto()
    UPDATE = enum.auto()
    DELETE = enum.auto()
    COMPACT = enum.auto()


@dataclass(slots=True)
class _WriteOp:
    kind: _OpKind
    key: str
    future: asyncio.Future[Any]
    value: bytes = b""
    expected: int | None = None


_Outcome = tuple[asyncio.Future[Any], object]


@dataclass(slots=True)
class _BatchResult:
    revision: int
    events: list[WatchEvent] = field(default_factory=list)
    outcomes: list[_Outcome] = field(default_factory=list)


class _Subscriber:
    """The live side of one watch: batches pushed by the writer's commit callback."""

    __slots__ = ("broken", "prefix", "queue")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[list[WatchEvent] | None] = asyncio.Queue()
        self.broken = False

    def offer(self, events: Sequence[WatchEvent]) -> None:
        matching = [e for e in events if e.kv.key.startswith(self.prefix)]
        if not matching or self.broken:
            return
        if self.queue.qsize() >= _SUBSCRIBER_BACKLOG:
            self.broken = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(matching)

    def end(self) -> None:
        self.queue.put_nowait(None)


def _prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """The half-open key range ``[low, high)`` of keys starting with ``prefix``."""
    if not prefix:
        return "", None
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _open_connection(path: str, *, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


class SQLiteBackend:
    """A revisioned key-value store in one SQLite file (see the module docstring)."""

    # current_revision() answers from memory: no round trip to share between readers.
    revision_is_local = True

    def __init__(self, path: str | pathlib.Path, *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS_MODES)}")
        self._path = str(path)
        self._synchronous = mode
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ops: queue.SimpleQueue[_WriteOp | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._subscribers: set[_Subscriber] = set()
        # Owned by the event loop: the newest revision whose commit callback has run.
        self._revision = 0
        # Owned by the writer thread: the newest committed revision.
        self._writer_revision = 0
        self._open = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._open:
            return
        self._loop = asyncio.get_running_loop()
        started: ThreadFuture[int] = ThreadFuture()
        self._writer = threading.Thread(
            target=self._writer_main, args=(started,), name="kplane-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._revision = await asyncio.wrap_future(started)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kplane-sqlite-read")
        self._reader_conn = await self._loop.run_in_executor(self._reader, self._open_reader)
        self._open = True

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self._ops.put(None)
        writer = self._writer
        if writer is not None:
            await asyncio.to_thread(writer.join)
        for subscriber in list(self._subscribers):
            subscriber.end()
        self._subscribers.clear()
        if self._reader is not None:
            if self._reader_conn is not None:
                await asyncio.get_running_loop().run_in_executor(
                    self._reader, self._reader_conn.close
                )
            self._reader.shutdown(wait=True)
        self._reader = None
        self._reader_conn = None

    # -- reads -----------------------------------------------------------------------

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return await self._read(self._read_compacted)

    async def get(self, key: str) -> KeyValue | None:
        return await self._read(self._read_key, key)

    async def range(self, prefix: str) -> RangeResult:
        return await self._read(self._read_range, prefix)

    # -- writes ----------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        result: KeyValue = await self._submit(_OpKind.CREATE, key, value=value)
        return result

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        result: KeyValue = await self._submit(
            _OpKind.UPDATE, key, value=value, expected=expected_mod_revision
        )
        return result

    async def delete(self, key: str, *, expected_mod_revision: int | None = None) -> KeyValue:
        result: KeyValue = await self._submit(_OpKind.DELETE, key, expected=expected_mod_revision)
        return result

    async def compact(self, revision: int) -> None:
        await self._submit(_OpKind.COMPACT, "", expected=revision)

    # -- watch -----------------------------------------------------------------------

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[list[WatchEvent]]:
        return self._watch(prefix, after_revision)

    async def _watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[WatchEvent]]:
        self._require_open()
        subscriber = _Subscriber(prefix)
        # Registered before history is read: whatever commits from here on arrives live.
        self._subscribers.add(subscriber)
        try:
            last = after_revision
            while True:
                page, compacted = await self._read(self._read_history, prefix, last)
                if last < compacted:
                    raise CompactedError(last, compacted)
                if page:
                    last = page[-1].revision
                    yield page
                if len(page) < _REPLAY_PAGE:
                    break
            while True:
                batch = await subscriber.queue.get()
                if batch is None:
                    if subscriber.broken:
                        raise UnavailableError("watch fell too far behind and was dropped")
                    return
                fresh = [e for e in batch if e.revision > last]
                if fresh:
                    last = fresh[-1].revision
                    yield fresh
        finally:
            self._subscribers.discard(subscriber)

    # -- plumbing on the event loop --------------------------------------------------

    def _require_open(self) -> None:
        if not self._open:
            raise UnavailableError("the SQLite backend is not open")

    async def _submit(
        self, kind: _OpKind, key: str, *, value: bytes = b"", expected: int | None = None
    ) -> Any:
        self._require_open()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.put(_WriteOp(kind, key, future, value, expected))
        return await future

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        self._require_open()
        assert self._loop is not None
        return await self._loop.run_in_executor(self._reader, fn, *args)

    def _publish(self, result: _BatchResult) -> None:
        """Runs on the event loop after a commit: advance, notify watchers, then writers."""
        self._revision = max(self._revision, result.revision)
        if result.events:
            for subscriber in list(self._subscribers):
                subscriber.offer(result.events)
        for future, outcome in result.outcomes:
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    # -- the reader thread -----------------------------------------------------------

    def _open_reader(self) -> sqlite3.Connection:
        conn = _open_connection(self._path, synchronous=self._synchronous)
        conn.execute("PRAGMA query_only = 1")
        return conn

    def _reader_connection(self) -> sqlite3.Connection:
        if self._reader_conn is None:
            raise UnavailableError("the SQLite backend is not open")
        return self._reader_conn

    def _read_compacted(self) -> int:
        row = self._reader_connection().execute(_COMPACTED_SQL).fetchone()
        return int(row[0])

    def _read_key(self, key: str) -> KeyValue | None:
        row = (
            self._reader_connection()
            .execute(
                "SELECT key, value, create_revision, mod_revision FROM kv WHERE key = ?", (key,)
            )
            .fetchone()
        )
        return None if row is None else KeyValue(row[0], row[1], row[2], row[3])

    def _read_range(self, prefix: str) -> RangeResult:
        conn = self._reader_connection()
        low, high = _prefix_bounds(prefix)
        sql = "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ?"
        params: tuple[str, ...] = (low,)
        if high is not None:
            sql += " AND key < ?"
            params = (low, high)
        # One read transaction: the rows and the revision come from the same snapshot.
        conn.execute("BEGIN")
        try:
            rows = conn.execute(sql + " ORDER BY key", params).fetchall()
            revision = int(conn.execute(_REVISION_SQL).fetchone()[0])
        finally:
            conn.execute("COMMIT")
        return RangeResult(
            items=[KeyValue(r[0], r[1], r[2], r[3]) for r in rows], revision=revision
        )

    def _read_history(self, prefix: str, after: int) -> tuple[list[WatchEvent], int]:
        """One page of history after ``after`` under ``prefix``, and the compacted revision
        of the same snapshot (so a concurrent compaction cannot silently open a gap)."""
        conn = self._reader_connection()
        low, high = _prefix_bounds(prefix)
        sql = (
            "SELECT l.revision, l.key, l.type, l.value, l.create_revision, l.prev_revision,"
            " p.value FROM log l LEFT JOIN log p ON p.revision = l.prev_revision"
            " WHERE l.revision > ? AND l.key >= ?"
        )
        params: tuple[int | str, ...] = (after, low)
        if high is not None:
            sql += " AND l.key < ?"
            params = (after, low, high)
        conn.execute("BEGIN")
        try:
            compacted = int(conn.execute(_COMPACTED_SQL).fetchone()[0])
            rows = conn.execute(
                sql + " ORDER BY l.revision LIMIT ?", (*params, _REPLAY_PAGE)
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return [_history_event(row) for row in rows], compacted

    # -- the writer thread -----------------------------------------------------------

    def _writer_main(self, started: ThreadFuture[int]) -> None:
        try:
            conn = _open_connection(self._path, synchronous=self._synchronous)
            conn.executescript(_SCHEMA)
            self._writer_revision = int(conn.execute(_REVISION_SQL).fetchone()[0])
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(self._writer_revision)
        try:
            self._drain_forever(conn)
        finally:
            conn.close()

    def _drain_forever(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._ops.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    op = self._ops.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            self._deliver(self._commit_batch(conn, batch))

    def _deliver(self, result: _BatchResult) -> None:
        assert self._loop is not None
        # The loop may already be gone at interpreter shutdown; nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._publish, result)

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_WriteOp]) -> _BatchResult:
        result = _BatchResult(revision=self._writer_revision)
        revision = self._writer_revision
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in batch:
                    revision = self._apply(conn, op, revision=revision, result=result)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            logger.exception("SQLite write batch of %d operations failed", len(batch))
            failure = UnavailableError(f"storage write failed: {exc}")
            return _BatchResult(
                revision=self._writer_revision,
                outcomes=[(op.future, failure) for op in batch],
            )
        self._writer_revision = revision
        result.revision = revision
        return result

    def _apply(
        self, conn: sqlite3.Connection, op: _WriteOp, *, revision: int, result: _BatchResult
    ) -> int:
        """Apply one operation inside the open transaction; returns the revision after it.

        A failed precondition is recorded as that operation's outcome and writes nothing."""
        outcome: object
        try:
            if op.kind is _OpKind.COMPACT:
                _compact(conn, op.expected or 0, current=revision)
                outcome = None
            else:
                event = _WRITERS[op.kind](conn, op, revision + 1)
                result.events.append(event)
                outcome = event.kv
                revision += 1
        except (StorageError, ValueError) as exc:
            outcome = exc
        result.outcomes.append((op.future, outcome))
        return revision


# -- single operations, run by the writer thread inside its transaction -----------------


def _current(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else KeyValue(key, row[0], row[1], row[2])


def _log(conn: sqlite3.Connection, *, kind: int, kv: KeyValue, prev: KeyValue | None) -> None:
    conn.execute(
        "INSERT INTO log (revision, key, type, value, create_revision, prev_revision)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            kv.mod_revision,
            kv.key,
            kind,
            kv.value,
            kv.create_revision,
            None if prev is None else prev.mod_revision,
        ),
    )


def _create(conn: sqlite3.Connection, op: _WriteOp, revision: int) -> WatchEvent:
    inserted = conn.execute(
        "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        (op.key, op.value, revision, revision),
    )
    if inserted.rowcount == 0:
        raise KeyExistsError(op.key)
    kv = KeyValue(op.key, op.value, revision, revision)
    _log(conn, kind=_PUT, kv=kv, prev=None)
    return WatchEvent(EventType.PUT, kv)


def _existing_matching(conn: sqlite3.Connection, op: _WriteOp) -> KeyValue:
    prev = _current(conn, op.key)
    if prev is None:
        raise KeyNotFoundError(op.key)
    if op.expected is not None and prev.mod_revision != op.expected:
        raise ConflictError(op.key, expected=op.expected, actual=prev.mod_revision)
    return prev


def _update(conn: sqlite3.Connection, op: _WriteOp, revision: int) -> WatchEvent:
    prev = _existing_matching(conn, op)
    conn.execute(
        "UPDATE kv SET value = ?, mod_revision = ? WHERE key = ?", (op.value, revision, op.key)
    )
    kv = KeyValue(op.key, op.value, prev.create_revision, revision)
    _log(conn, kind=_PUT, kv=kv, prev=prev)
    return WatchEvent(EventType.PUT, kv, prev)


def _delete(conn: sqlite3.Connection, op: _WriteOp, revision: int) -> WatchEvent:
    prev = _existing_matching(conn, op)
    conn.execute("DELETE FROM kv WHERE key = ?", (op.key,))
    kv = KeyValue(op.key, prev.value, prev.create_revision, revision)
    _log(conn, kind=_DELETE, kv=kv, prev=prev)
    return WatchEvent(EventType.DELETE, kv, prev)


_WRITERS: dict[_OpKind, Callable[[sqlite3.Connection, _WriteOp, int], WatchEvent]] = {
    _OpKind.CREATE: _create,
    _OpKind.UPDATE: _update,
    _OpKind.DELETE: _delete,
}


def _compact(conn: sqlite3.Connection, revision: int, *, current: int) -> None:
    if revision > current:
        raise ValueError(f"cannot compact future revision {revision} (current: {current})")
    compacted = int(conn.execute(_COMPACTED_SQL).fetchone()[0])
    if revision <= compacted:
        return
    conn.execute("DELETE FROM log WHERE revision <= ?", (revision,))
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('compacted', ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (revision,),
    )


def _history_event(row: tuple[Any, ...]) -> WatchEvent:
    revision, key, kind, value, create_revision, prev_revision, prev_value = row
    kv = KeyValue(key, value, create_revision, revision)
    prev: KeyValue | None = None
    if kind == _DELETE:
        # A delete logs the value it removed, which is exactly the previous state.
        prev = KeyValue(key, value, create_revision, prev_revision)
        return WatchEvent(EventType.DELETE, kv, prev)
    if prev_revision is not None and prev_value is not None:
        # The previous state's value is found only while its own history row is kept.
        prev = KeyValue(key, prev_value, create_revision, prev_revision)
    return WatchEvent(EventType.PUT, kv, prev)
