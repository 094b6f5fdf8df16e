"""The request/response layer: body limits, query parsing, response helpers, Warning headers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kplane.apimachinery import errors
from kplane.apimachinery.errors import StatusError
from kplane.server.body import MAX_BODY_BYTES
from kplane.server.http import (
    INT64_MAX,
    INT64_MIN,
    Request,
    query_flag,
    query_int64,
    send_bytes,
    send_json,
    send_status_error,
    warning_headers,
)
from tests.server.harness import Stack, make_scope


def request(*, query: str = "", headers: tuple[tuple[str, str], ...] = (),
            messages: list[dict[str, Any]] | None = None) -> tuple[Request, list[int]]:
    """A Request whose receive replays ``messages``; the list counts receive calls."""
    pending = list(messages or [])
    calls = [0]

    async def receive() -> dict[str, Any]:
        calls[0] += 1
        return pending.pop(0)

    scope = make_scope("POST", "/api/v1/namespaces/default/configmaps", query=query,
                       headers=headers)
    return Request(scope, receive), calls


async def too_large(req: Request) -> str:
    with pytest.raises(StatusError) as caught:
        await req.body()
    assert (caught.value.code, caught.value.reason) == (413, "RequestEntityTooLarge")
    return caught.value.message


def test_request_basics() -> None:
    req, _ = request(query="b=2&a=1&a=ignored&empty=&flag",
                     headers=(("Accept", "application/json"), ("X-Thing", "v")))
    assert req.method == "POST"
    assert req.path == "/api/v1/namespaces/default/configmaps"
    # The first value of a repeated parameter wins, as Go's url.Values.Get.
    assert req.query == {"b": "2", "a": "1", "empty": "", "flag": ""}
    assert req.header("accept") == "application/json"
    assert req.header("x-thing") == "v"
    assert req.header("missing", "dflt") == "dflt"


def test_query_values_are_percent_decoded() -> None:
    req, _ = request(query="labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29")
    assert req.query == {"labelSelector": "app=web,tier in (a,b)"}


def test_query_parameter_count_is_limited() -> None:
    request(query="&".join(f"p{i}=1" for i in range(64)))
    with pytest.raises(StatusError) as caught:
        request(query="&".join(f"p{i}=1" for i in range(65)))
    assert (caught.value.code, caught.value.message) == (400, "too many query parameters")


async def test_body_in_chunks_is_joined_and_cached() -> None:
    req, calls = request(messages=[
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ])
    assert await req.body() == b'{"a":1}'
    assert await req.body() == b'{"a":1}'
    assert calls[0] == 3


async def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    req, calls = request(headers=(("content-length", str(MAX_BODY_BYTES + 1)),))
    message = await too_large(req)
    assert message == (f"the request body is {MAX_BODY_BYTES + 1} bytes; "
                       f"the limit is {MAX_BODY_BYTES} bytes")
    assert calls[0] == 0


async def test_streamed_body_over_the_limit_is_413_without_reading_the_rest() -> None:
    chunk = b"x" * (1024 * 1024)
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(10)]
    req, calls = request(messages=messages)
    assert await too_large(req) == (
        f"the request body exceeds the limit of {MAX_BODY_BYTES} bytes")
    assert calls[0] == 4


async def test_body_of_exactly_the_limit_is_accepted() -> None:
    req, _ = request(headers=(("content-length", str(MAX_BODY_BYTES)),), messages=[
        {"type": "http.request", "body": b"x" * MAX_BODY_BYTES, "more_body": False}])
    assert len(await req.body()) == MAX_BODY_BYTES


async def test_smaller_custom_limit() -> None:
    req, _ = request(messages=[{"type": "http.request", "body": b"12345", "more_body": False}])
    with pytest.raises(StatusError) as caught:
        await req.body(limit=4)
    assert caught.value.code == 413


async def test_disconnect_while_sending_the_body_is_400() -> None:
    req, _ = request(messages=[{"type": "http.request", "body": b"{", "more_body": True},
                               {"type": "http.disconnect"}])
    with pytest.raises(StatusError) as caught:
        await req.body()
    assert caught.value.code == 400


async def test_app_refuses_a_large_declared_body_with_a_413_status(stack: Stack) -> None:
    response = await stack.request(
        "POST", "/api/v1/namespaces/default/configmaps", body=b"{}",
        headers=[("content-length", str(4 * 1024 * 1024))])
    assert response.status == 413
    status = response.json()
    assert (status["kind"], status["reason"], status["code"]) == (
        "Status", "RequestEntityTooLarge", 413)


async def test_app_refuses_a_large_chunked_body_with_a_413_status(stack: Stack) -> None:
    response = await stack.request(
        "POST", "/api/v1/namespaces/default/configmaps",
        chunks=[b'{"data":{"k":"' + b"x" * (1024 * 1024)] * 4)
    assert response.status == 413
    assert response.json()["message"] == (
        f"the request body exceeds the limit of {MAX_BODY_BYTES} bytes")


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: Any) -> None:
        self.messages.append(dict(message))


async def test_send_bytes_sets_length_and_type() -> None:
    send = Recorder()
    await send_bytes(send, 202, b"hello", content_type=b"text/plain",
                     headers=[(b"x-a", b"1")])
    assert send.messages == [
        {"type": "http.response.start", "status": 202,
         "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5"),
                     (b"x-a", b"1")]},
        {"type": "http.response.body", "body": b"hello"},
    ]


async def test_send_json() -> None:
    send = Recorder()
    await send_json(send, 200, {"a": [1]})
    assert send.messages[0]["headers"][0] == (b"content-type", b"application/json")
    assert send.messages[1]["body"] == b'{"a":[1]}'


async def test_send_status_error_carries_code_body_and_headers() -> None:
    send = Recorder()
    await send_status_error(send, errors.too_many_requests("slow down", 3))
    start, body = send.messages
    assert start["status"] == 429
    assert (b"retry-after", b"3") in start["headers"]
    status = orjson.loads(body["body"])
    assert status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "slow down", "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 3}, "code": 429,
    }


def test_warning_headers_are_299_with_quoted_text() -> None:
    assert warning_headers(['unknown field "spec.foo"', "back\\slash"]) == [
        (b"warning", b'299 - "unknown field \\"spec.foo\\""'),
        (b"warning", b'299 - "back\\\\slash"'),
    ]


def test_warning_headers_keep_utf8_and_escape_control_characters() -> None:
    [(_, value)] = warning_headers(['unknown field "a\nb\tc" caf\u00e9'])
    assert value == '299 - "unknown field \\"a\\u000ab\\u0009c\\" caf\u00e9"'.encode()
    assert b"\n" not in value


def test_warning_headers_are_capped() -> None:
    assert len(warning_headers([f"w{i}" for i in range(100)])) == 64
    assert warning_headers([]) == []


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("0", False), ("false", False), ("FALSE", False),
    ("", True), ("1", True), ("true", True), ("True", True), ("yes", True), ("no", True),
    # Upstream's Convert_Slice_string_To_bool refuses nothing: garbage is true.
    ("maybe", True), ("00", True), ("f", True),
])
def test_query_flag_follows_upstream_conversion(value: str | None, expected: bool) -> None:
    assert query_flag(value) is expected


def test_query_values_keeps_every_value_of_a_repeated_parameter() -> None:
    req, _ = request(query="dryRun=All&x=1&dryRun=Maybe&dryRun=")
    assert req.query["dryRun"] == "All"
    assert req.query_values("dryRun") == ["All", "Maybe", ""]
    assert req.query_values("missing") == []


@pytest.mark.parametrize(("raw", "expected"), [
    ("0", 0), ("5", 5), ("+5", 5), ("-5", -5), ("007", 7), (str(INT64_MAX), INT64_MAX),
    (str(INT64_MIN), INT64_MIN), ("0" * 40 + "1", 1),
])
def test_query_int64_parses_as_go_parseint(raw: str, expected: int) -> None:
    assert query_int64({"limit": raw}, "limit") == expected


def test_query_int64_of_an_absent_parameter_is_none() -> None:
    assert query_int64({}, "limit") is None


@pytest.mark.parametrize("raw", [
    "", " ", "abc", " 5", "5 ", "1_000", "0x10", "1e3", "5.0", "+", "-", "--5",
    "\u0663", "\uff15", "1\n",
])
def test_query_int64_refuses_what_parseint_refuses(raw: str) -> None:
    raw = raw.encode().decode("unicode_escape")
    with pytest.raises(StatusError) as caught:
        query_int64({"timeoutSeconds": raw}, "timeoutSeconds")
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message.startswith("timeoutSeconds: Invalid value: ")
    assert caught.value.message.endswith("must be an integer")


@pytest.mark.parametrize("raw", [
    str(INT64_MAX + 1), str(INT64_MIN - 1), "99999999999999999999999", "9" * 5000,
    "-" + "9" * 5000,
])
def test_query_int64_refuses_values_outside_int64(raw: str) -> None:
    with pytest.raises(StatusError) as caught:
        query_int64({"limit": raw}, "limit")
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert "must be an integer between -9223372036854775808 and 9223372036854775807" in (
        caught.value.message)
    assert len(caught.value.message) < 200
