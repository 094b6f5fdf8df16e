"""The ASGI app: authentication, routing, and every failure leaving as a Status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from kplane.apimachinery import errors
from kplane.server.tls import TLS_EXTENSION
from kplane.server.types import Message
from tests.server.harness import Stack, collect, configmap, make_scope

CMS = "/api/v1/namespaces/default/configmaps"


async def call(stack: Stack, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await asyncio.wait_for(stack.app(scope, receive, send), 5.0)
    return sent


async def test_status_error_becomes_a_status_body_with_its_code(stack: Stack) -> None:
    response = await stack.request("GET", f"{CMS}/missing")
    assert response.status == 404
    assert response.header("content-type") == "application/json"
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "missing" not found', "reason": "NotFound",
        "details": {"name": "missing", "kind": "configmaps"}, "code": 404,
    }


async def test_status_error_headers_are_sent(stack: Stack,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    async def throttled(*args: Any) -> None:
        raise errors.too_many_requests("slow down", 7)

    monkeypatch.setattr(stack.app.resources, "handle", throttled)
    response = await stack.request("GET", CMS)
    assert (response.status, response.header("retry-after")) == (429, "7")


async def test_unexpected_exception_is_a_500_status(stack: Stack,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(stack.app.resources, "handle", broken)
    with caplog.at_level(logging.ERROR, logger="kplane.server.app"):
        response = await stack.request("GET", CMS)
    assert response.status == 500
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "an internal error occurred; the server log has the details",
        "reason": "InternalError", "code": 500,
    }
    assert "boom" not in response.body.decode()
    [record] = [r for r in caplog.records if r.name == "kplane.server.app"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "boom"


async def test_failure_after_the_response_started_sends_no_second_start(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    async def half(request: Any, info: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-stream")

    monkeypatch.setattr(stack.app.resources, "handle", half)
    sent = await call(stack, make_scope("GET", CMS))
    assert [m["type"] for m in sent] == ["http.response.start"]


@pytest.mark.parametrize("path", [
    "/api", "/apis", "/api/v1", f"{CMS}", "/openapi/v3", "/metrics",
    "/clusters/root/api/v1/namespaces", "/nope",
])
async def test_requests_without_a_user_are_401(stack: Stack, path: str) -> None:
    response = await stack.request("GET", path, user=None)
    assert response.status == 401
    assert response.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
    }


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version",
                                  "/clusters/root/version"])
async def test_public_paths_answer_without_a_user(stack: Stack, path: str) -> None:
    assert (await stack.request("GET", path, user=None)).status == 200


async def test_a_write_without_a_user_changes_nothing(stack: Stack) -> None:
    revision = await stack.backend.current_revision()
    response = await stack.request("POST", CMS, body=configmap("a"), user=None)
    assert response.status == 401
    assert await stack.backend.current_revision() == revision


async def test_expired_certificate_is_401(stack: Stack) -> None:
    scope = make_scope("GET", CMS)
    scope["extensions"][TLS_EXTENSION] = {**scope["extensions"][TLS_EXTENSION],
                                          "not_after": 1.0}
    response = collect(await call(stack, scope))
    assert response.status == 401


async def test_the_encoded_path_is_decoded_once(stack: Stack) -> None:
    assert (await stack.request("POST", CMS, body=configmap("a"))).status == 201
    scope = make_scope("GET", f"{CMS}/a", raw_path=f"{CMS}/%61")
    assert collect(await call(stack, scope)).status == 200
    # "%2561" is the name "%61" (no such object), not "a".
    scope = make_scope("GET", f"{CMS}/%61", raw_path=f"{CMS}/%2561")
    assert collect(await call(stack, scope)).status == 404
    # An encoded slash never splits or joins segments.
    scope = make_scope("GET", f"{CMS}/a", raw_path="/api/v1/namespaces/default%2Fconfigmaps/a")
    response = collect(await call(stack, scope))
    assert (response.status, response.json()["message"]) == (
        404, "the server could not find the requested resource")


async def test_without_raw_path_the_decoded_path_is_used(stack: Stack) -> None:
    assert (await stack.request("POST", CMS, body=configmap("a"))).status == 201
    scope = make_scope("GET", f"{CMS}/a")
    del scope["raw_path"]
    assert collect(await call(stack, scope)).status == 200


async def test_query_string_in_raw_path_is_ignored(stack: Stack) -> None:
    scope = make_scope("GET", "/version", raw_path="/version?x=1")
    assert collect(await call(stack, scope)).status == 200


async def test_lifespan_protocol(stack: Stack) -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await asyncio.wait_for(stack.app({"type": "lifespan"}, receive, send), 1.0)
    assert sent == [{"type": "lifespan.startup.complete"},
                    {"type": "lifespan.shutdown.complete"}]


async def test_websocket_scopes_are_ignored(stack: Stack) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("must not read")

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await stack.app({"type": "websocket", "path": "/"}, receive, send)
    assert sent == []
