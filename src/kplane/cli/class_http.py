"""A thread-safe JSON client that keeps one HTTPS connection open per thread.

``kplane class`` sends a few thousand requests to set up a class in seconds. The CLI's
``ApiClient`` opens a connection (and a TLS handshake) per request, which is fine for
``kplane ws`` but would dominate here; this client reuses the same kubeconfig credentials
over persistent HTTP/1.1 connections, one per worker thread, so requests from a thread
pool run in parallel without sharing a socket.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from kplane.cli.client import ApiClient, ApiError, CliError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_TIMEOUT_SECONDS = 30.0
# The server answers 429 beyond its in-flight limits; a short pause lets it drain.
_TOO_MANY_REQUESTS = 429
_MAX_THROTTLE_RETRIES = 20
_THROTTLE_PAUSE_SECONDS = 0.2
# A kept-alive connection the server closed while idle fails on first use: retry once.
_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError,
                            ConnectionResetError, http.client.CannotSendRequest)


class KeepAliveClient:
    """JSON requests to one API root, with persistent connections (one per thread)."""

    def __init__(self, *, base_url: str, tls: ssl.SSLContext | None, token: str | None,
                 timeout: float = _TIMEOUT_SECONDS) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._tls = tls
        self._token = token
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    @classmethod
    def from_kubeconfig(cls, config: Mapping[str, Any], *,
                        config_dir: Path | None) -> KeepAliveClient:
        # ApiClient already knows how to turn a kubeconfig into TLS settings and a token;
        # reuse its result rather than a second reading of the kubeconfig rules.
        api = ApiClient.from_kubeconfig(config, config_dir=config_dir)
        return cls(base_url=api.base_url, tls=api._tls, token=api._token)

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body)

    def delete(self, path: str) -> dict[str, Any]:
        return self.request("DELETE", path)

    def patch(self, path: str, body: Mapping[str, Any], *,
              content_type: str = MERGE_PATCH) -> dict[str, Any]:
        return self.request("PATCH", path, body, content_type=content_type)

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                content_type: str = JSON) -> dict[str, Any]:
        """Send one request; raise ApiError on an error status, CliError if unreachable."""
        data = orjson.dumps(body) if body is not None else None
        headers = {"Accept": JSON}
        if data is not None:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for _attempt in range(_MAX_THROTTLE_RETRIES):
            status, raw = self._exchange(method, self._prefix + path, data, headers)
            if status != _TOO_MANY_REQUESTS:
                break
            time.sleep(_THROTTLE_PAUSE_SECONDS)
        decoded = _decode(raw)
        if status >= 400:
            message = decoded.get("message") or raw.decode("utf-8", "replace").strip()
            raise ApiError(code=status, reason=str(decoded.get("reason", "")),
                           message=str(message or f"HTTP {status}"))
        return decoded

    def _exchange(self, method: str, path: str, data: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            connection, reused = self._connection()
            try:
                connection.request(method, path, body=data, headers=headers)
                reply = connection.getresponse()
                return reply.status, reply.read()
            except _STALE_CONNECTION_ERRORS as error:
                self._forget_connection()
                if not reused or attempt:
                    raise self._unreachable(error) from None
            except (OSError, http.client.HTTPException) as error:
                self._forget_connection()
                raise self._unreachable(error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, error: BaseException) -> CliError:
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = f"certificate verification failed ({error.verify_message})"
        else:
            reason = str(error) or type(error).__name__
        return CliError(f"cannot reach the server at {self.base_url}: {reason}")

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(self._host, self._port,
                                                     timeout=self._timeout, context=self._tls)
        else:
            connection = http.client.HTTPConnection(self._host, self._port,
                                                    timeout=self._timeout)
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection, False

    def _forget_connection(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _decode(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
