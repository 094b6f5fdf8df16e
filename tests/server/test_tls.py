"""Tests of kplane.server.tls against a real uvicorn HTTPS server, httpx and kubectl."""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from kplane.auth.authn import AUTHENTICATED, SYSTEM_MASTERS, UserInfo
from kplane.auth.kubeconfig import admin_kubeconfig, write_kubeconfig
from kplane.auth.pki import Pki, ensure_pki
from kplane.server.tls import (
    TLS_EXTENSION,
    CoalescingTransport,
    TlsH11Protocol,
    TlsHttpToolsProtocol,
    build_server_config,
    certificate_user,
    listening_ports,
    peer_identity,
)

KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"


async def whoami_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Answers with the user the TLS layer put in the scope, and which identity object."""
    assert scope["type"] == "http"
    identity = scope.get("extensions", {}).get(TLS_EXTENSION)
    user = certificate_user(scope)
    body = json.dumps(
        {
            "path": scope["path"],
            "user": user.name if user else None,
            "groups": list(user.groups) if user else None,
            "identity_id": id(identity),
            "has_der": bool(identity and identity["client_cert_der"]),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RunningServer:
    """A uvicorn server on an ephemeral port, in a background thread with its own loop."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{listening_ports(self.server)[0]}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("data"), hosts=[])


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, pki: Pki) -> Iterator[RunningServer]:
    config = build_server_config(
        whoami_app,
        host="127.0.0.1",
        port=0,
        pki=pki,
        http=request.param,
        lifespan="off",
        log_level="warning",
    )
    with RunningServer(config) as running:
        yield running


def client_context(pki: Pki, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert_path))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def get_json(client: httpx.Client, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200
    return response.json()


def test_client_certificate_user_reaches_the_app(server: RunningServer, pki: Pki) -> None:
    context = client_context(pki, (pki.admin_cert_path, pki.admin_key_path))
    with httpx.Client(verify=context) as client:
        first = get_json(client, server.url + "/clusters/root/api")
        second = get_json(client, server.url + "/healthz")
    assert first["user"] == "kplane-admin"
    assert first["groups"] == [SYSTEM_MASTERS, AUTHENTICATED]
    assert first["has_der"] is True
    assert first["path"] == "/clusters/root/api"
    # The same keep-alive connection hands every request the identity parsed once.
    assert second["identity_id"] == first["identity_id"]


def test_issued_certificate_user_and_groups(
    server: RunningServer, pki: Pki, tmp_path: Path
) -> None:
    cert_pem, key_pem = pki.issue_client_certificate(
        user="alice", groups=["dev"], expires_in=timedelta(hours=1)
    )
    (tmp_path / "c.crt").write_bytes(cert_pem)
    (tmp_path / "c.key").write_bytes(key_pem)
    context = client_context(pki, (tmp_path / "c.crt", tmp_path / "c.key"))
    with httpx.Client(verify=context) as client:
        body = get_json(client, server.url + "/")
    assert (body["user"], body["groups"]) == ("alice", ["dev", AUTHENTICATED])


def test_each_connection_gets_its_own_identity(server: RunningServer, pki: Pki) -> None:
    admin = client_context(pki, (pki.admin_cert_path, pki.admin_key_path))
    with httpx.Client(verify=admin) as first, httpx.Client(verify=client_context(pki)) as second:
        as_admin = get_json(first, server.url + "/")
        anonymous = get_json(second, server.url + "/")
        assert get_json(first, server.url + "/")["user"] == "kplane-admin"
    assert as_admin["user"] == "kplane-admin"
    assert anonymous["user"] is None


def test_no_client_certificate_means_no_user(server: RunningServer, pki: Pki) -> None:
    with httpx.Client(verify=client_context(pki)) as client:
        body = get_json(client, server.url + "/")
    assert body["user"] is None
    assert body["has_der"] is False


def test_certificate_from_another_ca_fails_the_handshake(
    server: RunningServer, pki: Pki, tmp_path: Path
) -> None:
    foreign = ensure_pki(tmp_path, hosts=[])
    context = client_context(pki, (foreign.admin_cert_path, foreign.admin_key_path))
    # With TLS 1.3 the client learns of the rejection on its first read, not in connect().
    with httpx.Client(verify=context) as client, pytest.raises(httpx.TransportError):
        client.get(server.url + "/")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=context) as client, pytest.raises(httpx.ConnectError):
        client.get(server.url + "/")


