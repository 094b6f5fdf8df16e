"""The load generator: the code that runs in the benchmark's client processes.

Everything here executes in a worker process of its own (see :mod:`bench.workers`), never
in the server's process and never in the orchestrating one, so the client's CPU use is
visible as such and the orchestrator's bookkeeping does not disturb the measurement.

Three kinds of job, each a plain picklable spec and a top-level function taking it:

* :func:`run_closed_loop` - N keep-alive connections, each sending its next request as
  soon as the previous response arrived (a closed loop, like a controller or kubectl).
  All worker processes share one wall-clock schedule: connect, warm up until
  ``start_at + warmup_s``, then count the responses that *complete* inside the measuring
  window. Warm-up samples are discarded.
* :func:`run_watchers` - many watch connections that record, for each event, how long
  after the writer sent it it arrived (the writer puts its send time into the object).
* :func:`run_writer` - creates objects at a fixed rate, stamping each with its send time.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson
import uvloop

from bench.http1 import Endpoint, HttpConnection, Response, build_request, client_ssl_context

# Connection attempts in flight at once while opening many watches; a burst of a
# thousand simultaneous TLS handshakes only measures the listen backlog.
_CONNECT_PARALLELISM = 64
# Keep this many failed responses per job, to show in the report why something failed.
_ERROR_SAMPLES = 3


def raise_open_file_limit() -> None:
    """A thousand watches need a thousand sockets: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- what each connection sends ---------------------------------------------------------


RequestKind = Literal["fixed", "create", "update"]


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """What the connections of a closed-loop job send.

    * ``fixed``: the same request every time (``method`` on ``path``).
    * ``create``: POST ``body_template`` to ``path`` with ``{name}`` replaced by a name
      unique across processes, connections and requests.
    * ``update``: each connection owns the object ``{path}/{name_prefix}{index}`` and PUTs
      ``body_template`` to it with the resourceVersion the previous response returned
      (so there are never conflicts); it first GETs the object to learn that version.
    """

    kind: RequestKind
    path: str
    method: str = "GET"
    body_template: str = ""
    name_prefix: str = ""


class RequestSource(Protocol):
    def next_request(self) -> bytes: ...

    def on_response(self, response: Response) -> None: ...


class FixedRequests:
    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def next_request(self) -> bytes:
        return self._raw

    def on_response(self, response: Response) -> None:
        pass


class CreateRequests:
    def __init__(self, plan: RequestPlan, *, authority: str, name_prefix: str) -> None:
        self._plan = plan
        self._authority = authority
        self._prefix = name_prefix
        self._sequence = 0

    def next_request(self) -> bytes:
        self._sequence += 1
        name = f"{self._prefix}{self._sequence}"
        body = self._plan.body_template.replace("{name}", name).encode()
        return build_request("POST", self._plan.path, authority=self._authority, body=body)

    def on_response(self, response: Response) -> None:
        pass


class UpdateRequests:
    """PUTs with the current resourceVersion, learned from each response."""

    def __init__(self, plan: RequestPlan, *, authority: str, name: str) -> None:
        self._plan = plan
        self._authority = authority
        self._name = name
        self._object_path = f"{plan.path}/{name}"
        self._resource_version: str | None = None
        self._sequence = 0

    def next_request(self) -> bytes:
        if self._resource_version is None:
            return build_request("GET", self._object_path, authority=self._authority)
        self._sequence += 1
        body = (
            self._plan.body_template.replace("{name}", self._name)
            .replace("{resourceVersion}", self._resource_version)
            .replace("{sequence}", str(self._sequence))
        )
        return build_request("PUT", self._object_path, authority=self._authority,
                             body=body.encode())

    def on_response(self, response: Response) -> None:
        if response.status != 200:
            self._resource_version = None
            return
        metadata = orjson.loads(response.body).get("metadata", {})
        self._resource_version = metadata.get("resourceVersion")


def request_source(
    plan: RequestPlan, *, endpoint: Endpoint, connection_index: int, run_id: str
) -> RequestSource:
    """The request source of one connection; ``connection_index`` is unique across processes."""
    if plan.kind == "create":
        return CreateRequests(plan, authority=endpoint.authority,
                              name_prefix=f"{run_id}-{connection_index}-")
    if plan.kind == "update":
        return UpdateRequests(plan, authority=endpoint.authority,
                              name=f"{plan.name_prefix}{connection_index}")
    return FixedRequests(build_request(plan.method, plan.path, authority=endpoint.authority))


