"""Summaries of latency samples: the percentiles every report row shows.

Percentiles use the nearest-rank method on the sorted samples (the value below which
``p`` percent of the samples fall, no interpolation), so a p99 is always a latency that
really happened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency percentiles in milliseconds; all zero when there were no samples."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted samples (``fraction`` in (0, 1])."""
    if not sorted_samples:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_samples)))
    return sorted_samples[min(rank, len(sorted_samples)) - 1]


def summarize(samples_s: Sequence[float]) -> LatencySummary:
    """Percentiles of latencies given in seconds, reported in milliseconds."""
    ordered = sorted(samples_s)
    if not ordered:
        return LatencySummary(count=0, p50_ms=0.0, p99_ms=0.0, max_ms=0.0)
    return LatencySummary(
        count=len(ordered),
        p50_ms=percentile(ordered, 0.50) * 1000.0,
        p99_ms=percentile(ordered, 0.99) * 1000.0,
        max_ms=ordered[-1] * 1000.0,
    )