def test_serving_certificate_is_refused_as_a_client_certificate(
    server: RunningServer, pki: Pki
) -> None:
    context = client_context(pki, (pki.serving_cert_path, pki.serving_key_path))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=context) as client, pytest.raises(httpx.ConnectError):
        client.get(server.url + "/")


def test_server_certificate_verifies_for_localhost(server: RunningServer, pki: Pki) -> None:
    url = server.url.replace("127.0.0.1", "localhost")
    with httpx.Client(verify=client_context(pki)) as client:
        assert client.get(url + "/").status_code == 200


def test_kubectl_reaches_the_app_as_admin(server: RunningServer, pki: Pki, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "admin.kubeconfig"
    write_kubeconfig(kubeconfig, admin_kubeconfig(pki, server_url=server.url))
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "--raw", "/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["path"] == "/clusters/root/"
    assert body["user"] == "kplane-admin"
    assert body["groups"] == [SYSTEM_MASTERS, AUTHENTICATED]


def test_build_server_config(pki: Pki) -> None:
    config = build_server_config(whoami_app, host="0.0.0.0", port=6443, pki=pki)
    assert config.http is TlsHttpToolsProtocol
    assert build_server_config(whoami_app, host="h", port=1, pki=pki, http="h11").http is (
        TlsH11Protocol
    )
    assert config.loop == "uvloop"
    assert config.ssl_cert_reqs == ssl.CERT_OPTIONAL
    assert config.ssl_ca_certs == str(pki.ca_cert_path)
    assert config.ssl_certfile == str(pki.serving_cert_path)
    assert config.ssl_keyfile == str(pki.serving_key_path)
    assert config.access_log is False
    assert config.proxy_headers is False
    assert config.ws == "none"
    assert config.timeout_keep_alive > 90
    assert config.backlog >= 4096


class FakeTransport:
    def __init__(self, extra: dict[str, Any]) -> None:
        self.extra = extra

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


def test_plain_connection_has_no_certificate() -> None:
    identity = peer_identity(FakeTransport({}))  # type: ignore[arg-type]
    assert identity == {"client_cert_der": None, "user": None, "not_after": math.inf}


def test_certificate_user_refuses_a_certificate_that_expired_meanwhile() -> None:
    user = UserInfo(name="u", groups=(AUTHENTICATED,))
    identity = {"client_cert_der": b"x", "user": user, "not_after": 1000.0}
    scope = {"extensions": {TLS_EXTENSION: identity}}
    assert certificate_user(scope, now=999.0) is user
    assert certificate_user(scope, now=1001.0) is None
    assert certificate_user({}) is None
    assert certificate_user({"extensions": {}}) is None


class _RecordingTransport(asyncio.Transport):
    """The far side of a CoalescingTransport: records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


async def test_a_response_head_leaves_with_its_body() -> None:
    inner = _RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
    assert inner.writes == []
    transport.write(b"body")
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"]
    # Writes that are not a head go straight through (a watch's events are not held).
    transport.write(b"5\r\nevent\r\n")
    assert inner.writes[-1] == b"5\r\nevent\r\n"
    # Everything else is the real transport's.
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)


async def test_a_head_without_a_body_leaves_at_the_end_of_the_turn() -> None:
    inner = _RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]


async def test_closing_sends_a_held_head_first() -> None:
    inner = _RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.close()
    assert inner.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"] and inner.closed
    await asyncio.sleep(0)
    assert len(inner.writes) == 1
