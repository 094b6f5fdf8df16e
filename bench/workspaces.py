"""The orchestrator's side of the workspace scenarios: a server of their own, and their rows.

The workspace scenarios judge what a workspace costs the server process (memory, idle
CPU, start-up time), so each runs its own kplane on a fresh data directory instead of the
suite's shared one, which earlier scenarios have filled with thousands of ConfigMaps: the
figures then belong to workspaces alone, and the process id is known for ``/proc``.
Creating the workspaces is load generation and happens in a worker process
(:mod:`bench.workspace_load`); this module sets up, reads ``/proc`` and builds rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import fixtures
from bench.context import BenchContext, Measurement
from bench.http1 import Endpoint
from bench.loadgen import RequestPlan
from bench.procstat import CpuWindow, measure_cpu, rss_bytes, settle
from bench.report import Row, Target
from bench.servers import ServerProcess, SyncClient, start_kplane
from bench.stats import summarize
from bench.workspace_load import (
    WorkspaceCreationResult,
    WorkspaceCreationSpec,
    run_workspace_creation,
    workspaces_path,
)

PARENT = "root"
NAME_PREFIX = "ws-"
# The workspace whose ConfigMaps GET and LIST read, before and after the server grows.
PROBED_WORKSPACE = f"{NAME_PREFIX}1"
PROBED_NAMESPACE = "default"
CONFIGMAP_PREFIX = "cm-"
# Idle CPU may grow by this much (1 % of a core) with the number of workspaces and still
# count as "about the same": scheduler and timer noise over a 10 s window is of that order.
IDLE_CPU_TOLERANCE_MS_PER_S = 10.0
# "GET and LIST latency within 1.5x": in a closed loop with fixed concurrency the request
# rate is the inverse of the mean latency, so that is a rate ratio of at least 1/1.5.
LATENCY_GROWTH_LIMIT = 1.5
TARGET_CREATION_RATE = 500.0
TARGET_KIB_PER_WORKSPACE = 32.0
TARGET_STARTUP_S = 60.0


@dataclass
class WorkspaceServer:
    """A kplane started for one workspace scenario, and how long its start-up took."""

    process: ServerProcess
    data_dir: Path
    log_path: Path
    startup_s: float

    @property
    def endpoint(self) -> Endpoint:
        return self.process.endpoint

    @property
    def pid(self) -> int:
        return self.process.process.pid


def start_server(ctx: BenchContext, name: str, *, timeout: float = 60.0) -> WorkspaceServer:
    """Start (or, when its data directory exists, restart) the kplane called ``name``."""
    data_dir = ctx.workdir / name
    log_path = ctx.workdir / f"{name}.log"
    started = time.monotonic()
    process = start_kplane(data_dir=data_dir, log_path=log_path, timeout=timeout)
    return WorkspaceServer(process=process, data_dir=data_dir, log_path=log_path,
                           startup_s=time.monotonic() - started)


def restart(ctx: BenchContext, server: WorkspaceServer, name: str) -> WorkspaceServer:
    """Stop ``server`` and start it again on the same data; ``startup_s`` is the new start."""
    server.process.stop()
    return start_server(ctx, name, timeout=ctx.settings.startup_timeout_s)


# -- creating workspaces -------------------------------------------------------------------


def create_workspaces(
    ctx: BenchContext, server: WorkspaceServer, *, first: int, count: int
) -> WorkspaceCreationResult:
    """Create ``ws-<first>`` .. and wait until each is Ready, from a load process."""
    spec = WorkspaceCreationSpec(
        endpoint=server.endpoint,
        parent=PARENT,
        name_prefix=NAME_PREFIX,
        first=first,
        count=count,
        connections=ctx.settings.workspace_connections,
        watch_from=_workspaces_resource_version(server.endpoint),
        stall_timeout_s=ctx.settings.workspace_stall_timeout_s,
    )
    return ctx.pool.submit(run_workspace_creation, spec).result()


def _workspaces_resource_version(endpoint: Endpoint) -> str:
    # limit=1: the list's resourceVersion is all we need, not 100,000 Workspaces.
    with SyncClient(endpoint) as client:
        body = client.expect("GET", f"{workspaces_path(PARENT)}?limit=1", ok=(200,))
    version: str = orjson.loads(body)["metadata"]["resourceVersion"]
    return version


def create_baseline(ctx: BenchContext, server: WorkspaceServer) -> WorkspaceCreationResult:
    """The first few workspaces, and the ConfigMaps GET and LIST read in the first one."""
    result = create_workspaces(ctx, server, first=1, count=ctx.settings.workspace_baseline)
    raise_unless_all_ready(result, what="the baseline workspaces")
    path = probed_configmaps_path()
    with SyncClient(server.endpoint) as client:
        for index in range(ctx.settings.workspace_configmaps):
            body = fixtures.configmap(f"{CONFIGMAP_PREFIX}{index}", PROBED_NAMESPACE)
            client.expect("POST", path, body, ok=(201,))
    return result


def raise_unless_all_ready(result: WorkspaceCreationResult, *, what: str) -> None:
    if result.create_errors or result.never_ready:
        raise RuntimeError(f"{what}: {result.create_errors} failed creates, "
                           f"{result.never_ready} never Ready: {result.error_samples}")


def probed_configmaps_path() -> str:
    cluster = f"{PARENT}:{PROBED_WORKSPACE}"
    return f"/clusters/{cluster}{fixtures.configmaps_path(PROBED_NAMESPACE)}"


def probe_plans() -> dict[str, RequestPlan]:
    """GET one ConfigMap and LIST them all (``limit=500``, as kubectl) in ``root:ws-1``."""
    path = probed_configmaps_path()
    return {"get": RequestPlan("fixed", f"{path}/{CONFIGMAP_PREFIX}0"),
            "list": RequestPlan("fixed", f"{path}?limit=500")}


def _settle(ctx: BenchContext, server: WorkspaceServer) -> float:
    return settle(server.pid, window_s=ctx.settings.settle_window_s,
                  longest_s=ctx.settings.settle_longest_s)


# -- rows ------------------------------------------------------------------------------------


def creation_row(
    result: WorkspaceCreationResult, *, name: str, description: str, connections: int
) -> Row:
    """Workspaces per second reaching Ready, and each one's POST-to-Ready latency."""
    ready = summarize(result.ready_latencies)
    posted = summarize(result.create_latencies)
    notes: dict[str, object] = {
        "connections": connections,
        "ready": ready.count,
        "seconds_to_last_ready": round(result.last_ready_s, 6),
        "post_p50_ms": round(posted.p50_ms, 3),
        "post_p99_ms": round(posted.p99_ms, 3),
        "ready_max_ms": round(ready.max_ms, 3),
    }
    if result.watch_reconnects:
        notes["watch_reconnects"] = result.watch_reconnects
    if result.error_samples:
        notes["errors"] = result.error_samples
    return Row(
        name=name,
        description=description,
        rate=ready.count / result.last_ready_s if result.last_ready_s > 0 else 0.0,
        p50_ms=ready.p50_ms,
        p99_ms=ready.p99_ms,
        count=ready.count,
        errors=result.create_errors + result.never_ready,
        notes=notes,
    )


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """The server's resident memory once it had gone quiet, and how many workspaces it held."""

    rss: int
    workspaces: int
    settled_s: float


