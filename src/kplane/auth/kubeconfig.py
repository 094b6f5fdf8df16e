"""Kubeconfig files: how kplane hands a client everything it needs to reach a workspace.

The server writes an admin kubeconfig at start-up, and the CLI writes more (per workspace,
per issued user). They embed the CA and the client key pair as base64 ``*-data`` fields
rather than pointing at files, so one file can be copied to another machine and still
work. Kubeconfigs hold private keys, hence mode 0600 and an atomic write.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from kplane.auth.pki import Pki, write_file_atomically

ADMIN_CONTEXT = "root"
ADMIN_USER_ENTRY = "kplane-admin"
ROOT_CLUSTER_PATH = "/clusters/root"


def build_kubeconfig(
    *,
    server: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    user: str,
    context: str,
    cluster: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A ``v1`` ``Config`` with one cluster, one user and one context, made current.

    ``user`` is the name of the kubeconfig's user entry (the identity itself is in the
    certificate); ``cluster`` defaults to the context's name.
    """
    cluster_name = cluster or context
    context_body: dict[str, str] = {"cluster": cluster_name, "user": user}
    if namespace:
        context_body["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(cert_pem),
                    "client-key-data": _b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
    }


def admin_kubeconfig(pki: Pki, *, server_url: str) -> dict[str, Any]:
    """The admin kubeconfig: ``kplane-admin`` (``system:masters``) on the root workspace.

    ``server_url`` is the base ``https://HOST:PORT``; the root workspace path is appended.
    """
    cert_pem, key_pem = pki.admin_credentials()
    return build_kubeconfig(
        server=server_url.rstrip("/") + ROOT_CLUSTER_PATH,
        ca_pem=pki.ca_pem,
        cert_pem=cert_pem,
        key_pem=key_pem,
        user=ADMIN_USER_ENTRY,
        context=ADMIN_CONTEXT,
    )


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Write ``config`` as YAML, readable only by its owner, replacing any previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    write_file_atomically(path, text.encode("utf-8"), mode=0o600)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
