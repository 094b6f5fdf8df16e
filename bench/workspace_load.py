"""The workspace load generator: create Workspaces and time each one until it is Ready.

Runs in a load-generator process (see :mod:`bench.workers`), like :mod:`bench.loadgen`.
A Workspace is only useful once the server's workspace controller has made it ``Ready``
(created its LogicalCluster and ``default`` namespace), so the response to the POST is
not the end of the story: one watch on the parent's Workspaces, opened before the first
POST, sees each one reach that phase. Both ends are timed on this process's monotonic
clock, so no clock is shared between processes.

The watch is re-opened from the last resourceVersion it saw if the server ends it (a
watch may legitimately be closed at any time; clients resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import uvloop

from bench.http1 import Endpoint, HttpConnection, build_request, client_ssl_context

WORKSPACE_API = "/apis/tenancy.kcp.io/v1alpha1/workspaces"
READY_MARKER = b'"phase":"Ready"'
_VERSION_MARKER = b'"resourceVersion":"'
_ERROR_SAMPLES = 3


def workspaces_path(parent: str) -> str:
    """The Workspaces collection of the logical cluster ``parent`` (e.g. ``root``)."""
    return f"/clusters/{parent}{WORKSPACE_API}"


def workspace_body(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                         "metadata": {"name": name}})


@dataclass(frozen=True, slots=True)
class WorkspaceCreationSpec:
    """Create ``{name_prefix}{first}`` .. ``{name_prefix}{first + count - 1}`` under ``parent``.

    ``watch_from`` is a resourceVersion of the parent's Workspaces taken before the job
    starts, so the watch sees only news. Once every POST was answered, the job waits for
    the rest to become Ready as long as one does at least every ``stall_timeout_s``: the
    controller may legitimately be tens of thousands of workspaces behind the POSTs.
    """

    endpoint: Endpoint
    parent: str
    name_prefix: str
    first: int
    count: int
    connections: int
    watch_from: str
    stall_timeout_s: float


@dataclass(slots=True)
class WorkspaceCreationResult:
    """Latencies in seconds; ``last_ready_s`` counts from just before the first POST."""

    create_latencies: list[float] = field(default_factory=list)
    ready_latencies: list[float] = field(default_factory=list)
    last_ready_s: float = 0.0
    create_errors: int = 0
    never_ready: int = 0
    watch_reconnects: int = 0
    error_samples: list[str] = field(default_factory=list)

    def sample(self, description: str) -> None:
        if len(self.error_samples) < _ERROR_SAMPLES:
            self.error_samples.append(description)


def ready_name(line: bytes) -> str | None:
    """The Workspace name in a watch event line if that event shows it Ready.

    Most events (ADDED in Scheduling) are recognized as uninteresting by a byte search,
    without decoding them.
    """
    if READY_MARKER not in line:
        return None
    event = orjson.loads(line)
    obj = event.get("object") or {}
    if event.get("type") == "DELETED" or (obj.get("status") or {}).get("phase") != "Ready":
        return None
    name: str = obj["metadata"]["name"]
    return name


def last_resource_version(line: bytes) -> str | None:
    """The first resourceVersion in an event line: the object's (metadata comes first)."""
    start = line.find(_VERSION_MARKER)
    if start < 0:
        return None
    start += len(_VERSION_MARKER)
    return line[start:line.index(b'"', start)].decode()


class _ReadyTracker:
    """Pairs each POST's send time with the watch event that shows the Workspace Ready."""

    def __init__(self, *, expected: int, result: WorkspaceCreationResult) -> None:
        self._sent: dict[str, float] = {}
        self._ready: set[str] = set()
        self._expected = expected
        self._started = time.perf_counter()
        self._result = result
        self._pending = b""
        self.resource_version = ""
        self.watch_open = asyncio.Event()
        self.all_ready = asyncio.Event()

    def start_clock(self) -> None:
        """Rate and latencies count from here: the first POST, not the watch's opening."""
        self._started = time.perf_counter()

    def sent(self, name: str) -> None:
        self._sent[name] = time.perf_counter()

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def missing(self) -> int:
        return self._expected - len(self._ready)

    def feed(self, chunk: bytes) -> None:
        received = time.perf_counter()
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            if line:
                self._on_event(line, received)

    def reset_stream(self) -> None:
        self._pending = b""

    def _on_event(self, line: bytes, received: float) -> None:
        self.resource_version = last_resource_version(line) or self.resource_version
        name = ready_name(line)
        if name is None or name in self._ready or name not in self._sent:
            return
        self._ready.add(name)
        self._result.ready_latencies.append(received - self._sent[name])
        self._result.last_ready_s = received - self._started
        if len(self._ready) == self._expected:
            self.all_ready.set()


