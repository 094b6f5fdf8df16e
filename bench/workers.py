"""The pool of load-generator processes, started once per suite run.

Processes are started with ``spawn`` (a clean interpreter, no state inherited from the
orchestrator) and kept for the whole run, so each scenario pays only for opening its
connections, not for starting Python and importing uvloop again. Watcher processes report
"all my watches are open" through a queue handed to every worker at start, which is how
the orchestrator knows when the writer may begin.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.queues import Queue
from typing import TypeVar

from bench.loadgen import (
    ClosedLoopResult,
    ClosedLoopSpec,
    WatchResult,
    WatchSpec,
    raise_open_file_limit,
    run_closed_loop,
    run_watchers,
)

_Spec = TypeVar("_Spec")
_Result = TypeVar("_Result")

_ready_queue: Queue[int] | None = None


def _initialize_worker(ready: Queue[int]) -> None:
    global _ready_queue
    _ready_queue = ready
    raise_open_file_limit()


def _report_ready(connected: int) -> None:
    assert _ready_queue is not None
    _ready_queue.put(connected)


def _watch_job(spec: WatchSpec) -> WatchResult:
    reported = False

    def report(connected: int) -> None:
        nonlocal reported
        reported = True
        _report_ready(connected)

    try:
        return run_watchers(spec, report)
    finally:
        # A job that died before its watches were open must not leave the orchestrator
        # waiting for a report that never comes.
        if not reported:
            _report_ready(0)


def _pause(seconds: float) -> None:
    time.sleep(seconds)


class WorkerPool:
    """``processes`` spawned load-generator processes; use as a context manager."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.processes = processes
        self._ready: Queue[int] = context.Queue()
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=_initialize_worker,
            initargs=(self._ready,),
        )

    def __enter__(self) -> WorkerPool:
        self.start_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def start_all(self) -> None:
        """Start every process now (the executor would otherwise start them lazily)."""
        jobs = [self._executor.submit(_pause, 0.2) for _ in range(self.processes)]
        for job in jobs:
            job.result()

    def map(self, function: Callable[[_Spec], _Result], specs: Sequence[_Spec]) -> list[_Result]:
        """Run one job per spec in parallel; there must be no more specs than processes."""
        if len(specs) > self.processes:
            raise ValueError(f"{len(specs)} jobs for {self.processes} processes")
        jobs = [self._executor.submit(function, spec) for spec in specs]
        return [job.result() for job in jobs]

    def closed_loop(self, specs: Sequence[ClosedLoopSpec]) -> list[ClosedLoopResult]:
        return self.map(run_closed_loop, specs)

    def submit(self, function: Callable[[_Spec], _Result], spec: _Spec) -> Future[_Result]:
        return self._executor.submit(function, spec)

    def start_watchers(self, specs: Sequence[WatchSpec]) -> list[Future[WatchResult]]:
        """Start watcher jobs; call :meth:`wait_until_watching` before writing."""
        return [self._executor.submit(_watch_job, spec) for spec in specs]

    def wait_until_watching(self, jobs: int, *, timeout: float) -> int:
        """Block until ``jobs`` watcher jobs reported their watches open; how many are open."""
        deadline = time.monotonic() + timeout
        connected = 0
        for _ in range(jobs):
            remaining = deadline - time.monotonic()
            try:
                connected += self._ready.get(timeout=max(0.01, remaining))
            except queue.Empty:
                raise TimeoutError(f"watchers not connected within {timeout}s") from None
        return connected
