"""Reading kubeconfigs into URL, TLS context and token, and the small naming helpers
(Resource, ObjectKey, cluster_of); no server needed (the client tests use these against one)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from kplane.auth.pki import Pki, ensure_pki
from kplane.sdk import CLUSTER_ANNOTATION, Kubeconfig, KubeconfigError, ObjectKey, Resource
from kplane.sdk import cluster_of as cluster_of_
from kplane.sdk.kubeconfig import split_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"), hosts=["127.0.0.1"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def config(pki: Pki, **user: Any) -> dict[str, Any]:
    cert, key = pki.admin_credentials()
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "one",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://127.0.0.1:1/clusters/root:a/",
                                       "certificate-authority-data": b64(pki.ca_pem)}},
            {"name": "c2", "cluster": {"server": "https://proxy.example/k/clusters/root",
                                       "insecure-skip-tls-verify": True}},
        ],
        "users": [{"name": "u", "user": user or {"client-certificate-data": b64(cert),
                                                  "client-key-data": b64(key)}}],
        "contexts": [{"name": "one", "context": {"cluster": "c1", "user": "u",
                                                 "namespace": "team"}},
                     {"name": "two", "context": {"cluster": "c2", "user": "u"}}],
    }


def test_the_current_context_is_resolved(pki: Pki) -> None:
    loaded = Kubeconfig.from_dict(config(pki))
    assert loaded.server == "https://127.0.0.1:1/clusters/root:a"
    assert loaded.server_root == "https://127.0.0.1:1"
    assert loaded.workspace == "root:a"
    assert loaded.namespace == "team"
    assert loaded.token is None
    assert loaded.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert loaded.ssl_context.check_hostname
    assert len(loaded.ssl_context.get_ca_certs()) == 1


def test_another_context_can_be_named(pki: Pki) -> None:
    loaded = Kubeconfig.from_dict(config(pki), context="two")
    assert loaded.server_root == "https://proxy.example/k"
    assert loaded.workspace == "root"
    assert loaded.ssl_context.verify_mode == ssl.CERT_NONE
    with pytest.raises(KubeconfigError, match="context 'three' not found"):
        Kubeconfig.from_dict(config(pki), context="three")


def test_file_forms_are_relative_to_the_kubeconfig(pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.admin_credentials()
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    (tmp_path / "me.pem").write_bytes(cert)
    (tmp_path / "me.key").write_bytes(key)
    (tmp_path / "token").write_text("abc\n")
    raw = config(pki, **{"client-certificate": "me.pem", "client-key": "me.key",
                         "tokenFile": "token"})
    cluster = raw["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["certificate-authority"] = "ca.pem"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(raw))
    loaded = Kubeconfig.load(tmp_path / "kubeconfig")
    assert loaded.token == "abc"
    assert len(loaded.ssl_context.get_ca_certs()) == 1


@pytest.mark.parametrize(("user", "message"), [
    ({"client-certificate-data": "not base64!"}, "not valid base64"),
    ({"client-certificate-data": b64(b"x")}, "needs its key"),
    ({"client-certificate-data": b64(b"x"), "client-key-data": b64(b"y")},
     "invalid client certificate"),
    ({"client-certificate": "/nonexistent/cert", "client-key": "k"}, "cannot read"),
    ({"tokenFile": "/nonexistent/token"}, "cannot read tokenFile"),
])
def test_bad_credentials_are_reported(pki: Pki, user: dict[str, Any], message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        Kubeconfig.from_dict(config(pki, **user))


def test_a_bad_certificate_authority_is_reported(pki: Pki) -> None:
    raw = config(pki)
    raw["clusters"][0]["cluster"]["certificate-authority-data"] = b64(b"not a certificate")
    with pytest.raises(KubeconfigError, match="invalid certificate authority"):
        Kubeconfig.from_dict(raw)


def test_unusable_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        Kubeconfig.load(tmp_path / "missing")
    (tmp_path / "list").write_text("- a\n- b\n")
    with pytest.raises(KubeconfigError, match="is not a kubeconfig"):
        Kubeconfig.load(tmp_path / "list")
    (tmp_path / "empty").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config"}))
    with pytest.raises(KubeconfigError, match="no current context"):
        Kubeconfig.load(tmp_path / "empty")


@pytest.mark.parametrize(("server", "root", "path"), [
    ("https://h:6443", "https://h:6443", None),
    ("https://h:6443/", "https://h:6443", None),
    ("https://h:6443/clusters/root", "https://h:6443", "root"),
    ("https://h:6443/clusters/root:a:b/", "https://h:6443", "root:a:b"),
    ("https://h/services/apiexport/abc/pg", "https://h/services/apiexport/abc/pg", None),
    ("https://h/services/apiexport/abc/pg/clusters/*", "https://h/services/apiexport/abc/pg",
     "*"),
])
def test_split_server(server: str, root: str, path: str | None) -> None:
    assert split_server(server) == (root, path)


def test_resources_and_keys() -> None:
    secrets = Resource(group="", version="v1", plural="secrets")
    widgets = Resource("example.io", "v1alpha1", "widgets", namespaced=False)
    assert (secrets.api_version, secrets.api_prefix) == ("v1", "/api/v1")
    assert (widgets.api_version, widgets.api_prefix) == (
        "example.io/v1alpha1", "/apis/example.io/v1alpha1")
    assert str(widgets) == "widgets.example.io"
    obj = {"metadata": {"name": "n", "namespace": "ns",
                        "annotations": {CLUSTER_ANNOTATION: "abc"}}}
    assert cluster_of_(obj) == "abc"
    assert cluster_of_({"metadata": {"name": "n"}}) == ""
    assert cluster_of_({}) == ""
    key = ObjectKey.of(obj)
    assert key == ObjectKey("abc", "ns", "n")
    assert str(key) == "abc|ns/n"
    assert {key: 1}[ObjectKey("abc", "ns", "n")] == 1
    with pytest.raises(AttributeError):
        key.name = "other"  # type: ignore[misc]
