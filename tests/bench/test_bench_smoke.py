"""The benchmark suite runs end to end and reports what it should; timings are not asserted.

One ``python -m bench --quick`` run against a real kplane server (about 7 s) is shared by
the structural checks; the pure helpers (percentiles, the scenario selection, the watch
line parser, the table) are checked directly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from bench.context import split_evenly
from bench.loadgen import sent_time
from bench.report import Row, Target, render_markdown, render_table
from bench.scenarios import SCENARIOS
from bench.stats import percentile, summarize
from bench.suite import select

REPO_ROOT = Path(__file__).resolve().parents[2]
MEASURED_ROWS = [
    "ceiling-asgi-get", "get", "ceiling-asgi-list", "list", "ceiling-sqlite-txn",
    "ceiling-sqlite-batch", "create", "update", "watch", "watch-writer",
]
ROW_FIELDS = {"name", "description", "rate", "p50_ms", "p99_ms", "count", "errors", "ceiling",
              "ceiling_rate", "ratio", "target", "passed", "notes"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return orjson.loads(out.read_bytes()), completed.stdout


def rows_by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in document["rows"]}


def test_every_scenario_reports_its_rows_in_run_order(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    document, _ = quick_run
    assert [row["name"] for row in document["rows"]] == MEASURED_ROWS
    assert document["meta"]["scenarios"] == list(SCENARIOS)
    assert document["meta"]["settings"]["concurrency"] == 8


def test_rows_carry_measurements_without_errors(quick_run: tuple[dict[str, Any], str]) -> None:
    document, _ = quick_run
    for row in document["rows"]:
        assert set(row) == ROW_FIELDS, row["name"]
        assert row["errors"] == 0, (row["name"], row["notes"])
        assert row["count"] > 0, row["name"]
        assert row["rate"] > 0, row["name"]
        assert 0 < row["p50_ms"] <= row["p99_ms"], row["name"]


def test_kplane_rows_are_compared_with_ceilings_of_the_same_run(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    rows = rows_by_name(quick_run[0])
    for name, ceiling in (("get", "ceiling-asgi-get"), ("list", "ceiling-asgi-list"),
                          ("create", "ceiling-sqlite-batch"), ("update", "ceiling-sqlite-batch")):
        assert rows[name]["ceiling"] == ceiling
        assert rows[name]["ceiling_rate"] == rows[ceiling]["rate"]
        assert rows[name]["ratio"] == pytest.approx(rows[name]["rate"] / rows[ceiling]["rate"])
    assert rows["ceiling-sqlite-txn"]["notes"]["batch"] == 1
    assert rows["ceiling-sqlite-batch"]["notes"]["batch"] == 8


def test_targets_are_judged(quick_run: tuple[dict[str, Any], str]) -> None:
    rows = rows_by_name(quick_run[0])
    expected = {"get": "ratio >= 0.40", "list": "rate >= 1,000", "create": "rate >= 2,000",
                "watch": "p99_ms <= 100"}
    for name, row in rows.items():
        assert row["target"] == expected.get(name), name
        assert isinstance(row["passed"], bool) == (name in expected), name


def test_watch_delivers_every_event_to_every_watcher(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    rows = rows_by_name(quick_run[0])
    notes = rows["watch"]["notes"]
    assert notes["watchers_connected"] == 20
    assert notes["events_written"] == 10
    assert notes["missing_deliveries"] == 0
    assert rows["watch"]["count"] == 200
    assert rows["watch-writer"]["count"] == 10


def test_the_printed_table_has_one_line_per_row(quick_run: tuple[dict[str, Any], str]) -> None:
    _, stdout = quick_run
    lines = stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["scenario", "rate/s", "p50", "ms"]
    assert [line.split()[0] for line in lines[2:]] == MEASURED_ROWS


def test_only_pulls_in_required_ceilings_in_registry_order() -> None:
    assert select(["create"]) == ["ceiling-sqlite", "create"]
    assert select(["update", "get"]) == ["get", "ceiling-sqlite", "update"]
    assert select([]) == list(SCENARIOS)
    with pytest.raises(KeyError):
        select(["no-such-scenario"])


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 0.50) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    summary = summarize([0.003, 0.001, 0.002])
    assert (summary.count, summary.p50_ms, summary.max_ms) == (3, 2.0, 3.0)
    assert summarize([]).count == 0


def test_connections_are_split_evenly_over_processes() -> None:
    assert split_evenly(32, 3) == [(0, 11), (11, 11), (22, 10)]
    assert split_evenly(2, 4) == [(0, 1), (1, 1)]


def test_watch_lines_yield_the_send_time() -> None:
    line = b'{"type":"ADDED","object":{"data":{"mode":"x","sent":"1764340000.25"}}}'
    assert sent_time(line) == 1764340000.25
    assert sent_time(b'{"type":"BOOKMARK","object":{"metadata":{}}}') is None


def test_targets_and_tables_render() -> None:
    row = Row(name="get", description="GET", rate=900.0, p50_ms=1.0, p99_ms=2.0, count=9)
    row.compare_with(Row(name="ceiling", description="c", rate=1800.0, p50_ms=0.5,
                         p99_ms=1.0, count=18))
    row.judge(Target("ratio", ">=", 0.4))
    assert (row.ratio, row.passed) == (0.5, True)
    row.judge(Target("p99_ms", "<=", 1.5))
    assert row.passed is False
    assert "FAIL" in render_table([row])
    assert render_markdown([row]).splitlines()[2].startswith("| get | 900 | 1.00 | 2.00 |")
