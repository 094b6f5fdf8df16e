"""``kplane kubeconfig``: a self-contained kubeconfig for one workspace."""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kplane.auth.authn import UserInfo, user_from_certificate
from kplane.auth.pki import ensure_pki
from kplane.cli import kubeconfig_cmd, ws
from kplane.cli.client import ApiClient, ApiError, CliError, Response
from kplane.cli.kubeconfig_cmd import Credentials, embed_files, workspace_kubeconfig
from tests.e2e.server import KUBECTL, KplaneProcess, free_port

WORKSPACES = "/apis/tenancy.kcp.io/v1alpha1/workspaces"


def source_config(tmp_path: Path, *, server: str) -> Path:
    """A kubeconfig that references its key material by relative file names."""
    (tmp_path / "ca.crt").write_bytes(b"CA PEM")
    (tmp_path / "me.crt").write_bytes(b"CERT PEM")
    (tmp_path / "me.key").write_bytes(b"KEY PEM")
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "mine", "cluster": {"server": server,
                                                  "certificate-authority": "ca.crt",
                                                  "tls-server-name": "kplane.local"}}],
        "users": [{"name": "me", "user": {"client-certificate": "me.crt",
                                          "client-key": "me.key"}}],
        "contexts": [{"name": "here", "context": {"cluster": "mine", "user": "me"}}],
    }))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class KnownWorkspaces(ApiClient):
    """Claims that exactly the given workspace paths exist."""

    def __init__(self, *paths: str) -> None:
        super().__init__(base_url="https://fake", tls=None)
        self.existing = {"/clusters/root/api"}
        for path in paths:
            parent, _sep, name = path.rpartition(":")
            self.existing |= {f"/clusters/{parent}{WORKSPACES}/{name}", f"/clusters/{path}/api"}

    def request(self, method: str, path: str, body: Any = None) -> Response:
        if path not in self.existing:
            raise ApiError(code=404, reason="NotFound", message="not found")
        return Response(status=200, body={})


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws.Session, "client",
                        lambda self: KnownWorkspaces("root:acme", "root:acme:team"))


def run_kubeconfig(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="kplane")
    kubeconfig_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["kubeconfig", *argv])
    result: int = args.handler(args)
    return result


def test_builder_keeps_tls_settings_and_replaces_only_the_server() -> None:
    config = workspace_kubeconfig(
        cluster={"server": "https://old/clusters/root", "certificate-authority-data": "Q0E=",
                 "tls-server-name": "x"},
        server="https://h:1/clusters/root:acme", context="root:acme",
        credentials=Credentials(name="me", user={"token": "t"}))
    assert config == {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "root:acme", "cluster": {
            "server": "https://h:1/clusters/root:acme", "certificate-authority-data": "Q0E=",
            "tls-server-name": "x"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "root:acme", "context": {"cluster": "root:acme", "user": "me"}}],
        "current-context": "root:acme",
    }


def test_file_references_are_embedded(tmp_path: Path) -> None:
    (tmp_path / "c.crt").write_bytes(b"C")
    entry = {"client-certificate": "c.crt", "client-key-data": b64(b"K"), "token": "t"}
    assert embed_files(entry, fields=("client-certificate", "client-key"),
                       config_dir=tmp_path) == {"client-certificate-data": b64(b"C"),
                                                "client-key-data": b64(b"K"), "token": "t"}


def test_writes_a_self_contained_file(tmp_path: Path, fake_server: None,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = source_config(tmp_path, server="https://h:6443/clusters/root:acme")
    target = tmp_path / "elsewhere" / "team.kubeconfig"
    assert run_kubeconfig("team", "-o", str(target), "--kubeconfig", str(source)) == 0
    assert capsys.readouterr() == ("", "")
    assert target.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(target.read_text()) == {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "root:acme:team", "cluster": {
            "server": "https://h:6443/clusters/root:acme:team",
            "tls-server-name": "kplane.local",
            "certificate-authority-data": b64(b"CA PEM")}}],
        "users": [{"name": "me", "user": {"client-certificate-data": b64(b"CERT PEM"),
                                          "client-key-data": b64(b"KEY PEM")}}],
        "contexts": [{"name": "root:acme:team",
                      "context": {"cluster": "root:acme:team", "user": "me"}}],
        "current-context": "root:acme:team",
    }


