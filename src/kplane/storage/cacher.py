"""The watch cache: every live object in memory, so GET, LIST and WATCH never touch storage.

One ``Cacher`` serves the whole keyspace. It lists everything once, then follows a single
backend watch from that revision and applies each change to an in-memory index. This is
what makes a workspace cheap: its few objects cost a few index entries, and nothing is
started per workspace or per resource.

Why the pieces look the way they do:

* **A trie keyed by ``/``-separated segments** (``_KeyIndex``). Lists always ask for a
  prefix ending at a segment boundary (a resource, a cluster, a namespace), so walking the
  trie reaches exactly that subtree: listing one namespace costs the same whether the
  cache holds a thousand objects or a million. Each node counts the objects below it, so
  ``count`` is a walk, not a scan.
* **Only ``CachedObject``s are kept**, never parsed dicts: the encoded bytes (written to
  the socket as they are) plus the few fields selectors need. Storage knows nothing of
  resources or JSON; the registry supplies the decoder.
* **Watchers are indexed by prefix.** An event on a key looks up only the prefixes of that
  key (one per ``/``), so fan-out cost follows the watchers that care, not all watchers.
* **Selector semantics live here**, because only here are both the old and the new state
  of an object known: a change that makes an object stop (start) matching a watcher's
  predicate is delivered to it as DELETED (ADDED).
* **A bounded history** lets a watch resume from a recent resourceVersion without
  storage. Older ones get ``CompactedError`` (HTTP 410), and the client relists. It is
  bounded twice: by a number of changes (``history_limit``) and by the bytes only it
  keeps alive (``history_bytes_limit``), since ten thousand changes of 1 MB objects would
  otherwise pin 10 GB. Whichever limit is reached first evicts the oldest changes.
* **A slow watcher never slows anyone else**: its queue is bounded, and on overflow it is
  closed and dropped; the client re-watches from the last resourceVersion it saw.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, Union

from kplane.storage.backend import (
    Backend,
    CompactedError,
    EventType,
    KeyValue,
    UnavailableError,
    WatchEvent,
)

__all__ = [
    "ADDED",
    "DELETED",
    "MODIFIED",
    "CacheEvent",
    "CacheWatcher",
    "CachedObject",
    "Cacher",
    "Decoder",
    "Predicate",
]

logger = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

DEFAULT_WATCHER_QUEUE_LIMIT = 1_000
DEFAULT_HISTORY_LIMIT = 10_000
# Room for the whole count limit at ~26 KB per replaced object (most objects are far
# smaller), while updates of a 900 KB ConfigMap keep ~300 changes instead of pinning 9 GB.
# Clients past the history relist, which costs them a LIST, not correctness.
DEFAULT_HISTORY_BYTES_LIMIT = 256 * 1024 * 1024
_RELIST_BACKOFF_INITIAL = 0.1
_RELIST_BACKOFF_MAX = 5.0


@dataclass(slots=True)
class CachedObject:
    """One stored object as the cache keeps it: its encoded bytes and selectable fields."""

    key: str
    raw: bytes
    revision: int
    name: str
    namespace: str
    labels: Mapping[str, str]
    fields: Mapping[str, str]


Decoder = Callable[[KeyValue], CachedObject]
Predicate = Callable[[CachedObject], bool]


@dataclass(slots=True)
class CacheEvent:
    """What one watcher receives. Shared by every watcher that receives the same type for
    the same change, so ``memo`` lets the HTTP layer encode each event once per format."""

    type: str
    obj: CachedObject
    memo: dict[str, bytes]


@dataclass(slots=True)
class _Change:
    """One applied change, kept in the history for replay.

    ``old`` is the object's previous state, kept for MODIFIED only (a selector transition
    needs it; a DELETED event is decided on the deleted state alone). ``cost`` is how many
    bytes this entry alone keeps alive, see ``_History``."""

    type: str
    obj: CachedObject
    old: CachedObject | None
    cost: int = 0

    @property
    def revision(self) -> int:
        return self.obj.revision


# -- the key index ---------------------------------------------------------------------


class _Node:
    """An inner trie node. Leaves are stored as bare ``CachedObject``s in ``children`` (one
    object less per cached object); a node carries ``obj`` itself only in the rare case
    where a key is also a ``/``-prefix of other keys."""

    __slots__ = ("children", "obj", "size")

    def __init__(self) -> None:
        self.children: dict[str, _Entry] = {}
        self.obj: CachedObject | None = None
        self.size = 0


_Entry = Union[_Node, CachedObject]  # noqa: UP007 - a runtime alias; `|` needs quoting here


class _KeyIndex:
    """Cached objects by key, in a trie of ``/``-separated segments (for prefixes: lists
    and counts) and in a flat dict (for single keys: every GET and every write's
    lookups of its namespace and workspace, about half the cost of walking the trie)."""

    __slots__ = ("_by_key", "_root")

    def __init__(self) -> None:
        self._root = _Node()
        self._by_key: dict[str, CachedObject] = {}

    def __len__(self) -> int:
        return self._root.size

    def get(self, key: str) -> CachedObject | None:
        return self._by_key.get(key)

    def put(self, obj: CachedObject) -> CachedObject | None:
        """Insert or replace; returns the object previously stored under the key."""
        self._by_key[obj.key] = obj
        *inner, last = obj.key.split("/")
        path = [self._root]
        for segment in inner:
            path.append(_inner_child(path[-1], segment))
        parent = path[-1]
        entry = parent.children.get(last)
        if isinstance(entry, _Node):
            old, entry.obj = entry.obj, obj
            if old is None:
                entry.size += 1
        else:
            old = entry
            # The name is the last segment: reuse the object's own string as the dict key.
            parent.children[obj.name if obj.name == last else last] = obj
        if old is None:
            for node in path:
                node.size += 1
        return old

    def remove(self, key: str) -> CachedObject | None:
        self._by_key.pop(key, None)
        *inner, last = key.split("/")
        path = [self._root]
        for segment in inner:
            child = path[-1].children.get(segment)
            if not isinstance(child, _Node):
                return None
            path.append(child)
        old = self._detach(path[-1], last)
        if old is not None:
            self._shrink(path, inner)
        return old

    @staticmethod
    def _detach(parent: _Node, segment: str) -> CachedObject | None:
        entry = parent.children.get(segment)
        if not isinstance(entry, _Node):
            if entry is not None:
                del parent.children[segment]
            return entry
        old, entry.obj = entry.obj, None
        if old is not None:
            entry.size -= 1
            if entry.size == 0:
                del parent.children[segment]
        return old

    @staticmethod
    def _shrink(path: list[_Node], segments: list[str]) -> None:
        """Decrement counts along the path and drop inner nodes left empty."""
        for node in path:
            node.size -= 1
        for depth in range(len(segments), 0, -1):
            if path[depth].size == 0:
                del path[depth - 1].children[segments[depth - 1]]

    def _prefix_start(self, prefix: str) -> tuple[_Node, str] | None:
        """The node whose path is the prefix up to its last ``/``, and the rest of it."""
        *inner, partial = prefix.split("/")
        node = self._root
        for segment in inner:
            child = node.children.get(segment)
            if not isinstance(child, _Node):
                return None
            node = child
        return node, partial

    def count(self, prefix: str) -> int:
        start = self._prefix_start(prefix)
        if start is None:
            return 0
        node, partial = start
        if not partial:
            # The node's own object is keyed without the trailing "/", so it is excluded.
            return node.size - (node.obj is not None)
        return sum(
            entry.size if isinstance(entry, _Node) else 1
            for segment, entry in node.children.items()
            if segment.startswith(partial)
        )

    def list_prefix(self, prefix: str) -> list[CachedObject]:
        start = self._prefix_start(prefix)
        if start is None:
            return []
        node, partial = start
        out: list[CachedObject] = []
        _collect_sorted(node, partial, out)
        return out


def _inner_child(node: _Node, segment: str) -> _Node:
    child = node.children.get(segment)
    if isinstance(child, _Node):
        return child
    inner = _Node()
    if child is not None:
        # A stored key is becoming a prefix of another one: keep it on the new node.
        inner.obj = child
        inner.size = 1
    # Inner segments (namespaces, resource names) repeat across clusters: share them.
    node.children[sys.intern(segment)] = inner
    return inner


def _collect_sorted(node: _Node, partial: str, out: list[CachedObject]) -> None:
    """Append the objects below ``node`` whose next segment starts with ``partial``, in
    key order. Siblings are sorted by what follows in the key (``seg`` for an object,
    ``seg + "/"`` for a subtree), which is exactly the order of the full key strings."""
    items: list[tuple[str, _Entry]] = []
    for segment, entry in node.children.items():
        if not segment.startswith(partial):
            continue
        if isinstance(entry, _Node):
            if entry.obj is not None:
                items.append((segment, entry.obj))
            items.append((segment + "/", entry))
        else:
            items.append((segment, entry))
    items.sort(key=itemgetter(0))
    for _, entry in items:
        if isinstance(entry, _Node):
            _collect_sorted(entry, "", out)
        else:
            out.append(entry)


# -- history ---------------------------------------------------------------------------


class _History:
    """The recent changes, oldest first. ``floor`` is the newest revision that is no longer
    replayable: every change after it is still here.

    Two limits, and the oldest changes go as soon as either is exceeded: at most
    ``count_limit`` changes, and at most ``bytes_limit`` bytes of objects that only the
    history keeps alive. That is not the sum of the changes' objects: an ADDED or MODIFIED
    change usually shares its object with the live index, which holds it anyway. Bytes
    become the history's when an object is replaced or deleted, and each change's
    ``cost`` is what it makes the history's:

    * MODIFIED: the previous state it keeps in ``old`` (the change that created that
      state, if still here, is older, so it goes first and never outlives this one);
    * DELETED: the deleted state it carries, plus the last live state while the change
      that created it is still here (it keeps no ``old``: that much is an overestimate
      once the creating change is evicted, and errs on the side of evicting early);
    * ADDED: nothing.

    Raw bytes only: the few hundred bytes of bookkeeping per change are what the count
    limit bounds."""

    __slots__ = ("_bytes_limit", "_count_limit", "_items", "bytes", "floor")

    def __init__(self, count_limit: int, bytes_limit: int) -> None:
        self._count_limit = count_limit
        self._bytes_limit = bytes_limit
        self._items: deque[_Change] = deque()
        self.bytes = 0
        self.floor = 0

    def reset(self, floor: int) -> None:
        self._items = deque()
        self.bytes = 0
        self.floor = floor

    def append(self, change: _Change) -> None:
        items = self._items
        items.append(change)
        self.bytes += change.cost
        while items and (len(items) > self._count_limit or self.bytes > self._bytes_limit):
            evicted = items.popleft()
            self.bytes -= evicted.cost
            self.floor = evicted.revision

    def since(self, revision: int) -> list[_Change]:
        """Changes with a revision greater than ``revision``, oldest first."""
        items = self._items
        first = bisect.bisect_right(items, revision, key=attrgetter("revision"))
        return list(itertools.islice(items, first, None))


# -- watchers --------------------------------------------------------------------------


def _event_type(change: _Change, predicate: Predicate | None) -> str | None:
    """The event type a watcher with ``predicate`` sees for ``change``, or None."""
    if predicate is None:
        return change.type
    if change.type != MODIFIED:
        return change.type if predicate(change.obj) else None
    matches_now = predicate(change.obj)
    matched_before = change.old is not None and predicate(change.old)
    if matched_before:
        return MODIFIED if matches_now else DELETED
    return ADDED if matches_now else None


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _watch_bucket(prefix: str) -> str:
    """The segment-boundary prefix a watcher is indexed under."""
    return prefix[: prefix.rfind("/") + 1]


def _key_buckets(key: str) -> Iterator[str]:
    """Every segment-boundary prefix of ``key``: the buckets whose watchers may want it."""
    yield ""
    slash = key.find("/")
    while slash >= 0:
        yield key[: slash + 1]
        slash = key.find("/", slash + 1)


class CacheWatcher:
    """One watch on the cache: an async iterator of ``CacheEvent``s.

    Replayed history is held apart from live events so a long replay never counts
    against the live queue limit."""

    def __init__(
        self,
        *,
        prefix: str,
        after_revision: int,
        predicate: Predicate | None,
        queue_limit: int,
        on_close: Callable[[CacheWatcher], None],
    ) -> None:
        self.prefix = prefix
        self.after_revision = after_revision
        self.predicate = predicate
        self._queue_limit = queue_limit
        self._on_close = on_close
        self._replay: deque[CacheEvent] = deque()
        self._live: deque[CacheEvent] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._closed = False

    def __aiter__(self) -> AsyncIterator[CacheEvent]:
        return self

    async def __anext__(self) -> CacheEvent:
        while True:
            event = await self.next_event(timeout=3600.0)
            if event is not None:
                return event

    async def next_event(self, timeout: float) -> CacheEvent | None:
        """The next event, or None once ``timeout`` seconds passed without one.

        Raises StopAsyncIteration once the watcher is closed (by ``close()``, by the
        cacher stopping or relisting, or because this watcher fell behind)."""
        return await self.next_event_until(asyncio.get_running_loop().time() + timeout)

    async def next_event_until(self, when: float) -> CacheEvent | None:
        """The next event, or None once the loop's clock reaches ``when``.

        A watch server passes the same ``when`` until it has something of its own to do
        (a bookmark, its deadline), so one timer serves every wait in between: a thousand
        watchers of a busy resource arm no timer per event."""
        loop = asyncio.get_running_loop()
        while True:
            event = self._pop()
            if event is not None:
                return event
            if self._closed:
                raise StopAsyncIteration
            if loop.time() >= when:
                return None
            if self._timer is None or self._timer_when != when:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(when, self._timer_fired)
                self._timer_when = when
            self._wakeup = loop.create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._replay.clear()
        self._live.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()
        self._on_close(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def _pop(self) -> CacheEvent | None:
        if self._closed:
            return None
        if self._replay:
            return self._replay.popleft()
        if self._live:
            return self._live.popleft()
        return None

    def _push_replay(self, event: CacheEvent) -> None:
        self._replay.append(event)

    def _offer(self, event: CacheEvent) -> bool:
        """Queue a live event; False if the queue is full (the caller then drops us)."""
        if len(self._live) >= self._queue_limit:
            return False
        self._live.append(event)
        self._wake()
        return True

    def _timer_fired(self) -> None:
        # uvloop may fire a timer a little before its clock reads the time asked for; the
        # waiter then finds the time not yet reached and must arm a new timer, not trust
        # this one to come.
        self._timer = None
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


# -- the cacher ------------------------------------------------------------------------


class Cacher:
    """The in-memory cache of every object under ``prefix`` (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        decoder: Decoder,
        *,
        prefix: str = "/registry/",
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        history_bytes_limit: int = DEFAULT_HISTORY_BYTES_LIMIT,
        watcher_queue_limit: int = DEFAULT_WATCHER_QUEUE_LIMIT,
    ) -> None:
        """``history_limit`` and ``history_bytes_limit`` bound the history a watch can
        resume from (changes; bytes of replaced and deleted objects only it keeps, see
        ``_History``). ``watcher_queue_limit`` bounds each watcher's live queue."""
        self._backend = backend
        self._decoder = decoder
        self._prefix = prefix
        self._watcher_queue_limit = watcher_queue_limit
        self._index = _KeyIndex()
        self._history = _History(history_limit, history_bytes_limit)
        self._watchers: dict[str, set[CacheWatcher]] = {}
        self._revision = 0
        self._ready = False
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_order = itertools.count()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._follow(), name="kplane-cacher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready = False
        self._close_all_watchers()
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UnavailableError("the watch cache stopped"))
        self._waiters.clear()

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def history_bytes(self) -> int:
        """Bytes of replaced and deleted objects that only the watch history keeps alive."""
        return self._history.bytes

    async def wait_for_revision(self, revision: int, *, timeout: float = 5.0) -> None:
        """Return once the cache has applied ``revision``; TimeoutError otherwise."""
        if self._revision >= revision:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (revision, next(self._waiter_order), waiter))
        await asyncio.wait_for(waiter, timeout)

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str) -> CachedObject | None:
        return self._index.get(key)

    def list(self, prefix: str) -> list[CachedObject]:
        return self._index.list_prefix(prefix)

    def count(self, prefix: str) -> int:
        return self._index.count(prefix)

    # -- watch -----------------------------------------------------------------------

    def watch(
        self, prefix: str, *, after_revision: int, predicate: Predicate | None = None
    ) -> CacheWatcher:
        """Every change under ``prefix`` after ``after_revision`` that ``predicate`` lets
        through (with selector transitions), replayed from history and then live.

        Raises CompactedError when ``after_revision`` is older than the history kept, and
        UnavailableError while the cache is not loaded."""
        if not self._ready:
            raise UnavailableError("the watch cache is not ready")
        if after_revision < self._history.floor:
            raise CompactedError(after_revision, self._history.floor)
        watcher = CacheWatcher(
            prefix=prefix,
            after_revision=after_revision,
            predicate=predicate,
            queue_limit=self._watcher_queue_limit,
            on_close=self._forget_watcher,
        )
        for change in self._history.since(after_revision):
            if change.obj.key.startswith(prefix):
                event_type = _event_type(change, predicate)
                if event_type is not None:
                    watcher._push_replay(CacheEvent(event_type, change.obj, {}))
        self._watchers.setdefault(_watch_bucket(prefix), set()).add(watcher)
        return watcher

    def _forget_watcher(self, watcher: CacheWatcher) -> None:
        bucket = _watch_bucket(watcher.prefix)
        watchers = self._watchers.get(bucket)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[bucket]

    def _close_all_watchers(self) -> None:
        everyone = [w for watchers in self._watchers.values() for w in watchers]
        for watcher in everyone:
            watcher.close()
        self._watchers.clear()

    # -- following the backend -------------------------------------------------------

    async def _load(self) -> None:
        result = await self._backend.range(self._prefix)
        index = _KeyIndex()
        for kv in result.items:
            obj = self._decode(kv)
            if obj is not None:
                index.put(obj)
        self._index = index
        self._history.reset(floor=result.revision)
        self._revision = max(self._revision, result.revision)
        self._ready = True
        self._wake_waiters()

    async def _follow(self) -> None:
        while True:
            try:
                await self._stream_changes()
                logger.warning("backend watch on %r ended; relisting", self._prefix)
            except asyncio.CancelledError:
                raise
            except Exception:
                if _being_cancelled():
                    # A stream's cleanup turned our cancellation into another error;
                    # carrying on would make stop() wait forever.
                    raise asyncio.CancelledError from None
                logger.exception("backend watch on %r failed; relisting", self._prefix)
            await self._relist()

    async def _stream_changes(self) -> None:
        stream = self._backend.watch(self._prefix, after_revision=self._revision)
        try:
            async for batch in stream:
                self._apply_batch(batch)
        finally:
            aclose: Callable[[], Any] | None = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _relist(self) -> None:
        """Reload everything; watchers are closed because their history is now broken."""
        self._ready = False
        self._close_all_watchers()
        delay = _RELIST_BACKOFF_INITIAL
        while True:
            try:
                await self._load()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("relisting %r failed; retrying in %.1fs", self._prefix, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RELIST_BACKOFF_MAX)

    def _apply_batch(self, batch: Sequence[WatchEvent]) -> None:
        for event in batch:
            if event.revision <= self._revision:
                continue
            change = self._apply(event)
            self._revision = event.revision
            if change is not None:
                self._history.append(change)
                self._dispatch(change)
        self._wake_waiters()

    def _apply(self, event: WatchEvent) -> _Change | None:
        obj = self._decode(event.kv)
        if obj is None:
            # An undecodable value cannot be served; forget whatever we had for the key.
            self._index.remove(event.kv.key)
            return None
        if event.type is EventType.DELETE:
            last = self._index.remove(obj.key)
            cost = len(obj.raw)
            if last is not None and last.revision > self._history.floor:
                # The change that created ``last`` is still in the history, holding it.
                cost += len(last.raw)
            return _Change(DELETED, obj, None, cost)
        old = self._index.put(obj)
        if old is None:
            return _Change(ADDED, obj, None)
        return _Change(MODIFIED, obj, old, len(old.raw))

    def _decode(self, kv: KeyValue) -> CachedObject | None:
        try:
            return self._decoder(kv)
        except Exception:
            logger.exception(
                "cannot decode %s at revision %d; skipping it", kv.key, kv.mod_revision
            )
            return None

    def _dispatch(self, change: _Change) -> None:
        key = change.obj.key
        shared: dict[str, CacheEvent] = {}
        dropped: list[CacheWatcher] = []
        for bucket in _key_buckets(key):
            watchers = self._watchers.get(bucket)
            if not watchers:
                continue
            for watcher in watchers:
                if change.revision <= watcher.after_revision or not key.startswith(watcher.prefix):
                    continue
                try:
                    event_type = _event_type(change, watcher.predicate)
                except Exception:
                    logger.exception("watch predicate failed on %s; closing the watch", key)
                    dropped.append(watcher)
                    continue
                if event_type is None:
                    continue
                event = shared.get(event_type)
                if event is None:
                    event = shared[event_type] = CacheEvent(event_type, change.obj, {})
                if not watcher._offer(event):
                    logger.warning("watcher on %r fell behind; closing it", watcher.prefix)
                    dropped.append(watcher)
        for watcher in dropped:
            watcher.close()

    def _wake_waiters(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._revision:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)
