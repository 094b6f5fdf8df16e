"""Ending the virtual workspace's open watches when what they watch stops being exported.

Upstream tears a type's storage down when the type stops being served, which ends its
watches; clients then list again and get 404 or 403. A watch through an APIExport's virtual
workspace watches a type the export serves to its consumers, so it must end when the export
no longer lists the resource (or claims it for watching), when the export is deleted, and
(for a watch of one consumer) when that consumer's binding no longer lets the provider in.

:class:`ExportWatches` remembers each open virtual-workspace watch by export and, for a
watch of one consumer, by consumer. Weakly: a watch that ended on its own is forgotten with
its request. It follows APIExports and APIBindings through one watch on the cache; a grace
period after a change to a tracked export or consumer (as for a CRD, events already queued
still go out, and the type indexes catch up with the change) it asks the virtual workspace
whether each affected watch is still served, and ends those that are not. A watch ends as if
its client had gone: the watch stream closes its cache watcher and finishes the response.
Nothing here runs per watch event.

A watch across all consumers is not ended when one consumer leaves: its cluster filter (for
claimed resources) is read on every event, and a binding's deletion deletes that consumer's
bound objects before the binding goes, after which the consumer cannot write them.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable

from kplane.registry.bound_types import APIS_PREFIX, BINDINGS, EXPORTS, ExportRef
from kplane.registry.cache_index import CacheFollower
from kplane.registry.crd_lifecycle import WATCH_GRACE_SECONDS
from kplane.registry.keys import parse_key
from kplane.registry.resources import ResourceType
from kplane.server.types import Message, Receive
from kplane.storage.cacher import CachedObject, Cacher

Served = Callable[[ExportRef, ResourceType, "str | None"], bool]
"""``served(export, rt, consumer)``: whether the export still serves ``rt`` and, unless
``consumer`` is None, still reaches that consumer's objects of it."""

_DISCONNECT: Message = {"type": "http.disconnect"}


class EndableWatch:
    """One open virtual-workspace watch: what it watches, and a receive channel that tells
    the watch stream its client went away once :meth:`end` is called."""

    __slots__ = ("__weakref__", "_ended", "_receive", "consumer", "export", "rt")

    def __init__(self, export: ExportRef, rt: ResourceType, consumer: str | None,
                 receive: Receive) -> None:
        self.export = export
        self.rt = rt
        self.consumer = consumer
        self._receive = receive
        self._ended = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def end(self) -> None:
        self._ended.set()

    async def receive(self) -> Message:
        if self._ended.is_set():
            return _DISCONNECT
        inner = asyncio.ensure_future(self._receive())
        ending = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait((inner, ending), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            if not inner.done():
                inner.cancel()
        if inner.done() and not inner.cancelled():
            return inner.result()
        return _DISCONNECT


class ExportWatches:
    """The open watches of every APIExport's virtual workspace, to end when they lose what
    they watch."""

    def __init__(self, *, served: Served,
                 grace_seconds: float = WATCH_GRACE_SECONDS) -> None:
        self._served = served
        self._grace = grace_seconds
        self._by_export: dict[ExportRef, weakref.WeakSet[EndableWatch]] = {}
        self._by_consumer: dict[str, weakref.WeakSet[EndableWatch]] = {}
        self._follower = CacheFollower(name="export-watches", watch_prefix=APIS_PREFIX,
                                       load_prefixes=(), apply=self.apply)
        self._following = False

    async def track(self, cacher: Cacher, export: ExportRef, rt: ResourceType,
                    consumer: str | None, receive: Receive) -> EndableWatch:
        """Remember a watch about to start (``consumer`` None: across all consumers); the
        request must read its client through the returned watch's ``receive``."""
        if not self._following:
            # Started by the first watch: only watches opened since need their changes.
            self._following = True
            await self._follower.start(cacher)
        watch = EndableWatch(export, rt, consumer, receive)
        self._by_export.setdefault(export, weakref.WeakSet()).add(watch)
        if consumer is not None:
            self._by_consumer.setdefault(consumer, weakref.WeakSet()).add(watch)
        return watch

    def count(self, export: ExportRef) -> int:
        return sum(not w.ended for w in self._by_export.get(export, ()))

    def apply(self, cached: CachedObject, *, deleted: bool) -> None:
        """One APIExport or APIBinding changed: check its watches after the grace."""
        parsed = parse_key(cached.key)
        if parsed is None:
            return
        if parsed.resource == EXPORTS:
            ref = ExportRef(parsed.cluster, parsed.name)
            if ref in self._by_export:
                self._later(functools.partial(self._check_export, ref))
        elif parsed.resource == BINDINGS and parsed.cluster in self._by_consumer:
            self._later(functools.partial(self._check_consumer, parsed.cluster))

    def _later(self, check: Callable[[], None]) -> None:
        # One timer per change, not one per key: a check must never run sooner than the
        # grace after the change it is for.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            check()
            return
        loop.call_later(self._grace, check)

    def _check_export(self, key: ExportRef) -> None:
        watches = self._by_export.get(key)
        if not watches:
            self._by_export.pop(key, None)
            return
        self._end([w for w in list(watches) if not self._served(key, w.rt, None)])

    def _check_consumer(self, key: str) -> None:
        watches = self._by_consumer.get(key)
        if not watches:
            self._by_consumer.pop(key, None)
            return
        self._end([w for w in list(watches) if not self._served(w.export, w.rt, key)])

    def _end(self, ending: list[EndableWatch]) -> None:
        for watch in ending:
            watch.end()
            by_export = self._by_export.get(watch.export)
            if by_export is not None:
                by_export.discard(watch)
            if watch.consumer is not None:
                by_consumer = self._by_consumer.get(watch.consumer)
                if by_consumer is not None:
                    by_consumer.discard(watch)

    async def stop(self) -> None:
        await self._follower.stop()
        self._following = False
