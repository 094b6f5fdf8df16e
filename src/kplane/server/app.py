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
from kplane.server.audit import AuditLog
from kplane.server.bind_permission import BindPermission
from kplane.server.http import Request, query_flag, send_status_error
from kplane.server.limits import InflightLimiter
from kplane.server.nonresource import NonResourceHandler
from kplane.server.request_info import RequestInfo, parse_request
from kplane.server.resource_handler import ResourceHandler
from kplane.server.reviews import Reviews
from kplane.server.security import Security
from kplane.server.tls import certificate_user
from kplane.server.types import Receive, Scope, Send
from kplane.server.virtual_workspace import VirtualPath, VirtualWorkspaces
from kplane.server.virtual_workspace import match as match_virtual
from kplane.storage.backend import UnavailableError, ValueTooLargeError
from kplane.tenancy.names import ROOT, WILDCARD
from kplane.tenancy.resolver import ClusterResolver

log = logging.getLogger(__name__)



class KplaneApp:
    """The whole API server as one ASGI callable."""

    def __init__(self, *, store: Store, catalog: Catalog, server_address: str,
                 is_ready: Any, resolver: ClusterResolver | None = None,
                 security: Security | None = None, reviews: Reviews | None = None,
                 limiter: InflightLimiter | None = None, audit: AuditLog | None = None,
                 ) -> None:
        self.store = store
        self.catalog = catalog
        self.resolver = resolver
        # Without a Security, every authenticated user may do anything (unit tests).
        self.security = security or Security()
        self.limiter = limiter or InflightLimiter()
        self.audit = audit
        bind_permission = (BindPermission(security=self.security, resolver=resolver)
                           if resolver is not None else None)
        self.resources = ResourceHandler(store=store, catalog=catalog, reviews=reviews,
                                         bind_permission=bind_permission)
        self.nonresource = NonResourceHandler(catalog=catalog, server_address=server_address,
                                              is_ready=is_ready)
        self.virtual: VirtualWorkspaces | None = None
        if resolver is not None:
            self.virtual = VirtualWorkspaces(
                store=store, catalog=catalog, resolver=resolver, security=self.security,
                resources=self.resources, nonresource=self.nonresource)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        received = time.time()
        state = _ResponseState(send)
        verb = "unknown"
        resource = ""
        info: RequestInfo | None = None
        user: UserInfo | None = None
        impersonated: UserInfo | None = None
        workspace = ""
        request: Request | None = None
        try:
            request = Request(scope, receive)
            raw_path = _raw_path(scope)
            virtual = match_virtual(raw_path) if self.virtual is not None else None
            info = parse_request(request.method, virtual.rest if virtual else raw_path,
                                 watch=query_flag(request.query.get("watch")))
            verb, resource = info.verb or request.method.lower(), info.resource
            # Who asks and where come first, so that even a refusal for load is audited
            # with its user and workspace (upstream authenticates before limiting too).
            workspace = info.cluster
            user = await self.security.authenticate(
                certificate_user=certificate_user(scope), headers=scope["headers"],
                path=info.path)
            if virtual is not None:
                await self._serve_virtual(request, info, virtual, user, state.send)
                return
            info = self._resolve_cluster(info, user)
            with self.limiter.admit(info.verb if info.is_resource_request else "get"):
                acting = user
                if user is not None:
                    acting = self.security.impersonate(user, scope["headers"], info.cluster)
                    # The audit log names both who asked and whom they acted as.
                    impersonated = acting if acting is not user else None
                    self.security.check(acting, info, request.method, workspace=workspace)
                request.user = acting
                if info.is_resource_request:
                    await self.resources.handle(request, info, state.send)
                else:
                    await self.nonresource.handle(request, info, state.send)
        except StatusError as exc:
            if state.started:
                log.warning("error after the response started: %s", exc)
            else:
                await send_status_error(state.send, exc)
        except ValueTooLargeError as exc:
            # Under the server's own body limit but over the store's (etcd: 1.5 MiB).
            if not state.started:
                await send_status_error(state.send, errors.too_large(
                    f"the object is too large for the storage backend: {exc}"))
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
            if self.audit is not None:
                self._audit(scope, info, user, impersonated, state.status, received,
                            workspace, request)

    async def _serve_virtual(self, request: Request, info: RequestInfo, virtual: VirtualPath,
                             user: UserInfo | None, send: Send) -> None:
        assert self.virtual is not None
        with self.limiter.admit(info.verb if info.is_resource_request else "get"):
            acting = user
            if user is not None:
                acting = self.security.impersonate(user, request.scope["headers"],
                                                   info.cluster)
            request.user = acting
            await self.virtual.handle(request, info, virtual, acting, send)

    def _audit(self, scope: Scope, info: RequestInfo | None, user: UserInfo | None,
               impersonated: UserInfo | None, code: int, received: float,
               workspace: str, request: Request | None) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        uri = scope.get("path", "") + (f"?{query}" if query else "")
        client = scope.get("client") or ("", 0)
        agent = next((v.decode("latin-1") for k, v in scope["headers"]
                      if k.lower() == b"user-agent"), "")
        assert self.audit is not None
        if info is not None and info.verb == "create" and not info.name and request is not None:
            # Upstream's objectRef names the created object even at level Metadata.
            created = request.created_name()
            if created:
                info = replace(info, name=created)
        self.audit.record(info=info, user=user, impersonated_user=impersonated,
                          method=scope.get("method", ""), uri=uri,
                          code=code, source_ip=str(client[0]), user_agent=agent,
                          received=received, workspace=workspace)

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
