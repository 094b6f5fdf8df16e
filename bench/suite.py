"""Running a selection of scenarios once: setup, the scenarios in order, teardown, report.

A scenario that crashes does not end the run: its failure becomes a row with one error
(and the traceback goes to stderr), the other scenarios still run, and the run reports
failure through :attr:`SuiteResult.crashed`.

A run covers one or both storage backends: one pass per backend, each with a kplane (and,
for etcd, an etcd) of its own, running the selected scenarios that apply to that backend.
The etcd pass's rows are named ``etcd:<row>`` so both passes fit in one report.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import BACKENDS, BenchContext, Settings
from bench.report import Row
from bench.scenarios import SCENARIOS
from bench.workers import WorkerPool


@dataclass(frozen=True, slots=True)
class SuiteResult:
    rows: list[Row]
    meta: dict[str, Any]
    crashed: list[str]


def select(names: Iterable[str]) -> list[str]:
    """The scenarios to run for ``names`` (the default ones when empty), with what they
    require, in registration order."""
    wanted = list(names) or default_scenarios()
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown:
        raise KeyError(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    needed: set[str] = set()
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending.extend(SCENARIOS[name].requires)
    return [name for name in SCENARIOS if name in needed]


def default_scenarios() -> list[str]:
    """What a run that names no scenario runs: everything but the opt-in ones."""
    return [name for name, registered in SCENARIOS.items() if registered.default]


ETCD_ROW_PREFIX = "etcd:"


def for_backend(names: Sequence[str], backend: str) -> list[str]:
    """Those of ``names`` that run on ``backend``."""
    return [name for name in names if backend in SCENARIOS[name].backends]


def row_name(name: str, backend: str) -> str:
    """The report name of a row measured on ``backend``."""
    return f"{ETCD_ROW_PREFIX}{name}" if backend == "etcd" else name


def run_suite(
    settings: Settings,
    *,
    only: Sequence[str] = (),
    workdir: Path | None = None,
    progress: bool = True,
    backends: Sequence[str] = ("sqlite",),
) -> SuiteResult:
    """Run the selected scenarios against a fresh kplane per backend; every process is
    stopped after."""
    unknown = [backend for backend in backends if backend not in BACKENDS]
    if unknown:
        raise KeyError(f"unknown backend(s) {unknown}; known: {', '.join(BACKENDS)}")
    names = select(only)
    rows: list[Row] = []
    crashed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kplane-bench-") as scratch:
        directory = workdir or Path(scratch)
        with WorkerPool(settings.pool_size) as pool:
            for backend in backends:
                selected = for_backend(names, backend)
                if not selected:
                    continue
                pass_rows, pass_crashed = _run_pass(
                    settings, pool=pool, names=selected, backend=backend,
                    directory=directory / backend, progress=progress)
                rows += pass_rows
                crashed += [row_name(name, backend) for name in pass_crashed]
    meta = run_metadata(settings, names)
    meta["backends"] = list(backends)
    return SuiteResult(rows=rows, meta=meta, crashed=crashed)


def _run_pass(
    settings: Settings, *, pool: WorkerPool, names: list[str], backend: str, directory: Path,
    progress: bool,
) -> tuple[list[Row], list[str]]:
    directory.mkdir(parents=True, exist_ok=True)
    context = BenchContext(settings=settings, workdir=directory, pool=pool, backend=backend)
    try:
        crashed = _run_all(context, names, progress=progress)
    finally:
        context.close()
    rows = list(context.rows.values())
    if backend == "etcd":
        _rename_for(rows, backend)
    return rows, crashed


def _rename_for(rows: list[Row], backend: str) -> None:
    """Name the rows (and the ceilings they cite, all from the same pass) for ``backend``."""
    for row in rows:
        row.name = row_name(row.name, backend)
        if row.ceiling is not None:
            row.ceiling = row_name(row.ceiling, backend)


def _run_all(context: BenchContext, names: list[str], *, progress: bool) -> list[str]:
    crashed = []
    for name in names:
        if progress:
            print(f"running {name} ({context.backend}) ...", file=sys.stderr, flush=True)
        try:
            rows = SCENARIOS[name].run(context)
        except Exception as exc:
            traceback.print_exc()
            log = context.kplane_log_tail()
            if log:
                print(f"--- end of the kplane log ---\n{log}", file=sys.stderr)
            crashed.append(name)
            rows = [_crash_row(name, exc)]
        for row in rows:
            context.rows[row.name] = row
    return crashed


def _crash_row(name: str, error: Exception) -> Row:
    return Row(name=name, description=f"crashed: {type(error).__name__}: {error}"[:300],
               rate=0.0, p50_ms=0.0, p99_ms=0.0, count=0, errors=1)


def run_metadata(settings: Settings, names: list[str]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "scenarios": names,
        "settings": dataclasses.asdict(settings),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
