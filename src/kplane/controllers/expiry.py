"""Expiring workspaces: delete a Workspace when its ``kplane.io/expires-at`` time passes.

A training class is a workspace whose trainees' workspaces are its children; giving the
class workspace an expiry time makes the server remove the whole class by itself, through
the ordinary recursive workspace deletion. Only annotated Workspaces are tracked, in a heap
ordered by expiry, and the controller sleeps until the earliest one, so idle workspaces
cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from datetime import UTC, datetime

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.loop import follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.keys import parse_key, resource_prefix
from kplane.registry.options import DeleteOptions
from kplane.registry.store import Store, Target
from kplane.storage.cacher import CachedObject

log = logging.getLogger(__name__)

EXPIRES_ANNOTATION = "kplane.io/expires-at"
_MAX_SLEEP_SECONDS = 60.0


def parse_expiry(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 time (``2026-11-28T18:00:00Z``), or None."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class ExpiryController:
    def __init__(self, *, store: Store) -> None:
        self._store = store
        self._heap: list[tuple[float, str, str]] = []
        self._expiry: dict[tuple[str, str], float] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        follow = follow_prefix(self._store, resource_prefix(builtin.WORKSPACES), self._track)
        self._tasks = [asyncio.create_task(follow, name="expiry-watch"),
                       asyncio.create_task(self._expire(), name="expiry-timer")]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    def _track(self, cached: CachedObject, deleted: bool) -> None:
        parsed = parse_key(cached.key)
        if parsed is None:
            return
        item = (parsed.cluster, parsed.name)
        expires = None
        if not deleted and EXPIRES_ANNOTATION.encode() in cached.raw:
            meta = orjson.loads(cached.raw).get("metadata") or {}
            expires = parse_expiry(str((meta.get("annotations") or {}).get(
                EXPIRES_ANNOTATION, "")))
        if expires is None:
            self._expiry.pop(item, None)
            return
        if self._expiry.get(item) != expires:
            self._expiry[item] = expires
            heapq.heappush(self._heap, (expires, *item))
            self._changed.set()

    async def _expire(self) -> None:
        while True:
            now = datetime.now(UTC).timestamp()
            while self._heap and self._heap[0][0] <= now:
                expires, cluster, name = heapq.heappop(self._heap)
                if self._expiry.get((cluster, name)) != expires:
                    continue  # superseded by a later extension, or already gone
                await self._delete(cluster, name)
            wait = _MAX_SLEEP_SECONDS
            if self._heap:
                wait = min(wait, max(0.0, self._heap[0][0] - now))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)

    async def _delete(self, cluster: str, name: str) -> None:
        log.warning("workspace %s in %s expired; deleting it", name, cluster)
        try:
            await self._store.delete(Target(builtin.WORKSPACES, cluster, "", name),
                                     DeleteOptions())
        except StatusError as exc:
            if exc.code != 404:
                log.warning("deleting expired workspace %s failed: %s", name, exc)
                self._expiry.pop((cluster, name), None)
