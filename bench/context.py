"""What scenarios share during one run: settings, processes, fixtures, earlier rows.

Everything expensive is started on first use, so ``--only NAME`` starts only what that
scenario (and the ceilings it is compared with) needs: the kplane server, the fixtures in
it, the ceiling app. :meth:`BenchContext.closed_loop` is the common measurement of the
request/response scenarios: spread the connections over the load-generator processes, run
one shared window, merge the samples into a :class:`Row`; :meth:`BenchContext.alternate`
does the same for a ceiling and the server it bounds, in alternating windows.

A context belongs to one storage backend (``sqlite`` or ``etcd``): on etcd it also starts
a local etcd member first, and can start a second kplane on the same data directory and
the same etcd (:attr:`BenchContext.second_kplane`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.etcd import EtcdProcess, start_etcd
from bench.fixtures import Fixtures, prepare
from bench.http1 import Endpoint
from bench.loadgen import ClosedLoopResult, ClosedLoopSpec, RequestPlan
from bench.report import Row
from bench.servers import ServerProcess, start_ceiling_app, start_kplane
from bench.stats import summarize
from bench.workers import WorkerPool

BACKENDS = ("sqlite", "etcd")


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes and durations of one run; :meth:`quick` is the smoke-test preset."""

    concurrency: int = 32
    load_processes: int = 1
    # Time for every load process to open its connections before the shared window starts.
    connect_allowance_s: float = 0.5
    warmup_s: float = 0.5
    duration_s: float = 5.0
    rounds: int = 3
    list_size: int = 100
    sqlite_duration_s: float = 2.0
    watchers: int = 1000
    watch_processes: int = 2
    watch_events: int = 100
    watch_rate: float = 10.0
    watch_connect_timeout_s: float = 60.0
    watch_grace_s: float = 10.0
    # Workspaces: how many exist before anything grows, how many measure the creation
    # rate, the memory per workspace and the large-scale (opt-in) scenario.
    workspace_connections: int = 16
    workspace_baseline: int = 10
    workspace_configmaps: int = 10
    workspace_rate_count: int = 2_000
    workspace_memory_count: int = 10_000
    workspace_scale_count: int = 100_000
    # Give up waiting for Ready when no workspace became Ready for this long.
    workspace_stall_timeout_s: float = 30.0
    idle_window_s: float = 10.0
    settle_window_s: float = 0.5
    settle_longest_s: float = 30.0
    startup_timeout_s: float = 300.0

    @classmethod
    def quick(cls) -> Settings:
        return cls(concurrency=8, connect_allowance_s=0.2, warmup_s=0.1, duration_s=0.3,
                   rounds=1, sqlite_duration_s=0.2,
                   watchers=20, watch_events=10, watch_rate=20.0, watch_connect_timeout_s=20.0,
                   watch_grace_s=5.0,
                   workspace_rate_count=40, workspace_memory_count=100,
                   workspace_scale_count=150, workspace_stall_timeout_s=10.0,
                   idle_window_s=0.3, settle_window_s=0.1, settle_longest_s=2.0,
                   startup_timeout_s=60.0)

    def with_overrides(self, *, concurrency: int | None, load_processes: int | None) -> Settings:
        settings = self
        if concurrency is not None:
            settings = replace(settings, concurrency=concurrency)
        if load_processes is not None:
            settings = replace(settings, load_processes=load_processes)
        return settings

    @property
    def pool_size(self) -> int:
        # The watch scenario needs its watcher processes plus one writer at once.
        # Two servers on one etcd take one load process each.
        return max(self.load_processes, self.watch_processes + 1, 2)