@pytest.mark.parametrize("spelling", ["root:acme", ":root:acme", ".."])
def test_prints_to_stdout_for_absolute_and_relative_paths(
        tmp_path: Path, fake_server: None, spelling: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = source_config(tmp_path, server="https://h:6443/clusters/root:acme:team")
    assert run_kubeconfig(spelling, "--kubeconfig", str(source)) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["current-context"] == "root:acme"
    assert printed["clusters"][0]["cluster"]["server"] == "https://h:6443/clusters/root:acme"


def test_unknown_workspace_fails_without_writing(tmp_path: Path, fake_server: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = source_config(tmp_path, server="https://h:6443/clusters/root")
    target = tmp_path / "out"
    assert run_kubeconfig("root:ghost", "-o", str(target), "--kubeconfig", str(source)) == 1
    assert capsys.readouterr() == ("", 'error: workspace "root:ghost" not found\n')
    assert not target.exists()


def test_invalid_path_fails(tmp_path: Path, fake_server: None,
                            capsys: pytest.CaptureFixture[str]) -> None:
    source = source_config(tmp_path, server="https://h:6443/clusters/root")
    assert run_kubeconfig("root:Bad", "--kubeconfig", str(source)) == 1
    assert capsys.readouterr().err == 'error: invalid workspace path "root:Bad"\n'


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    base = tmp_path_factory.mktemp("kplane-kubeconfig")
    process = KplaneProcess(data_dir=base / "data", port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.e2e
def test_kubectl_uses_the_written_kubeconfig(server: KplaneProcess, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "admin"
    shutil.copyfile(server.kubeconfig, source)
    assert ws.run(argparse.Namespace(kubeconfig=str(source), words=["create", "issued"])) == 0
    capsys.readouterr()

    target = tmp_path / "issued.kubeconfig"
    assert run_kubeconfig("root:issued", "-o", str(target), "--kubeconfig", str(source)) == 0
    assert source.read_bytes() == server.kubeconfig.read_bytes()

    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "cache")}
    namespaces = subprocess.run(
        [KUBECTL, "--kubeconfig", str(target), "get", "namespaces", "-o", "name"],
        capture_output=True, text=True, env=env, timeout=60, check=True)
    assert "namespace/default" in namespaces.stdout.split()
    context = subprocess.run(
        [KUBECTL, "--kubeconfig", str(target), "config", "current-context"],
        capture_output=True, text=True, env=env, timeout=60, check=True)
    assert context.stdout == "root:issued\n"

    assert run_kubeconfig("root:missing", "--kubeconfig", str(source)) == 1
    assert capsys.readouterr().err == 'error: workspace "root:missing" not found\n'


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)),
    ("8h", timedelta(hours=8)),
    ("7d", timedelta(days=7)),
    ("90s", timedelta(seconds=90)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    (" 8760h ", timedelta(hours=8760)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert kubeconfig_cmd.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "8", "h", "1w", "30m1h", "-5m", "1.5h", "8 h", "0s",
                                  "0h0m"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(CliError):
        kubeconfig_cmd.parse_duration(text)


def test_minted_credentials_are_signed_by_the_servers_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, hosts=[])
    minted = kubeconfig_cmd.minted_credentials(
        data_dir=tmp_path, user="carol", groups=["qa", "ops"], expires=timedelta(hours=2))
    assert minted.name == "carol"
    assert set(minted.user) == {"client-certificate-data", "client-key-data"}
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(minted.user["client-certificate-data"]))
    assert user_from_certificate(cert) == UserInfo(
        name="carol", groups=("qa", "ops", "system:authenticated"))
    ca = x509.load_pem_x509_certificate(pki.ca_cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(hours=1, minutes=58) < lifetime <= timedelta(hours=2)
    key = serialization.load_pem_private_key(
        base64.b64decode(minted.user["client-key-data"]), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def test_minting_without_a_ca_fails(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no kplane CA"):
        kubeconfig_cmd.minted_credentials(data_dir=tmp_path, user="carol", groups=[],
                                          expires=timedelta(hours=1))
    assert not (tmp_path / "pki").exists()


def test_minting_an_impossible_name_fails(tmp_path: Path) -> None:
    ensure_pki(tmp_path, hosts=[])
    with pytest.raises(CliError, match="cannot mint a certificate"):
        kubeconfig_cmd.minted_credentials(data_dir=tmp_path, user="x" * 65, groups=[],
                                          expires=timedelta(hours=1))


def test_user_flag_writes_minted_credentials(tmp_path: Path, fake_server: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ensure_pki(tmp_path / "data", hosts=[])
    source = source_config(tmp_path, server="https://h:6443/clusters/root:acme")
    assert run_kubeconfig("team", "--kubeconfig", str(source), "--user", "dave",
                          "--group", "qa", "--expires", "30m",
                          "--data-dir", str(tmp_path / "data")) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    (entry,) = printed["users"]
    assert entry["name"] == "dave"
    assert printed["contexts"][0]["context"]["user"] == "dave"
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(entry["user"]["client-certificate-data"]))
    assert user_from_certificate(cert) == UserInfo(
        name="dave", groups=("qa", "system:authenticated"))


def test_bad_expires_flag_fails_cleanly(tmp_path: Path, fake_server: None,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ensure_pki(tmp_path / "data", hosts=[])
    source = source_config(tmp_path, server="https://h:6443/clusters/root:acme")
    assert run_kubeconfig("team", "--kubeconfig", str(source), "--user", "dave",
                          "--expires", "forever", "--data-dir", str(tmp_path / "data")) == 1
    assert capsys.readouterr().err == \
        "error: invalid duration 'forever': use e.g. 30m, 8h or 7d\n"
