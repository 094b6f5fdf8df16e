"""Prometheus metrics of the API server (``/metrics``).

Named after kube-apiserver's so existing dashboards read them: ``apiserver_request_total``
by verb, resource and code, and ``apiserver_request_duration_seconds``. Watches are counted
when they end, not timed.

Every request updates them, so the request path only adds to plain integers (one event
loop does all the counting; there is nothing to lock), and a collector turns those into
prometheus_client's metric families when ``/metrics`` is read. prometheus_client's own
counters take a lock and a label lookup per update, which cost several microseconds a
request.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
STORAGE_OBJECTS = Gauge(
    "apiserver_storage_objects_total", "Objects held in the watch cache.", registry=REGISTRY,
)


def count_cached_objects(count: Callable[[], int]) -> None:
    """Read the watch cache's object count (``count()``) whenever ``/metrics`` is read."""
    STORAGE_OBJECTS.set_function(lambda: float(count()))


@dataclass(slots=True)
class _Durations:
    """One histogram's counts: per bucket (not cumulative; the last is +Inf), sum, count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0


_request_counts: dict[tuple[str, str, int], int] = {}
_durations: dict[str, _Durations] = {}


def observe_request(*, verb: str, resource: str, code: int, seconds: float) -> None:
    key = (verb, resource, code)
    _request_counts[key] = _request_counts.get(key, 0) + 1
    durations = _durations.get(verb)
    if durations is None:
        durations = _durations[verb] = _Durations()
    # A value equal to a bound belongs to that bucket (le: less than or equal).
    durations.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
    durations.total += seconds


def count_request(*, verb: str, resource: str, code: int) -> None:
    """Count a request without timing it: a watch lasts as long as the client wants."""
    key = (verb, resource, code)
    _request_counts[key] = _request_counts.get(key, 0) + 1


class _RequestCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "apiserver_request", "Requests served, by verb, resource and HTTP code.",
            labels=["verb", "resource", "code"])
        for (verb, resource, code), count in sorted(_request_counts.items()):
            requests.add_metric([verb, resource, str(code)], count)
        yield requests
        histogram = HistogramMetricFamily(
            "apiserver_request_duration_seconds", "Time to serve a request, by verb.",
            labels=["verb"])
        for verb, durations in sorted(_durations.items()):
            cumulative = 0
            buckets = []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), durations.buckets,
                                    strict=True):
                cumulative += count
                buckets.append((_bound_text(bound), cumulative))
            histogram.add_metric([verb], buckets, durations.total)
        yield histogram


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


REGISTRY.register(_RequestCollector())


def render() -> bytes:
    return generate_latest(REGISTRY)
