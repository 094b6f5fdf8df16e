"""The ASGI application: authentication, routing and error handling for every request.

A request is parsed into a :class:`~kplane.server.request_info.RequestInfo`, its user is
authenticated, and it is handed to the resource handler or to one of the non-resource
endpoints (health, version, metrics, discovery, OpenAPI). Every failure leaves as a
Kubernetes ``Status``; an unexpected exception is logged and answered with a 500 Status
rather than a dropped connection.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from kplane.apimachinery import errors
from kplane.apimachinery.errors import StatusError
from kplane.auth.authn import UserInfo
from kplane.registry.catalog import Catalog
from kplane.registry.store import Store
from kplane.server import metrics
from kplane.server.http import Request, query_flag, send_status_error
from kplane.server.nonresource import NonResourceHandler
from kplane.server.request_info import RequestInfo, parse_request
from kplane.server.resource_handler import ResourceHandler
from kplane.server.tls import certificate_user
from kplane.server.types import Receive, Scope, Send
from kplane.storage.backend import UnavailableError
from kplane.tenancy.names import ROOT, WILDCARD
from kplane.tenancy.resolver import ClusterResolver

log = logging.getLogger(__name__)

# Probes and the version endpoint answer anyone, as upstream's public-info-viewer allows.
_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})


class KplaneApp:
    """The whole API server as one ASGI callable."""

    def __init__(self, *, store: Store, catalog: Catalog, server_address: str,
                 is_ready: Any, resolver: ClusterResolver | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.resolver = resolver
        self.resources = ResourceHandler(store=store, catalog=catalog)
        self.nonresource = NonResourceHandler(catalog=catalog, server_address=server_address,
                                              is_ready=is_ready)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        state = _ResponseState(send)
        verb = "unknown"
        resource = ""
        try:
            request = Request(scope, receive)
            info = parse_request(request.method, _raw_path(scope),
                                 watch=query_flag(request.query.get("watch")))
            verb, resource = info.verb or request.method.lower(), info.resource
            user = self._authenticate(scope)
            if user is None and info.path not in _PUBLIC_PATHS:
                raise errors.unauthorized()
            info = self._resolve_cluster(info, user)
            if info.is_resource_request:
                await self.resources.handle(request, info, state.send)
            else:
                await self.nonresource.handle(request, info, state.send)
        except StatusError as exc:
            if state.started:
                log.warning("error after the response started: %s", exc)
            else:
                await send_status_error(state.send, exc)
        except UnavailableError as exc:
            # The store is unreachable (etcd down): fail fast and let clients retry.
            log.warning("storage unavailable serving %s %s: %s", scope.get("method"),
                        scope.get("path"), exc)
            if not state.started:
                await send_status_error(state.send, errors.StatusError(
                    503, "ServiceUnavailable", f"storage is unavailable: {exc}",
                    retry_after_seconds=1, headers={"Retry-After": "1"}))
        except Exception:
            log.exception("unhandled error serving %s %s", scope.get("method"), scope.get("path"))
            if not state.started:
                await send_status_error(state.send, errors.internal_error(
                    "an internal error occurred; the server log has the details"))
        finally:
            if verb == "watch":
                metrics.count_request(verb=verb, resource=resource, code=state.status)
            else:
                metrics.observe_request(verb=verb, resource=resource, code=state.status,
                                        seconds=time.perf_counter() - started)

    def _resolve_cluster(self, info: RequestInfo, user: UserInfo | None) -> RequestInfo:
        """Turn the URL's workspace path (or cluster name) into the logical cluster name."""
        reference = info.cluster
        if reference == ROOT or self.resolver is None:
            return info
        if reference == WILDCARD:
            if info.is_resource_request and info.verb not in ("list", "watch"):
                raise errors.method_not_allowed(
                    "only list and watch are served across all logical clusters")
            if user is None or not user.is_system_master:
                raise errors.forbidden(
                    "listing across all logical clusters (/clusters/*) is reserved for "
                    "system:masters")
            return info
        cluster = self.resolver.resolve(reference)
        if cluster is None:
            raise errors.StatusError(
                404, "NotFound", f'workspace "{reference}" not found', name=reference,
                group="tenancy.kcp.io", kind="workspaces")
        return info if cluster == reference else replace(info, cluster=cluster)

    @staticmethod
    def _authenticate(scope: Scope) -> UserInfo | None:
        return certificate_user(scope)


def _raw_path(scope: Scope) -> str:
    """The path still percent-encoded: the scope's ``path`` is already decoded, and decoding
    it again would turn ``%252F`` into a "/" inside one segment."""
    raw: bytes | None = scope.get("raw_path")
    if raw:
        return raw.partition(b"?")[0].decode("utf-8", "replace")
    return quote(scope["path"], safe="/")


class _ResponseState:
    """Remembers whether (and with which code) a response has started."""

    __slots__ = ("_send", "started", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.status = 0

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
        await self._send(message)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
