"""The CLI's kubeconfig handling and HTTPS client, without a kplane server."""

from __future__ import annotations

import base64
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kplane.auth.kubeconfig import admin_kubeconfig
from kplane.auth.pki import Pki, ensure_pki
from kplane.cli.client import (
    ApiClient,
    ApiError,
    CliError,
    current_server,
    kubeconfig_path,
    load_kubeconfig,
    named_entry,
    read_pem,
    save_kubeconfig,
    set_named_entry,
    split_cluster_url,
)
from tests.e2e.server import free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"), hosts=["127.0.0.1"])


def test_explicit_kubeconfig_wins_over_the_environment(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "env")}
    assert kubeconfig_path(str(tmp_path / "flag"), environ=env) == tmp_path / "flag"


def test_first_existing_file_of_kubeconfig_variable_is_used(tmp_path: Path) -> None:
    (tmp_path / "second").write_text("{}")
    listed = os.pathsep.join([str(tmp_path / "missing"), str(tmp_path / "second")])
    assert kubeconfig_path(None, environ={"KUBECONFIG": listed}) == tmp_path / "second"


def test_first_listed_file_when_none_exists(tmp_path: Path) -> None:
    listed = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    assert kubeconfig_path(None, environ={"KUBECONFIG": listed}) == tmp_path / "a"


def test_default_kubeconfig_is_in_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path(None, environ={}) == tmp_path / ".kube" / "config"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("https://127.0.0.1:6443/clusters/root", ("https://127.0.0.1:6443", "root")),
        ("https://h:1/clusters/root:a:b/", ("https://h:1", "root:a:b")),
        ("https://h:1/proxy/clusters/root:a", ("https://h:1/proxy", "root:a")),
        ("https://h:1", ("https://h:1", None)),
        ("https://h:1/some/path/", ("https://h:1/some/path", None)),
    ],
)
def test_split_cluster_url(server: str, expected: tuple[str, str | None]) -> None:
    assert split_cluster_url(server) == expected


def test_split_cluster_url_rejects_relative_urls() -> None:
    with pytest.raises(CliError, match="not an absolute URL"):
        split_cluster_url("/clusters/root")


def test_named_entries_are_replaced_in_place_or_appended() -> None:
    config: dict[str, Any] = {"clusters": [{"name": "a", "cluster": {"server": "x"}}]}
    set_named_entry(config, section="clusters", name="a", body={"server": "y"})
    set_named_entry(config, section="clusters", name="b", body={"server": "z"})
    set_named_entry(config, section="contexts", name="c", body={"cluster": "b"})
    assert config == {
        "clusters": [{"name": "a", "cluster": {"server": "y"}},
                     {"name": "b", "cluster": {"server": "z"}}],
        "contexts": [{"name": "c", "context": {"cluster": "b"}}],
    }
    assert named_entry(config, section="clusters", name="b") == {"server": "z"}
    assert named_entry(config, section="users", name="b") is None


def test_current_server_follows_the_current_context() -> None:
    config = {
        "current-context": "two",
        "contexts": [{"name": "one", "context": {"cluster": "c1"}},
                     {"name": "two", "context": {"cluster": "c2"}}],
        "clusters": [{"name": "c1", "cluster": {"server": "https://one"}},
                     {"name": "c2", "cluster": {"server": "https://two"}}],
    }
    assert current_server(config) == "https://two"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "no current context"),
        ({"current-context": "x"}, "current context 'x' not found"),
        ({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c"}}]},
         "cluster 'c' not found"),
    ],
)
def test_broken_kubeconfigs_are_clear_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(CliError, match=message):
        current_server(config)


def test_load_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="does not exist"):
        load_kubeconfig(tmp_path / "nope")
    (tmp_path / "bad").write_text("a: [")
    with pytest.raises(CliError, match="not valid YAML"):
        load_kubeconfig(tmp_path / "bad")
    (tmp_path / "list").write_text("- 1\n")
    with pytest.raises(CliError, match="is not a kubeconfig"):
        load_kubeconfig(tmp_path / "list")