def read_memory(ctx: BenchContext, server: WorkspaceServer, *, workspaces: int) -> MemoryReading:
    settled = _settle(ctx, server)
    return MemoryReading(rss=rss_bytes(server.pid), workspaces=workspaces, settled_s=settled)


def memory_row(before: MemoryReading, after: MemoryReading, *, name: str) -> Row:
    """Resident memory growth divided by the number of workspaces added."""
    added = after.workspaces - before.workspaces
    growth = after.rss - before.rss
    row = Row(
        name=name,
        description=f"RSS growth per Ready workspace, {before.workspaces:,} -> "
                    f"{after.workspaces:,} workspaces",
        rate=0.0, p50_ms=0.0, p99_ms=0.0, count=added,
        value=growth / added / 1024 if added else 0.0,
        unit="KiB/ws",
        notes={"rss_before_mib": _mib(before.rss), "rss_after_mib": _mib(after.rss),
               "settled_s": [round(before.settled_s, 1), round(after.settled_s, 1)]},
    )
    row.judge(Target("value", "<=", TARGET_KIB_PER_WORKSPACE))
    return row


def idle_cpu_row(
    ctx: BenchContext, server: WorkspaceServer, *, name: str, workspaces: int,
    baseline: Row | None = None,
) -> Row:
    """CPU the idle server uses with ``workspaces`` workspaces, in ms per second.

    With a ``baseline`` (the same server with a handful of workspaces) the row must stay
    within :data:`IDLE_CPU_TOLERANCE_MS_PER_S` of it.
    """
    settled = _settle(ctx, server)
    window = measure_cpu(server.pid, seconds=ctx.settings.idle_window_s)
    row = _idle_row(window, name=name, workspaces=workspaces, settled_s=settled)
    if baseline is not None and baseline.value is not None:
        row.notes["baseline"] = baseline.name
        row.judge(Target("value", "<=", baseline.value + IDLE_CPU_TOLERANCE_MS_PER_S))
    return row


