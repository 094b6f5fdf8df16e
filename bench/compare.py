"""The two backends side by side: one line per operation, SQLite next to etcd.

After a run over both backends every operation has a row from each pass (the etcd ones
named ``etcd:<row>``). :func:`compare_backends` pairs them into :class:`Line` objects: each
backend's rate, p50 and p99, each one's ratio to the ceiling of its own pass, and the
etcd/SQLite rate ratio, judged against the cross-backend targets (GET and LIST served from
the watch cache whatever the backend: etcd keeps at least :data:`UNAFFECTED_RATIO` of the
SQLite rate). Each row's own target (CREATE on etcd >= half the raw etcd puts, ...) is
shown and judged too, so this one table carries every verdict of the request scenarios.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report import Row, format_number
from bench.suite import ETCD_ROW_PREFIX

# "Unaffected by the backend", made measurable: at least this share of the SQLite rate.
UNAFFECTED_RATIO = 0.8

# The operations of the table, in order, and those judged on the etcd/SQLite ratio.
OPERATIONS = ("ceiling-asgi-get", "get", "get-rv0", "ceiling-asgi-list", "list",
              "get-1-server",
              "get-2-servers", "ceiling-sqlite-txn", "ceiling-sqlite-batch",
              "ceiling-etcd-put", "create", "update", "watch", "watch-writer")
BACKEND_INDEPENDENT = frozenset({"get", "get-rv0", "list"})


@dataclass(slots=True)
class Line:
    """One operation on both backends; either side is None when not measured there."""

    operation: str
    sqlite: Row | None
    etcd: Row | None
    etcd_over_sqlite: float | None = None
    targets: list[str] = field(default_factory=list)
    verdicts: list[bool | None] = field(default_factory=list)

    @property
    def passed(self) -> bool | None:
        """False when any target was missed, True when all were met, None without one."""
        judged = [verdict for verdict in self.verdicts if verdict is not None]
        if not judged:
            return None
        return all(judged)


def compare_backends(rows: Sequence[Row]) -> list[Line]:
    """The side-by-side lines of the operations measured on at least one backend."""
    by_name = {row.name: row for row in rows}
    lines = []
    for operation in OPERATIONS:
        sqlite, etcd = by_name.get(operation), by_name.get(ETCD_ROW_PREFIX + operation)
        if sqlite is None and etcd is None:
            continue
        lines.append(_line(operation, sqlite, etcd))
    return lines


def _line(operation: str, sqlite: Row | None, etcd: Row | None) -> Line:
    line = Line(operation, sqlite, etcd)
    if sqlite is not None and etcd is not None and sqlite.rate > 0:
        line.etcd_over_sqlite = etcd.rate / sqlite.rate
    for label, row in (("SQLite", sqlite), ("etcd", etcd)):
        if row is not None and row.target is not None:
            line.targets.append(f"{label} {row.target.describe()}")
            line.verdicts.append(row.passed)
    if operation in BACKEND_INDEPENDENT and sqlite is not None and etcd is not None:
        line.targets.append(f"etcd/SQLite >= {UNAFFECTED_RATIO:.2f}")
        ratio = line.etcd_over_sqlite
        line.verdicts.append(None if ratio is None else ratio >= UNAFFECTED_RATIO)
    return line


_COLUMNS = ("operation", "SQLite rate/s", "p50 ms", "p99 ms", "ratio", "etcd rate/s",
            "p50 ms", "p99 ms", "ratio", "etcd/SQLite", "target", "result")
_NUMERIC = frozenset(range(1, 10))


def _side(row: Row | None) -> tuple[str, str, str, str]:
    if row is None:
        return ("-", "-", "-", "-")
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    return (format_number(row.rate), format_number(row.p50_ms), format_number(row.p99_ms),
            ratio)


def _verdict_text(verdict: bool | None) -> str:
    return "-" if verdict is None else ("pass" if verdict else "FAIL")


def _cells(line: Line) -> tuple[str, ...]:
    cross = "-" if line.etcd_over_sqlite is None else f"{line.etcd_over_sqlite:.2f}"
    return (line.operation, *_side(line.sqlite), *_side(line.etcd), cross,
            "; ".join(line.targets) or "-",
            "; ".join(_verdict_text(v) for v in line.verdicts) or "-")


def render_comparison_table(lines: Sequence[Line]) -> str:
    """Plain text, numbers right-aligned."""
    table = [_COLUMNS, *(_cells(line) for line in lines)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(_COLUMNS))]
    rendered = [
        "  ".join(cell.rjust(width) if i in _NUMERIC else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(cells, widths, strict=True))).rstrip()
        for cells in table
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def render_comparison_markdown(lines: Sequence[Line]) -> str:
    """The same table as Markdown, for docs/performance.md."""
    header = "| " + " | ".join(_COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in _COLUMNS) + "|"
    return "\n".join([header, rule, *("| " + " | ".join(_cells(line)) + " |" for line in lines)])


def comparison_document(lines: Sequence[Line]) -> list[dict[str, Any]]:
    """The lines for the ``--json`` file (the rows themselves are there in full)."""
    return [
        {
            "operation": line.operation,
            "sqlite": None if line.sqlite is None else line.sqlite.name,
            "etcd": None if line.etcd is None else line.etcd.name,
            "etcd_over_sqlite": line.etcd_over_sqlite,
            "targets": line.targets,
            "verdicts": line.verdicts,
            "passed": line.passed,
        }
        for line in lines
    ]