def test_save_then_load_round_trips_with_private_mode(tmp_path: Path) -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "x"}
    save_kubeconfig(tmp_path / "k", config)
    assert load_kubeconfig(tmp_path / "k") == config
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_pem_from_data_or_from_a_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"PEM")
    assert read_pem({"certificate-authority-data": base64.b64encode(b"DATA").decode()},
                    "certificate-authority", config_dir=tmp_path) == b"DATA"
    assert read_pem({"certificate-authority": "ca.crt"}, "certificate-authority",
                    config_dir=tmp_path) == b"PEM"
    assert read_pem({}, "certificate-authority", config_dir=tmp_path) is None
    with pytest.raises(CliError, match="cannot read certificate-authority"):
        read_pem({"certificate-authority": "gone.crt"}, "certificate-authority",
                 config_dir=tmp_path)


def test_client_targets_the_api_root_of_the_current_server(pki: Pki) -> None:
    config = admin_kubeconfig(pki, server_url="https://127.0.0.1:6443")
    assert ApiClient.from_kubeconfig(config).base_url == "https://127.0.0.1:6443"


def test_the_kubeconfig_ca_is_the_only_trust_anchor(pki: Pki) -> None:
    # As in kubectl: a server certificate from a public CA must not pass for kplane's.
    client = ApiClient.from_kubeconfig(admin_kubeconfig(pki, server_url="https://127.0.0.1:1"))
    assert client._tls is not None
    trusted = client._tls.get_ca_certs()
    assert [dict(c["subject"][0])["commonName"] for c in trusted] == ["kplane-ca"]


def test_invalid_embedded_ca_is_a_clear_error(pki: Pki) -> None:
    config = admin_kubeconfig(pki, server_url="https://127.0.0.1:6443")
    config["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").decode()
    with pytest.raises(CliError, match="certificate authority is invalid"):
        ApiClient.from_kubeconfig(config)


def test_unreachable_server_is_a_clear_error(pki: Pki) -> None:
    port = free_port()
    client = ApiClient.from_kubeconfig(
        admin_kubeconfig(pki, server_url=f"https://127.0.0.1:{port}"))
    with pytest.raises(CliError) as caught:
        client.get("/clusters/root/api")
    assert str(caught.value) == (f"cannot reach the server at https://127.0.0.1:{port}: "
                                 "Connection refused")


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers from a table and remembers what it was asked."""

    seen: list[tuple[str, str, dict[str, Any] | None, str | None]] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = orjson.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, self.path, body, self.headers.get("Authorization")))
        if self.path == "/missing":
            status, reply = 404, {"kind": "Status", "reason": "NotFound",
                                  "message": 'workspaces "x" not found', "code": 404}
        else:
            status, reply = 201, {"kind": "Thing", "echo": body}
        data = orjson.dumps(reply)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def plain_server() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_requests_send_json_and_the_bearer_token(plain_server: str) -> None:
    client = ApiClient(base_url=plain_server, tls=None, token="secret")
    assert client.post("/things", {"a": 1}) == {"kind": "Thing", "echo": {"a": 1}}
    assert _Recorder.seen == [("POST", "/things", {"a": 1}, "Bearer secret")]


def test_error_status_becomes_api_error_with_its_message(plain_server: str) -> None:
    client = ApiClient(base_url=plain_server, tls=None)
    with pytest.raises(ApiError) as caught:
        client.get("/missing")
    assert (caught.value.code, caught.value.reason, str(caught.value)) == (
        404, "NotFound", 'workspaces "x" not found')


def test_token_file_is_read_relative_to_the_kubeconfig(tmp_path: Path,
                                                        plain_server: str) -> None:
    (tmp_path / "token").write_text("from-file\n")
    config = yaml.safe_load(f"""
current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "{plain_server}/clusters/root"}}}}]
users: [{{name: u, user: {{tokenFile: token}}}}]
""")
    client = ApiClient.from_kubeconfig(config, config_dir=tmp_path)
    client.get("/x")
    assert _Recorder.seen[-1][3] == "Bearer from-file"