def run_workspace_creation(spec: WorkspaceCreationSpec) -> WorkspaceCreationResult:
    """Entry point of the load-generator process."""
    return uvloop.run(_create_workspaces(spec))


async def _create_workspaces(spec: WorkspaceCreationSpec) -> WorkspaceCreationResult:
    context = client_ssl_context(spec.endpoint.tls)
    connections = [await HttpConnection.open(spec.endpoint, context)
                   for _ in range(spec.connections)]
    result = WorkspaceCreationResult()
    tracker = _ReadyTracker(expected=spec.count, result=result)
    tracker.resource_version = spec.watch_from
    watching = asyncio.create_task(_keep_watching(spec, tracker, result))
    try:
        await _until_watching(tracker, watching)
        names = iter(f"{spec.name_prefix}{index}"
                     for index in range(spec.first, spec.first + spec.count))
        tracker.start_clock()
        await asyncio.gather(*(_post_all(spec, connection, names, tracker, result)
                               for connection in connections))
        await _until_ready_or_stalled(tracker, result, stall_timeout_s=spec.stall_timeout_s)
    finally:
        watching.cancel()
        for connection in connections:
            connection.close()
    result.never_ready = tracker.missing - result.create_errors
    return result


async def _until_ready_or_stalled(
    tracker: _ReadyTracker, result: WorkspaceCreationResult, *, stall_timeout_s: float
) -> None:
    while not tracker.all_ready.is_set():
        ready_before = tracker.ready
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.all_ready.wait(), stall_timeout_s)
        if tracker.ready == ready_before and not tracker.all_ready.is_set():
            result.sample(f"{tracker.missing} workspace(s) not Ready; none became Ready "
                          f"in the last {stall_timeout_s}s")
            return


async def _until_watching(tracker: _ReadyTracker, watching: asyncio.Task[None]) -> None:
    """Wait until the first watch stream answered, so that no Ready event can be missed."""
    opened = asyncio.create_task(tracker.watch_open.wait())
    await asyncio.wait({opened, watching}, return_when=asyncio.FIRST_COMPLETED)
    if not tracker.watch_open.is_set():
        opened.cancel()
        watching.result()  # re-raise what ended the watch
        raise ConnectionError("the Workspace watch ended before it opened")


async def _keep_watching(
    spec: WorkspaceCreationSpec, tracker: _ReadyTracker, result: WorkspaceCreationResult
) -> None:
    context = client_ssl_context(spec.endpoint.tls)
    while True:
        path = (f"{workspaces_path(spec.parent)}?watch=1"
                f"&resourceVersion={tracker.resource_version}")
        connection = await HttpConnection.open(spec.endpoint, context)
        tracker.reset_stream()
        try:
            status = await connection.stream(
                build_request("GET", path, authority=spec.endpoint.authority), tracker.feed)
            if status != 200:
                raise ConnectionError(f"watch {path}: HTTP {status}")
            tracker.watch_open.set()
            await connection.closed
        finally:
            connection.close()
        result.watch_reconnects += 1


async def _post_all(
    spec: WorkspaceCreationSpec,
    connection: HttpConnection,
    names: Iterator[str],
    tracker: _ReadyTracker,
    result: WorkspaceCreationResult,
) -> None:
    """One connection's closed loop: POST the next unclaimed name until none is left."""
    path = workspaces_path(spec.parent)
    authority = spec.endpoint.authority
    for name in names:
        raw = build_request("POST", path, authority=authority, body=workspace_body(name))
        tracker.sent(name)
        started = time.perf_counter()
        response = await connection.request(raw)
        if response.status == 201:
            result.create_latencies.append(time.perf_counter() - started)
        else:
            result.create_errors += 1
            result.sample(f"POST {name}: HTTP {response.status}: {response.body[:300]!r}")
