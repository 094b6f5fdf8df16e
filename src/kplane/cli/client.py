"""What the workspace commands need to reach a server: the kubeconfig and a small HTTPS client.

The CLI talks to kplane only through its public HTTP API, with the credentials of a
kubeconfig, exactly as kubectl would. It finds the kubeconfig the way kubectl does
(``--kubeconfig``, then ``$KUBECONFIG``, then ``~/.kube/config``), keeps it as the plain dict
PyYAML gives, and rewrites it in place. HTTP is the standard library's ``urllib`` with an
``ssl.SSLContext`` built from the kubeconfig, so the CLI needs no extra dependency.

Every failure a user can cause surfaces as a ``CliError`` whose message is one line; the
command layer prints it and exits 1, never with a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import yaml

from kplane.auth.kubeconfig import write_kubeconfig

DEFAULT_KUBECONFIG = Path("~/.kube/config")
_REQUEST_TIMEOUT_SECONDS = 30.0
_CLUSTERS_SEGMENT = "/clusters/"


class CliError(Exception):
    """A failure to report to the user as one line on stderr, with exit code 1."""


def exit_code(command: Callable[[], None]) -> int:
    """Run one CLI command: a CliError becomes one line on stderr and exit code 1, and
    Ctrl-C (normal use while waiting for something) exit code 130 without a traceback."""
    try:
        command()
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


class ApiError(CliError):
    """The server answered with an error Status."""

    def __init__(self, *, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


# --- locating, reading and writing kubeconfig files -------------------------------------


def kubeconfig_path(explicit: str | None = None,
                    *, environ: Mapping[str, str] | None = None) -> Path:
    """The kubeconfig file kubectl would use: ``--kubeconfig``, ``$KUBECONFIG``, the default.

    kubectl merges every file listed in ``$KUBECONFIG``; the workspace commands read and
    rewrite one file, so they take the first listed file that exists (or the first listed).
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ if environ is None else environ
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    for candidate in listed:
        if candidate.exists():
            return candidate
    if listed:
        return listed[0]
    return DEFAULT_KUBECONFIG.expanduser()


def load_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"kubeconfig {str(path)!r} does not exist") from None
    except OSError as error:
        raise CliError(f"cannot read kubeconfig {str(path)!r}: {error.strerror}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CliError(f"kubeconfig {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise CliError(f"kubeconfig {str(path)!r} is not a kubeconfig")
    return config


def save_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    try:
        write_kubeconfig(path, config)
    except OSError as error:
        raise CliError(f"cannot write kubeconfig {str(path)!r}: {error.strerror}") from None


def named_entry(config: Mapping[str, Any], *, section: str, name: str) -> dict[str, Any] | None:
    """The body of entry ``name`` in ``clusters``/``contexts``/``users``, if there is one."""
    for item in config.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(section[:-1])
            return body if isinstance(body, dict) else {}
    return None


def set_named_entry(config: dict[str, Any], *, section: str, name: str,
                    body: dict[str, Any]) -> None:
    """Replace entry ``name`` of ``section`` in place, or append it, keeping the order."""
    items = config.get(section)
    if not isinstance(items, list):
        items = config[section] = []
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            item[section[:-1]] = body
            return
    items.append({"name": name, section[:-1]: body})


def current_context_name(config: Mapping[str, Any]) -> str:
    name = config.get("current-context")
    if not name:
        raise CliError("the kubeconfig has no current context")
    return str(name)


def current_context(config: Mapping[str, Any]) -> dict[str, Any]:
    name = current_context_name(config)
    context = named_entry(config, section="contexts", name=name)
    if context is None:
        raise CliError(f"current context {name!r} not found in the kubeconfig")
    return context


def current_cluster(config: Mapping[str, Any]) -> dict[str, Any]:
    cluster_name = current_context(config).get("cluster", "")
    cluster = named_entry(config, section="clusters", name=cluster_name)
    if cluster is None:
        raise CliError(f"cluster {cluster_name!r} not found in the kubeconfig")
    return cluster


def current_user(config: Mapping[str, Any]) -> dict[str, Any]:
    user_name = current_context(config).get("user", "")
    return named_entry(config, section="users", name=user_name) or {}


def current_server(config: Mapping[str, Any]) -> str:
    server = current_cluster(config).get("server")
    if not server:
        raise CliError("the current cluster of the kubeconfig has no server URL")
    return str(server)


# --- HTTPS ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: dict[str, Any]


class ApiClient:
    """Synchronous JSON requests to one server, with one kubeconfig's credentials.

    Paths are relative to the API root (``/clusters/root/apis/...``): the workspace
    commands address several workspaces through one connection setup.
    """

    def __init__(self, *, base_url: str, tls: ssl.SSLContext | None,
                 token: str | None = None, timeout: float = _REQUEST_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self._tls = tls
        self._token = token
        self._timeout = timeout

    @classmethod
    def from_kubeconfig(cls, config: Mapping[str, Any], *,
                        config_dir: Path | None = None) -> ApiClient:
        """A client for the API root of the current context's server."""
        cluster = current_cluster(config)
        user = current_user(config)
        base, _path = split_cluster_url(current_server(config))
        tls = _tls_context(cluster, user, config_dir=config_dir) if base.startswith(
            "https:") else None
        return cls(base_url=base, tls=tls, token=_bearer_token(user, config_dir=config_dir))

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path).body

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body).body

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Response:
        """Send one request; raise ApiError on an error status, CliError if unreachable."""
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout,
                                        context=self._tls) as reply:
                return Response(status=reply.status, body=_decode_object(reply.read()))
        except urllib.error.HTTPError as error:
            raise _api_error(error.code, error.read()) from None
        except urllib.error.URLError as error:
            raise CliError(f"cannot reach the server at {self.base_url}: "
                           f"{_describe_reason(error.reason)}") from None
        except (TimeoutError, OSError) as error:
            raise CliError(f"cannot reach the server at {self.base_url}: "
                           f"{_describe_reason(error)}") from None


