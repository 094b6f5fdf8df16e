"""An informer: a local copy of one resource's objects, kept current by list + watch.

The loop is the one client-go's reflector runs. List every page, remember the list's
resourceVersion, watch from it; each event updates the copy and is handed to the handlers.
When a watch ends (the server's timeout, a restart, a dropped connection) the next one
resumes from the last resourceVersion seen (events and bookmarks both advance it), so
nothing is missed and nothing is replayed. When the server no longer has that much history
(410 Gone, as a status or as an ERROR event) the informer lists again and reconciles its copy
with the fresh list: handlers then get a synthetic DELETED for each object that vanished
meanwhile, ADDED for each new one and MODIFIED for each changed one. Failed connections are
retried with exponential backoff (0.2 s doubling up to 10 s).

Objects are keyed by ``ObjectKey`` (logical cluster, namespace, name), so one informer over
``cluster="*"`` (or an APIExport virtual workspace's ``*``) holds every tenant's objects.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from kplane.sdk.client import Client
from kplane.sdk.errors import ApiError, Gone
from kplane.sdk.resource import ObjectKey, Resource

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]
"""Called with ADDED, MODIFIED or DELETED and the object (the last known state if deleted)."""

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"
BACKOFF_INITIAL_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0
DEFAULT_WATCH_TIMEOUT_SECONDS = 300.0


class Informer:
    """Objects of one resource, in one cluster or across all of them (``cluster="*"``)."""

    def __init__(self, client: Client, res: Resource, cluster: str | None = "*",
                 namespace: str = "", label_selector: str = "", field_selector: str = "",
                 *, watch_timeout: float = DEFAULT_WATCH_TIMEOUT_SECONDS,
                 backoff_initial: float = BACKOFF_INITIAL_SECONDS,
                 backoff_max: float = BACKOFF_MAX_SECONDS) -> None:
        self.client = client
        self.resource = res
        self.cluster = cluster
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        # Like client-go, each watch asks for a timeout between one and two of these, so
        # that many informers do not all reconnect at once.
        self._watch_timeout = watch_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._backoff = backoff_initial
        self._handlers: list[Handler] = []
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resource_version = ""
        self.relists = 0
        """How many times the informer listed after its first list (410 Gone, or a list
        that failed before completing)."""
        self.watches = 0
        """How many watch requests the informer opened."""

    def __repr__(self) -> str:
        return f"Informer({self.resource}, cluster={self.cluster!r})"

    # --- reading the copy ---------------------------------------------------------------

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return self._objects.get(key)

    def list(self) -> list[dict[str, Any]]:
        return list(self._objects.values())

    def keys(self) -> builtins.list[ObjectKey]:
        return list(self._objects)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # --- lifecycle ----------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Call ``handler`` for every change from now on (synchronously, in the informer's
        task: keep it short, e.g. enqueue a key)."""
        self._handlers.append(handler)

    async def start(self) -> None:
        """Start listing and watching in the background (a no-op while already running)."""
        if self.running:
            return
        self._task = asyncio.create_task(self._run(), name=f"informer {self.resource}")

    async def wait_synced(self, timeout: float | None = 30.0) -> None:
        """Return once the first list is in the copy; TimeoutError after ``timeout``."""
        await asyncio.wait_for(self._synced.wait(), timeout)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        must_list = not self._synced.is_set()
        while True:
            listed_now = False
            try:
                if must_list:
                    await self._list_and_reconcile()
                    must_list, listed_now = False, True
                await self._watch_once()
            except Gone as error:
                log.info("%r: %s; listing again", self, error.message)
                if must_list or listed_now:
                    # Gone straight after (or during) a list: the server is not settled, and
                    # relisting at once would only spin.
                    await asyncio.sleep(self._next_backoff())
                must_list = True
            except (ApiError, httpx.HTTPError, OSError, orjson.JSONDecodeError) as error:
                delay = self._next_backoff()
                log.warning("%r: %s; retrying in %.1fs", self, _describe(error), delay)
                await asyncio.sleep(delay)
            except Exception:
                # Not a known transient failure, but an informer that stops silently would
                # starve its controller: say so loudly and keep going.
                delay = self._next_backoff()
                log.exception("%r: unexpected failure; retrying in %.1fs", self, delay)
                await asyncio.sleep(delay)

    def _next_backoff(self) -> float:
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max)
        return delay

    async def _list_and_reconcile(self) -> None:
        listed = await self.client.list(self.resource, namespace=self.namespace,
                                        cluster=self.cluster,
                                        label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        if self._synced.is_set():
            self.relists += 1
        fresh = {ObjectKey.of(obj): obj for obj in listed.get("items") or []}
        stale = self._objects
        self._objects = fresh
        for key, old in stale.items():
            if key not in fresh:
                self._emit(DELETED, old)
        for key, obj in fresh.items():
            known = stale.get(key)
            if known is None:
                self._emit(ADDED, obj)
            elif _resource_version(known) != _resource_version(obj):
                self._emit(MODIFIED, obj)
        self.resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        self._backoff = self._backoff_initial
        self._synced.set()

    async def _watch_once(self) -> None:
        timeout = self._watch_timeout * (1 + random.random())
        self.watches += 1
        events = self.client.watch(self.resource, namespace=self.namespace,
                                   cluster=self.cluster,
                                   resource_version=self.resource_version,
                                   timeout_seconds=timeout,
                                   label_selector=self.label_selector,
                                   field_selector=self.field_selector)
        async with contextlib.aclosing(events):
            async for event_type, obj in events:
                self._backoff = self._backoff_initial
                self._apply(event_type, obj)
        # A stream that ended without an error was healthy: the next one starts promptly.
        self._backoff = self._backoff_initial

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        version = _resource_version(obj)
        if event_type == BOOKMARK:
            if version:
                self.resource_version = version
            return
        key = ObjectKey.of(obj)
        if event_type in (ADDED, MODIFIED):
            self._objects[key] = obj
        elif event_type == DELETED:
            self._objects.pop(key, None)
        else:
            log.warning("%r: ignoring a watch event of type %r", self, event_type)
            return
        if version:
            self.resource_version = version
        self._emit(event_type, obj)

    def _emit(self, event_type: str, obj: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                handler(event_type, obj)
            except Exception:
                log.exception("%r: handler %r failed on %s %s", self, handler, event_type,
                              ObjectKey.of(obj))


def _resource_version(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