# -- closed loop -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClosedLoopSpec:
    endpoint: Endpoint
    plan: RequestPlan
    connections: int
    first_connection_index: int
    start_at: float
    warmup_s: float
    duration_s: float
    run_id: str = "load"


@dataclass(slots=True)
class ClosedLoopResult:
    """What one worker process measured inside the window (latencies in seconds)."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def record_error(self, description: str) -> None:
        self.errors += 1
        if len(self.error_samples) < _ERROR_SAMPLES:
            self.error_samples.append(description)


@dataclass(frozen=True, slots=True)
class _Window:
    """The measuring window on this process's ``perf_counter`` clock."""

    measure_start: float
    measure_end: float

    @classmethod
    def from_spec(cls, spec: ClosedLoopSpec) -> _Window:
        # Wall-clock instants shared by all processes, mapped to the monotonic clock once.
        offset = time.time() - time.perf_counter()
        measure_start = spec.start_at + spec.warmup_s - offset
        return cls(measure_start=measure_start, measure_end=measure_start + spec.duration_s)


def run_closed_loop(spec: ClosedLoopSpec) -> ClosedLoopResult:
    """Entry point of a closed-loop worker process."""
    return uvloop.run(_closed_loop(spec))


async def _closed_loop(spec: ClosedLoopSpec) -> ClosedLoopResult:
    context = client_ssl_context(spec.endpoint.tls)
    connections = [await HttpConnection.open(spec.endpoint, context)
                   for _ in range(spec.connections)]
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    window = _Window.from_spec(spec)
    result = ClosedLoopResult()
    loops = [
        _drive_connection(
            connection,
            request_source(spec.plan, endpoint=spec.endpoint, run_id=spec.run_id,
                           connection_index=spec.first_connection_index + index),
            window=window,
            result=result,
        )
        for index, connection in enumerate(connections)
    ]
    try:
        await asyncio.gather(*loops)
    finally:
        for connection in connections:
            connection.close()
    return result


async def _drive_connection(
    connection: HttpConnection,
    source: RequestSource,
    *,
    window: _Window,
    result: ClosedLoopResult,
) -> None:
    clock = time.perf_counter
    started = clock()
    while started < window.measure_end:
        raw = source.next_request()
        try:
            response = await connection.request(raw)
        except ConnectionError as exc:
            result.record_error(f"connection: {exc}")
            return
        finished = clock()
        source.on_response(response)
        if window.measure_start <= finished < window.measure_end:
            if 200 <= response.status < 300:
                result.latencies.append(finished - started)
            else:
                result.record_error(f"HTTP {response.status}: {response.body[:300]!r}")
        started = finished


# -- watch fan-out -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchSpec:
    endpoint: Endpoint
    path: str
    connections: int
    expected_events: int
    deadline_s: float


@dataclass(slots=True)
class WatchResult:
    """Per-event delivery latencies (seconds) and what could not be established or received."""

    latencies: list[float] = field(default_factory=list)
    connected: int = 0
    failed_connections: int = 0
    missing_events: int = 0
    first_receipt: float = 0.0
    last_receipt: float = 0.0
    error_samples: list[str] = field(default_factory=list)


class _EventLines:
    """Splits one watch stream into JSON lines and timestamps the stamped events."""

    def __init__(self, result: WatchResult, *, expected: int, done: Callable[[], None]) -> None:
        self._result = result
        self._pending = b""
        self._remaining = expected
        self._done = done

    @property
    def remaining(self) -> int:
        return self._remaining

    def feed(self, chunk: bytes) -> None:
        received = time.time()
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        for line in lines:
            if line:
                self._record(line, received)

    def _record(self, line: bytes, received: float) -> None:
        sent = sent_time(line)
        if sent is None or self._remaining <= 0:
            return
        result = self._result
        result.latencies.append(received - sent)
        if not result.first_receipt:
            result.first_receipt = received
        result.last_receipt = max(result.last_receipt, received)
        self._remaining -= 1
        if self._remaining == 0:
            self._done()