class BenchContext:
    """Shared state of one run; close it to stop every process it started."""

    def __init__(
        self, *, settings: Settings, workdir: Path, pool: WorkerPool, backend: str = "sqlite"
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        self.settings = settings
        self.workdir = workdir
        self.pool = pool
        self.backend = backend
        self.rows: dict[str, Row] = {}
        self._etcd: EtcdProcess | None = None
        self._kplane: ServerProcess | None = None
        self._second_kplane: ServerProcess | None = None
        self._ceiling: ServerProcess | None = None
        self._fixtures: Fixtures | None = None

    @property
    def etcd_endpoint(self) -> str:
        """The client URL of this run's etcd (started on first use)."""
        if self._etcd is None:
            self._etcd = start_etcd(data_dir=self.workdir / "etcd",
                                    log_path=self.workdir / "etcd.log")
        return self._etcd.endpoint

    @property
    def kplane(self) -> Endpoint:
        if self._kplane is None:
            self._kplane = self._start_kplane("kplane.log")
        return self._kplane.endpoint

    @property
    def second_kplane(self) -> Endpoint:
        """Another kplane on the same data directory and the same etcd (etcd runs only)."""
        if self.backend != "etcd":
            raise RuntimeError("a second server needs shared storage: etcd runs only")
        _ = self.kplane  # the first one creates the data directory and its certificates
        if self._second_kplane is None:
            self._second_kplane = self._start_kplane("kplane-2.log")
        return self._second_kplane.endpoint

    def _start_kplane(self, log_name: str) -> ServerProcess:
        etcd = self.etcd_endpoint if self.backend == "etcd" else ""
        return start_kplane(data_dir=self.workdir / "kplane", log_path=self.workdir / log_name,
                            etcd_servers=etcd)

    @property
    def fixtures(self) -> Fixtures:
        if self._fixtures is None:
            self._fixtures = prepare(self.kplane, list_size=self.settings.list_size,
                                     update_objects=self.settings.concurrency,
                                     responses_path=self.workdir / "responses.json")
        return self._fixtures

    def ensure_fixtures(self) -> None:
        """Set the fixtures up now, so that it happens before a measuring window opens."""
        _ = self.fixtures

    @property
    def ceiling_app(self) -> Endpoint:
        if self._ceiling is None:
            self._ceiling = start_ceiling_app(data_dir=self.workdir / "kplane",
                                              responses_path=self.fixtures.responses_path,
                                              log_path=self.workdir / "ceiling.log")
        return self._ceiling.endpoint

    def kplane_log_tail(self) -> str:
        return "" if self._kplane is None else self._kplane.log_tail()

    def close(self) -> None:
        for server in (self._ceiling, self._second_kplane, self._kplane):
            if server is not None:
                server.stop()
        # Last: the servers must not lose their storage while they shut down.
        if self._etcd is not None:
            self._etcd.stop()

    def closed_loop(self, measurement: Measurement) -> Row:
        """Measure one plan with ``concurrency`` connections over the load processes."""
        duration = self.settings.duration_s
        return merge_closed_loop(self._window(measurement, duration_s=duration),
                                 measurement=measurement, duration_s=duration)

    def alternate(self, measurements: Sequence[Measurement]) -> list[Row]:
        """Measure several plans in turn, ``rounds`` times, one row each.

        Throughput on a shared virtual machine drifts by tens of percent within a minute;
        taking a ceiling and the server it bounds in alternating short windows exposes
        both to the same drift, which keeps their ratio steady from run to run.
        """
        rounds = self.settings.rounds
        window_s = self.settings.duration_s / rounds
        collected: dict[str, list[ClosedLoopResult]] = {m.name: [] for m in measurements}
        for _ in range(rounds):
            for measurement in measurements:
                collected[measurement.name] += self._window(measurement, duration_s=window_s)
        return [merge_closed_loop(collected[m.name], measurement=m,
                                  duration_s=window_s * rounds)
                for m in measurements]

    def _window(self, measurement: Measurement, *, duration_s: float) -> list[ClosedLoopResult]:
        settings = self.settings
        start_at = time.time() + settings.connect_allowance_s
        targets = measurement.spread or (measurement.endpoint,) * settings.load_processes
        specs = [
            ClosedLoopSpec(endpoint=endpoint, plan=measurement.plan,
                           connections=count, first_connection_index=first, start_at=start_at,
                           warmup_s=settings.warmup_s, duration_s=duration_s,
                           run_id=f"{measurement.name}-{int(start_at * 1000)}")
            for endpoint, (first, count) in zip(
                targets, split_evenly(settings.concurrency, len(targets)), strict=False)
        ]
        return self.pool.closed_loop(specs)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One closed-loop measurement: what to send where, and the row it becomes."""

    name: str
    description: str
    endpoint: Endpoint
    plan: RequestPlan
    # When set, one load process per entry, the connections split evenly between them
    # (instead of ``load_processes`` processes all on ``endpoint``).
    spread: tuple[Endpoint, ...] = ()


def split_evenly(total: int, parts: int) -> list[tuple[int, int]]:
    """``(first index, count)`` of each non-empty part of ``total`` items over ``parts``."""
    base, extra = divmod(total, parts)
    shares = []
    first = 0
    for part in range(parts):
        count = base + (1 if part < extra else 0)
        if count:
            shares.append((first, count))
        first += count
    return shares


def merge_closed_loop(
    results: list[ClosedLoopResult], *, measurement: Measurement, duration_s: float
) -> Row:
    latencies = [sample for result in results for sample in result.latencies]
    summary = summarize(latencies)
    samples = [sample for result in results for sample in result.error_samples]
    return Row(
        name=measurement.name,
        description=measurement.description,
        rate=summary.count / duration_s,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        count=summary.count,
        errors=sum(result.errors for result in results),
        notes={"max_ms": round(summary.max_ms, 3), **({"errors": samples} if samples else {})},
    )
