"""Result rows, the targets they are judged by, and the two ways they leave the suite.

Every scenario produces :class:`Row` objects. A row may name the ceiling row it is
compared with (measured earlier in the same run) and carry a :class:`Target`; the table
printed at the end and the ``--json`` file are both rendered from the same rows.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Metric = Literal["rate", "ratio", "p99_ms", "value"]

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
}


@dataclass(frozen=True, slots=True)
class Target:
    """A requirement on one metric of a row, e.g. ``ratio >= 0.4`` or ``p99_ms <= 100``."""

    metric: Metric
    op: Literal[">=", "<="]
    threshold: float

    def describe(self) -> str:
        return f"{self.metric} {self.op} {format_number(self.threshold)}"

    def is_met(self, row: Row) -> bool | None:
        """Whether ``row`` meets this target; None when the metric was not measured."""
        value = getattr(row, self.metric)
        if value is None:
            return None
        return _COMPARISONS[self.op](float(value), self.threshold)


@dataclass(slots=True)
class Row:
    """One measured line of the report.

    ``rate`` is requests (or, for watches, delivered events, or inserts) per second;
    ``p50_ms``/``p99_ms`` are latencies of the same operations. ``errors`` counts
    operations that failed (non-2xx, lost connection, undelivered event).

    A row that measures a quantity rather than operations (memory per workspace, a
    start-up time, CPU use while idle) carries it in ``value``, in ``unit``, and leaves
    the rate and latencies at zero; the table shows them as ``-``.
    """

    name: str
    description: str
    rate: float
    p50_ms: float
    p99_ms: float
    count: int
    errors: int = 0
    ceiling: str | None = None
    ceiling_rate: float | None = None
    ratio: float | None = None
    target: Target | None = None
    passed: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    unit: str = ""

    def compare_with(self, ceiling: Row | None) -> None:
        """Fill the ceiling columns from a ceiling row measured in the same run."""
        if ceiling is None or ceiling.rate <= 0:
            return
        self.ceiling = ceiling.name
        self.ceiling_rate = ceiling.rate
        self.ratio = self.rate / ceiling.rate

    def judge(self, target: Target | None) -> None:
        self.target = target
        self.passed = None if target is None else target.is_met(self)


def format_number(value: float) -> str:
    """A figure as the tables show it: whole with thousands separators from 100, else
    one or two decimals."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(row: Row) -> str:
    if row.passed is None:
        return "-"
    return "pass" if row.passed else "FAIL"


_COLUMNS = ("scenario", "rate/s", "p50 ms", "p99 ms", "errors", "ceiling", "ratio", "target",
            "result")
# The "value" column goes after "p99 ms", and only into tables that have a value row, so
# tables of request scenarios alone look as they always did.
_VALUE_COLUMN = "value"
_VALUE_POSITION = 4


def _has_values(rows: Sequence[Row]) -> bool:
    return any(row.value is not None for row in rows)


def _columns(rows: Sequence[Row]) -> tuple[str, ...]:
    if not _has_values(rows):
        return _COLUMNS
    return (*_COLUMNS[:_VALUE_POSITION], _VALUE_COLUMN, *_COLUMNS[_VALUE_POSITION:])


def _cells(row: Row, *, with_value: bool) -> tuple[str, ...]:
    ceiling = ("-" if row.ceiling is None
               else f"{row.ceiling} ({format_number(row.ceiling_rate or 0)})")
    operations = row.value is None
    cells = (
        row.name,
        format_number(row.rate) if operations else "-",
        format_number(row.p50_ms) if operations else "-",
        format_number(row.p99_ms) if operations else "-",
        str(row.errors),
        ceiling,
        "-" if row.ratio is None else f"{row.ratio:.2f}",
        "-" if row.target is None else row.target.describe(),
        _verdict(row),
    )
    if not with_value:
        return cells
    value = "-" if row.value is None else f"{format_number(row.value)} {row.unit}".rstrip()
    return (*cells[:_VALUE_POSITION], value, *cells[_VALUE_POSITION:])


def render_table(rows: Sequence[Row]) -> str:
    """A plain-text table, numbers right-aligned, one line per row."""
    columns = _columns(rows)
    with_value = _has_values(rows)
    lines = [columns, *(_cells(row, with_value=with_value) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    numeric = {i for i, name in enumerate(columns)
               if name in ("rate/s", "p50 ms", "p99 ms", _VALUE_COLUMN, "errors", "ratio")}
    rendered = []
    for line in lines:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        rendered.append("  ".join(cells).rstrip())
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def render_markdown(rows: Sequence[Row]) -> str:
    """The same table as Markdown, for docs/performance.md."""
    columns = _columns(rows)
    with_value = _has_values(rows)
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cells(row, with_value=with_value)) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def rows_as_json(
    rows: Sequence[Row], *, meta: dict[str, Any], extra: dict[str, Any] | None = None
) -> bytes:
    """The machine-readable report: run metadata, every row with all its fields, and any
    ``extra`` top-level sections (the backend comparison)."""
    document = {"meta": meta, "rows": [_row_document(row) for row in rows], **(extra or {})}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def _row_document(row: Row) -> dict[str, Any]:
    document = asdict(row)
    document["target"] = None if row.target is None else row.target.describe()
    return document


def write_json(
    path: Path, rows: Sequence[Row], *, meta: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    path.write_bytes(rows_as_json(rows, meta=meta, extra=extra))