SENT_MARKER = b'"sent":"'


def sent_time(line: bytes) -> float | None:
    """The writer's send time in a watch event line, if the line carries one.

    Found by a byte search instead of decoding the event: a thousand watchers receive
    every event, and the client's time per event is time the server does not get.
    """
    start = line.find(SENT_MARKER)
    if start < 0:
        return None
    start += len(SENT_MARKER)
    return float(line[start:line.index(b'"', start)])


def run_watchers(spec: WatchSpec, report_ready: Callable[[int], None]) -> WatchResult:
    """Entry point of a watcher process; calls ``report_ready(connected)`` once all are open."""
    raise_open_file_limit()
    return uvloop.run(_watchers(spec, report_ready))


async def _watchers(spec: WatchSpec, report_ready: Callable[[int], None]) -> WatchResult:
    result = WatchResult()
    everything_received = asyncio.Event()
    unfinished = spec.connections

    def one_stream_done() -> None:
        nonlocal unfinished
        unfinished -= 1
        if unfinished == 0:
            everything_received.set()

    context = client_ssl_context(spec.endpoint.tls)
    gate = asyncio.Semaphore(_CONNECT_PARALLELISM)
    raw = build_request("GET", spec.path, authority=spec.endpoint.authority)

    async def open_watch() -> tuple[HttpConnection, _EventLines] | None:
        lines = _EventLines(result, expected=spec.expected_events, done=one_stream_done)
        async with gate:
            try:
                connection = await HttpConnection.open(spec.endpoint, context)
                status = await connection.stream(raw, lines.feed)
            except (OSError, ConnectionError) as exc:
                _sample(result, f"connect: {exc}")
                return None
        if status != 200:
            _sample(result, f"HTTP {status}")
            connection.close()
            return None
        return connection, lines

    opened = [w for w in await asyncio.gather(*(open_watch() for _ in range(spec.connections)))
              if w is not None]
    result.connected = len(opened)
    result.failed_connections = spec.connections - len(opened)
    unfinished -= result.failed_connections
    if unfinished <= 0:
        everything_received.set()
    report_ready(result.connected)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everything_received.wait(), spec.deadline_s)
    result.missing_events = sum(lines.remaining for _, lines in opened)
    for connection, _ in opened:
        connection.close()
    return result


def _sample(result: WatchResult, description: str) -> None:
    if len(result.error_samples) < _ERROR_SAMPLES:
        result.error_samples.append(description)


# -- the writer of a watch scenario ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """Create ``events`` objects at ``rate`` per second; ``{name}``/``{sent}`` in the body."""

    endpoint: Endpoint
    path: str
    body_template: str
    events: int
    rate: float
    name_prefix: str


@dataclass(slots=True)
class WriterResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_sent: float = 0.0
    last_sent: float = 0.0
    error_samples: list[str] = field(default_factory=list)


def run_writer(spec: WriterSpec) -> WriterResult:
    """Entry point of the writer process."""
    return uvloop.run(_writer(spec))


async def _writer(spec: WriterSpec) -> WriterResult:
    connection = await HttpConnection.open(spec.endpoint, client_ssl_context(spec.endpoint.tls))
    result = WriterResult()
    start = time.perf_counter()
    try:
        for index in range(spec.events):
            # A fixed schedule, not a fixed pause: a slow write does not lower the rate.
            await asyncio.sleep(max(0.0, start + index / spec.rate - time.perf_counter()))
            sent = time.time()
            body = (spec.body_template.replace("{name}", f"{spec.name_prefix}{index}")
                    .replace("{sent}", repr(sent)))
            raw = build_request("POST", spec.path, authority=spec.endpoint.authority,
                                body=body.encode())
            response = await connection.request(raw)
            result.latencies.append(time.time() - sent)
            if response.status != 201:
                result.errors += 1
                if len(result.error_samples) < _ERROR_SAMPLES:
                    result.error_samples.append(f"HTTP {response.status}: {response.body[:300]!r}")
            result.first_sent = result.first_sent or sent
            result.last_sent = sent
    finally:
        connection.close()
    return result
