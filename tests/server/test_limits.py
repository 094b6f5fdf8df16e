"""The in-flight limiter: 429 with Retry-After over budget, watches free, slots always freed."""

from __future__ import annotations

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.server.limits import InflightLimiter
from tests.server.harness import Stack, configmap, with_app

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def test_over_budget_is_429_with_retry_after() -> None:
    limiter = InflightLimiter(max_readonly=1, max_mutating=1)
    with limiter.admit("get"), pytest.raises(StatusError) as refused, limiter.admit("list"):
        pass
    assert refused.value.code == 429
    status = refused.value.to_status()
    assert status["reason"] == "TooManyRequests"
    assert status["details"]["retryAfterSeconds"] == 1


def test_readonly_and_mutating_budgets_are_separate() -> None:
    limiter = InflightLimiter(max_readonly=1, max_mutating=1)
    with limiter.admit("get"), limiter.admit("create"):
        assert limiter.inflight(readonly=True) == 1
        assert limiter.inflight(readonly=False) == 1
        with pytest.raises(StatusError):
            limiter.admit("delete").__enter__()
    assert limiter.inflight(readonly=True) == limiter.inflight(readonly=False) == 0


def test_watches_are_not_counted() -> None:
    limiter = InflightLimiter(max_readonly=0, max_mutating=0)
    with limiter.admit("watch"):
        assert limiter.inflight(readonly=True) == 0


def test_a_slot_is_released_when_the_request_fails() -> None:
    limiter = InflightLimiter(max_readonly=1)
    with pytest.raises(RuntimeError), limiter.admit("get"):
        raise RuntimeError("boom")
    assert limiter.inflight(readonly=True) == 0
    with limiter.admit("get"):
        assert limiter.inflight(readonly=True) == 1


async def test_app_answers_429_with_retry_after(stack: Stack) -> None:
    limiter = InflightLimiter(max_readonly=1, max_mutating=1)
    limited = with_app(stack, limiter=limiter)
    with limiter.admit("get"):
        response = await limited.request("GET", CONFIGMAPS)
        assert response.status == 429
        assert response.header("retry-after") == "1"
        assert response.json()["reason"] == "TooManyRequests"
        # Non-resource requests share the read-only budget.
        assert (await limited.request("GET", "/version")).status == 429
        # Writes have their own budget.
        created = await limited.request("POST", CONFIGMAPS, body=configmap("a"))
        assert created.status == 201
    assert (await limited.request("GET", CONFIGMAPS)).status == 200


async def test_app_does_not_count_open_watches(stack: Stack) -> None:
    limiter = InflightLimiter(max_readonly=1, max_mutating=1)
    limited = with_app(stack, limiter=limiter)
    async with limited.watch(CONFIGMAPS, query="watch=true") as watch:
        assert watch.status == 200
        assert limiter.inflight(readonly=True) == 0
        assert (await limited.request("GET", CONFIGMAPS)).status == 200


async def test_app_releases_slots_after_errors(stack: Stack) -> None:
    limiter = InflightLimiter(max_readonly=1, max_mutating=1)
    limited = with_app(stack, limiter=limiter)
    assert (await limited.request("POST", CONFIGMAPS, body=b"{not json")).status == 400
    assert (await limited.request("GET", f"{CONFIGMAPS}/missing")).status == 404
    assert limiter.inflight(readonly=True) == limiter.inflight(readonly=False) == 0
    assert (await limited.request("POST", CONFIGMAPS, body=configmap("b"))).status == 201
