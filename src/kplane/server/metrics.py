"""Prometheus metrics of the API server (``/metrics``).

Named after kube-apiserver's so existing dashboards read them: ``apiserver_request_total``
by verb, resource and code, and ``apiserver_request_duration_seconds``. Watches are counted
when they end, not timed.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "apiserver_request_total", "Requests served, by verb, resource and HTTP code.",
    ["verb", "resource", "code"], registry=REGISTRY,
)
DURATION = Histogram(
    "apiserver_request_duration_seconds", "Time to serve a request, by verb.",
    ["verb"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
STORAGE_OBJECTS = Gauge(
    "apiserver_storage_objects_total", "Objects held in the watch cache.", registry=REGISTRY,
)


# prometheus_client's labels() costs microseconds per call; the label sets are few, so the
# children are looked up once and kept.
_request_counters: dict[tuple[str, str, int], Any] = {}
_durations: dict[str, Any] = {}


def _counter(verb: str, resource: str, code: int) -> Any:
    key = (verb, resource, code)
    child = _request_counters.get(key)
    if child is None:
        child = _request_counters[key] = REQUESTS.labels(verb, resource, str(code))
    return child


def observe_request(*, verb: str, resource: str, code: int, seconds: float) -> None:
    _counter(verb, resource, code).inc()
    duration = _durations.get(verb)
    if duration is None:
        duration = _durations[verb] = DURATION.labels(verb)
    duration.observe(seconds)


def count_request(*, verb: str, resource: str, code: int) -> None:
    """Count a request without timing it: a watch lasts as long as the client wants."""
    _counter(verb, resource, code).inc()


def render() -> bytes:
    return generate_latest(REGISTRY)