def _idle_row(window: CpuWindow, *, name: str, workspaces: int, settled_s: float) -> Row:
    return Row(
        name=name,
        description=f"server CPU while idle with {workspaces:,} workspaces "
                    f"({window.wall_s:.0f} s window)",
        rate=0.0, p50_ms=0.0, p99_ms=0.0, count=workspaces,
        value=window.cpu_ms_per_s,
        unit="ms/s",
        notes={"cpu_s": round(window.cpu_s, 3), "wall_s": round(window.wall_s, 3),
               "settled_s": round(settled_s, 1)},
    )


def probe_rows(
    ctx: BenchContext, server: WorkspaceServer, *, prefix: str, suffix: str, workspaces: int,
    baselines: dict[str, Row] | None = None,
) -> dict[str, Row]:
    """Closed-loop GET and LIST in ``root:ws-1``; compared with ``baselines`` when given."""
    rows = {}
    for kind, plan in probe_plans().items():
        what = ("GET one ConfigMap" if kind == "get"
                else f"LIST {ctx.settings.workspace_configmaps} ConfigMaps")
        row = ctx.closed_loop(Measurement(
            f"{prefix}-{kind}{suffix}",
            f"{what} in {PARENT}:{PROBED_WORKSPACE}, {workspaces:,} workspaces",
            server.endpoint, plan))
        baseline = (baselines or {}).get(kind)
        if baseline is not None:
            _compare_latency(row, baseline)
        rows[kind] = row
    return rows


def _compare_latency(row: Row, baseline: Row) -> None:
    row.compare_with(baseline)
    if baseline.p50_ms > 0:
        row.notes["p50_growth"] = round(row.p50_ms / baseline.p50_ms, 3)
    if baseline.p99_ms > 0:
        row.notes["p99_growth"] = round(row.p99_ms / baseline.p99_ms, 3)
    row.judge(Target("ratio", ">=", round(1 / LATENCY_GROWTH_LIMIT, 2)))


def startup_row(server: WorkspaceServer, *, name: str, workspaces: int,
                served: bool) -> Row:
    """Seconds from starting ``kplane serve`` on existing data to ``/readyz`` answering 200."""
    row = Row(
        name=name,
        description=f"restart with {workspaces:,} workspaces: process start to /readyz 200",
        rate=0.0, p50_ms=0.0, p99_ms=0.0, count=workspaces,
        errors=0 if served else 1,
        value=server.startup_s,
        unit="s",
        notes={"rss_after_start_mib": _mib(rss_bytes(server.pid)),
               "last_workspace_served": served},
    )
    row.judge(Target("value", "<=", TARGET_STARTUP_S))
    return row


def serves_workspace(server: WorkspaceServer, index: int) -> bool:
    """Whether ``root:ws-<index>`` answers with its ``default`` namespace."""
    path = f"/clusters/{PARENT}:{NAME_PREFIX}{index}/api/v1/namespaces/default"
    with SyncClient(server.endpoint) as client:
        status, _, _ = client.request("GET", path)
    return status == 200


def _mib(size: int) -> float:
    return round(size / 2**20, 1)
