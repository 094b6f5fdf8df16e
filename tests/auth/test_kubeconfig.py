"""Tests of kplane.auth.kubeconfig, including that the real kubectl reads what we write."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from kplane.auth.kubeconfig import admin_kubeconfig, build_kubeconfig, write_kubeconfig
from kplane.auth.pki import Pki, ensure_pki

KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("data"), hosts=[])


def kubectl_config(path: Path, *args: str) -> str:
    result = subprocess.run(
        [str(KUBECTL), "config", *args, "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_build_kubeconfig_embeds_everything_base64() -> None:
    config = build_kubeconfig(
        server="https://h:1/clusters/root",
        ca_pem=b"CA",
        cert_pem=b"CERT",
        key_pem=b"KEY",
        user="u",
        context="ctx",
    )
    assert config == {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": "ctx",
                "cluster": {
                    "server": "https://h:1/clusters/root",
                    "certificate-authority-data": base64.b64encode(b"CA").decode(),
                },
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {
                    "client-certificate-data": base64.b64encode(b"CERT").decode(),
                    "client-key-data": base64.b64encode(b"KEY").decode(),
                },
            }
        ],
        "contexts": [{"name": "ctx", "context": {"cluster": "ctx", "user": "u"}}],
        "current-context": "ctx",
    }


def test_explicit_cluster_name_and_namespace() -> None:
    config = build_kubeconfig(
        server="https://h:1",
        ca_pem=b"CA",
        cert_pem=b"C",
        key_pem=b"K",
        user="u",
        context="ctx",
        cluster="clu",
        namespace="team",
    )
    assert config["clusters"][0]["name"] == "clu"
    assert config["contexts"][0]["context"] == {"cluster": "clu", "user": "u", "namespace": "team"}


def test_write_kubeconfig_is_private_yaml(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "config"
    config = build_kubeconfig(
        server="https://h:1", ca_pem=b"A", cert_pem=b"B", key_pem=b"C", user="u", context="c"
    )
    write_kubeconfig(path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == config
    write_kubeconfig(path, {**config, "current-context": "other"})
    assert yaml.safe_load(path.read_text())["current-context"] == "other"
    assert [p.name for p in path.parent.iterdir()] == ["config"]


def test_admin_kubeconfig_targets_the_root_workspace(pki: Pki) -> None:
    config = admin_kubeconfig(pki, server_url="https://127.0.0.1:6443/")
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443/clusters/root"
    assert config["current-context"] == "root"
    assert config["contexts"][0]["context"] == {"cluster": "root", "user": "kplane-admin"}
    user = config["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == pki.admin_cert_path.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == pki.admin_key_path.read_bytes()


def test_kubectl_parses_the_admin_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "admin.kubeconfig"
    write_kubeconfig(path, admin_kubeconfig(pki, server_url="https://127.0.0.1:6443"))
    view = json.loads(kubectl_config(path, "view", "--raw", "-o", "json"))
    assert view["current-context"] == "root"
    cluster = view["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443/clusters/root"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_pem
    user = view["users"][0]["user"]
    assert base64.b64decode(user["client-key-data"]) == pki.admin_key_path.read_bytes()
    assert kubectl_config(path, "current-context").strip() == "root"
