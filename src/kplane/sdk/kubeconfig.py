"""Reading a kubeconfig into what an HTTPS client needs: a URL, a TLS context, a token.

Both forms kubectl accepts are supported: ``certificate-authority-data`` /
``client-certificate-data`` / ``client-key-data`` (base64, as kplane writes them) and the
file forms, relative to the kubeconfig's directory. Python's ``ssl`` loads a key pair only
from files, so embedded ones are staged in a private temporary directory for the moment it
takes to load them.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

_CLUSTERS_SEGMENT = "/clusters/"


class KubeconfigError(ValueError):
    """The kubeconfig is missing, malformed, or names something it does not contain."""


@dataclass(frozen=True)
class Kubeconfig:
    """The current (or a named) context of a kubeconfig, resolved."""

    server: str
    ssl_context: ssl.SSLContext
    token: str | None = None
    namespace: str = ""

    @property
    def server_root(self) -> str:
        """``server`` without its ``/clusters/<path>`` suffix: the URL cluster-aware calls
        and ``Client.with_base`` build on."""
        return split_server(self.server)[0]

    @property
    def workspace(self) -> str | None:
        """The workspace path ``server`` points at (``root:acme``), if any."""
        return split_server(self.server)[1]

    @classmethod
    def load(cls, path: str | os.PathLike[str], context: str | None = None) -> Kubeconfig:
        file = Path(path).expanduser()
        try:
            config = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as error:
            raise KubeconfigError(f"cannot read kubeconfig {str(file)!r}: {error}") from None
        except yaml.YAMLError as error:
            raise KubeconfigError(f"kubeconfig {str(file)!r} is not YAML: {error}") from None
        if not isinstance(config, dict):
            raise KubeconfigError(f"kubeconfig {str(file)!r} is not a kubeconfig")
        return cls.from_dict(config, context=context, base_dir=file.parent)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, context: str | None = None,
                  base_dir: Path | None = None) -> Kubeconfig:
        """Resolve ``context`` (default: ``current-context``) of an already parsed kubeconfig;
        relative file references are taken relative to ``base_dir``."""
        name = context or config.get("current-context")
        if not name:
            raise KubeconfigError("the kubeconfig has no current context")
        ctx = _entry(config, "contexts", str(name))
        cluster = _entry(config, "clusters", str(ctx.get("cluster", "")))
        user_name = ctx.get("user")
        user = _entry(config, "users", str(user_name)) if user_name else {}
        server = cluster.get("server")
        if not server:
            raise KubeconfigError(f"cluster of context {name!r} has no server URL")
        return cls(server=str(server).rstrip("/"),
                   ssl_context=_ssl_context(cluster, user, base_dir),
                   token=_token(user, base_dir),
                   namespace=str(ctx.get("namespace") or ""))


def split_server(server: str) -> tuple[str, str | None]:
    """``https://h:6443/clusters/root:a`` -> (``https://h:6443``, ``root:a``); a URL with no
    ``/clusters/`` segment is its own root and names no workspace."""
    parts = urlsplit(server)
    prefix, marker, rest = parts.path.partition(_CLUSTERS_SEGMENT)
    root_path = prefix if marker else parts.path
    root = urlunsplit((parts.scheme, parts.netloc, root_path.rstrip("/"), "", ""))
    path = rest.split("/", 1)[0] if marker else ""
    return root, path or None


def _entry(config: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    for item in config.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(section[:-1])
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"{section[:-1]} {name!r} not found in the kubeconfig")


def _read(entry: Mapping[str, Any], field: str, base_dir: Path | None) -> bytes | None:
    embedded = entry.get(f"{field}-data")
    if embedded:
        try:
            return base64.b64decode(embedded, validate=True)
        except ValueError:
            raise KubeconfigError(f"{field}-data is not valid base64") from None
    referenced = entry.get(field)
    if not referenced:
        return None
    path = _resolve(str(referenced), base_dir)
    try:
        return path.read_bytes()
    except OSError as error:
        raise KubeconfigError(f"cannot read {field} {str(path)!r}: {error}") from None


def _resolve(name: str, base_dir: Path | None) -> Path:
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any],
                 base_dir: Path | None) -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT verifies certificates and host names. As in kubectl, a
    # kubeconfig's CA replaces the system's trust store rather than adding to it.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        ca = _read(cluster, "certificate-authority", base_dir)
        if ca is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            try:
                context.load_verify_locations(cadata=ca.decode("ascii", "replace"))
            except ssl.SSLError as error:
                raise KubeconfigError(f"invalid certificate authority: {error}") from None
    cert = _read(user, "client-certificate", base_dir)
    key = _read(user, "client-key", base_dir)
    if cert is not None and key is not None:
        _load_key_pair(context, cert, key)
    elif cert is not None or key is not None:
        raise KubeconfigError("a client certificate needs its key and vice versa")
    return context


def _load_key_pair(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="kplane-sdk-") as name:
        os.chmod(name, 0o700)
        cert_file, key_file = Path(name) / "client.crt", Path(name) / "client.key"
        cert_file.write_bytes(cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as error:
            raise KubeconfigError(f"invalid client certificate or key: {error}") from None


def _token(user: Mapping[str, Any], base_dir: Path | None) -> str | None:
    if user.get("token"):
        return str(user["token"])
    token_file = user.get("tokenFile")
    if not token_file:
        return None
    path = _resolve(str(token_file), base_dir)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as error:
        raise KubeconfigError(f"cannot read tokenFile {str(path)!r}: {error}") from None