def split_cluster_url(server: str) -> tuple[str, str | None]:
    """Split a server URL into the API root and the workspace path it points at.

    ``https://h:6443/clusters/root:acme`` gives ``("https://h:6443", "root:acme")``. A
    prefix before ``/clusters/`` (a proxy mount) stays in the root, as kcp keeps it; a URL
    without ``/clusters/`` is its own root and points at no workspace (None).
    """
    parts = urlsplit(server)
    if not parts.scheme or not parts.netloc:
        raise CliError(f"server URL {server!r} is not an absolute URL")
    prefix, marker, rest = parts.path.partition(_CLUSTERS_SEGMENT)
    path = rest.split("/", 1)[0] if marker else None
    root_path = prefix if marker else parts.path
    return urlunsplit((parts.scheme, parts.netloc, root_path.rstrip("/"), "", "")), path or None


def _decode_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _api_error(code: int, raw: bytes) -> ApiError:
    status = _decode_object(raw)
    message = status.get("message") or raw.decode("utf-8", "replace").strip() or f"HTTP {code}"
    return ApiError(code=code, reason=str(status.get("reason", "")), message=str(message))


def _describe_reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"certificate verification failed ({reason.verify_message})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _tls_context(cluster: Mapping[str, Any], user: Mapping[str, Any], *,
                 config_dir: Path | None) -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT verifies certificates and host names. As in kubectl, a
    # kubeconfig's CA replaces the system's trust store rather than adding to it.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        ca = read_pem(cluster, "certificate-authority", config_dir=config_dir)
        if ca is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            _load_certificate_authority(context, ca)
    cert = read_pem(user, "client-certificate", config_dir=config_dir)
    key = read_pem(user, "client-key", config_dir=config_dir)
    if cert is not None and key is not None:
        _load_key_pair(context, cert=cert, key=key)
    return context


def _load_certificate_authority(context: ssl.SSLContext, pem: bytes) -> None:
    try:
        context.load_verify_locations(cadata=pem.decode("ascii", "replace"))
    except ssl.SSLError as error:
        raise CliError(f"the kubeconfig's certificate authority is invalid: "
                       f"{error.reason or error}") from None


def _load_key_pair(context: ssl.SSLContext, *, cert: bytes, key: bytes) -> None:
    # ssl only loads key pairs from files: stage them in a private directory for a moment.
    with _private_directory() as directory:
        cert_file, key_file = directory / "client.crt", directory / "client.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as error:
            raise CliError(f"the kubeconfig's client certificate or key is invalid: "
                           f"{error.reason or error}") from None


@contextlib.contextmanager
def _private_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kplane-cli-") as name:
        os.chmod(name, 0o700)
        yield Path(name)


def read_pem(entry: Mapping[str, Any], field: str, *,
             config_dir: Path | None) -> bytes | None:
    """``<field>-data`` (base64) or the file ``<field>`` points at, relative to the config."""
    embedded = entry.get(f"{field}-data")
    if embedded:
        try:
            return base64.b64decode(embedded, validate=True)
        except ValueError:
            raise CliError(f"{field}-data in the kubeconfig is not valid base64") from None
    referenced = entry.get(field)
    if not referenced:
        return None
    path = Path(referenced).expanduser()
    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {field} {str(path)!r}: {error.strerror}") from None


def _bearer_token(user: Mapping[str, Any], *, config_dir: Path | None) -> str | None:
    if user.get("token"):
        return str(user["token"])
    token_file = user.get("tokenFile")
    if not token_file:
        return None
    path = Path(token_file).expanduser()
    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise CliError(f"cannot read tokenFile {str(path)!r}: {error.strerror}") from None
