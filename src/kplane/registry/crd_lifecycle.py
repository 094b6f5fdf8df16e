"""What a CustomResourceDefinition's deletion imposes on the objects of its kind.

Upstream's apiextensions server refuses creates of a kind whose CRD is terminating
(``deletionTimestamp`` set, or condition ``Terminating=True``) with 403 Forbidden, "create
not allowed while custom resource definition is terminating", and when the CRD goes it
tears down the kind's storage, which ends its watches.

:class:`CreateGate` is that refusal, read from the watch cache at the moment of the create.
It also counts the creates it let through until they are written, so the CRD's cleanup can
wait for every create admitted before the CRD was seen terminating: once those have
landed, listing the kind finds every object the cleanup has to delete.

:class:`KindWatches` remembers the watches of each custom resource type and ends them (after
a short grace, as upstream waits a second before tearing storage down, so events already
queued still go out) when the type stops being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from kplane.apimachinery import errors
from kplane.registry import builtin
from kplane.registry.keys import object_key
from kplane.registry.resources import ResourceType
from kplane.storage.cacher import CachedObject, Cacher, CacheWatcher

TERMINATING_MESSAGE = "create not allowed while custom resource definition is terminating"
WATCH_GRACE_SECONDS = 1.0
# Built-in kinds have no CRD to wait for; their creates are not counted.
_NOTHING_TO_COUNT: contextlib.nullcontext[None] = contextlib.nullcontext()


def crd_name(rt: ResourceType) -> str:
    """The name of the CRD that defines a custom resource type (``<plural>.<group>``)."""
    return f"{rt.resource}.{rt.group}"


def crd_key(cluster: str, name: str) -> str:
    return object_key(builtin.CUSTOM_RESOURCE_DEFINITIONS, cluster, "", name)


def defined_by_crd(rt: ResourceType) -> bool:
    # Built-in types belong to no cluster, and bound types (APIBindings) are shared by all.
    return bool(rt.cluster) and rt.storage_resource is None


def is_terminating(crd: Mapping[str, Any]) -> bool:
    if (crd.get("metadata") or {}).get("deletionTimestamp"):
        return True
    for condition in (crd.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Terminating":
            return condition.get("status") == "True"
    return False


class CreateGate:
    """Refuses creates of a kind whose CRD is terminating; counts creates in flight."""

    def __init__(self) -> None:
        # CRD key -> (revision, terminating): a CRD is parsed once per revision, not on
        # every create of its kind.
        self._states: dict[str, tuple[int, bool]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._idle: dict[tuple[str, str], asyncio.Event] = {}

    def check(self, cacher: Cacher, rt: ResourceType, name: str) -> None:
        """Raise the refusal when ``rt``'s CRD is terminating (or already gone)."""
        if not defined_by_crd(rt):
            return
        cached = cacher.get(crd_key(rt.cluster, crd_name(rt)))
        if cached is None:
            # The type index has not caught up with the CRD's deletion yet.
            raise errors.plain_not_found()
        if self._terminating(cached):
            raise errors.forbidden(
                f'{rt.group_resource} "{name}" is forbidden: {TERMINATING_MESSAGE}',
                name=name, group=rt.group, kind=rt.resource)

    def creating(self, cacher: Cacher, rt: ResourceType, name: str,
                 ) -> contextlib.AbstractContextManager[None]:
        """Check, then count the create as in flight until the block ends. The check and
        the count happen together, with no await between them."""
        if not defined_by_crd(rt):
            return _NOTHING_TO_COUNT
        return self._counting(cacher, rt, name)

    @contextlib.contextmanager
    def _counting(self, cacher: Cacher, rt: ResourceType, name: str) -> Iterator[None]:
        self.check(cacher, rt, name)
        key = (rt.cluster, crd_name(rt))
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            yield
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]
                idle = self._idle.pop(key, None)
                if idle is not None:
                    idle.set()

    async def landed(self, cluster: str, name: str) -> None:
        """Return once no create of CRD ``name``'s kind is in flight in this process."""
        key = (cluster, name)
        while key in self._in_flight:
            idle = self._idle.get(key)
            if idle is None:
                idle = self._idle[key] = asyncio.Event()
            await idle.wait()

    def in_flight(self, cluster: str, name: str) -> int:
        return self._in_flight.get((cluster, name), 0)

    def forget(self, key: str) -> None:
        """A CRD is gone: drop what was remembered of it."""
        self._states.pop(key, None)

    def _terminating(self, cached: CachedObject) -> bool:
        known = self._states.get(cached.key)
        if known is not None and known[0] == cached.revision:
            return known[1]
        terminating = is_terminating(orjson.loads(cached.raw))
        self._states[cached.key] = (cached.revision, terminating)
        return terminating


class KindWatches:
    """The open watches of each custom resource type, to end when the type goes."""

    def __init__(self, *, grace_seconds: float = WATCH_GRACE_SECONDS) -> None:
        self._grace = grace_seconds
        # Weak: a watch that ended on its own is forgotten with its watcher.
        self._by_type: dict[ResourceType, weakref.WeakSet[CacheWatcher]] = {}

    def track(self, rt: ResourceType, watcher: CacheWatcher) -> None:
        self._by_type.setdefault(rt, weakref.WeakSet()).add(watcher)

    def count(self, rt: ResourceType) -> int:
        return sum(not w.closed for w in self._by_type.get(rt, ()))

    def end(self, types: Iterable[ResourceType]) -> None:
        """End every watch of ``types``, after the grace period."""
        ending = [w for rt in types for w in self._by_type.pop(rt, ())]
        if not ending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _close(ending)
            return
        loop.call_later(self._grace, _close, ending)


def _close(watchers: list[CacheWatcher]) -> None:
    for watcher in watchers:
        watcher.close()
