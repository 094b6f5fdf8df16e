"""The endpoints that are not resources: health, version, metrics, discovery and OpenAPI.

Discovery and OpenAPI documents depend only on the set of resource types a logical cluster
serves, so they are built once per distinct set and served as cached bytes.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from kplane import __version__
from kplane.apimachinery import errors
from kplane.apimachinery.builtin_schemas import KUBERNETES_VERSION
from kplane.registry.catalog import Catalog, ServedTypes
from kplane.registry.resources import ResourceType
from kplane.server import discovery, metrics, openapi
from kplane.server.http import Request, send_bytes
from kplane.server.request_info import RequestInfo
from kplane.server.types import Send

_MAX_CACHED_DOCUMENTS = 1024
_MAJOR, _MINOR, _PATCH = KUBERNETES_VERSION.lstrip("v").split(".")


def version_info() -> dict[str, str]:
    return {
        "major": _MAJOR,
        "minor": _MINOR,
        "gitVersion": f"{KUBERNETES_VERSION}+kplane-{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def _openapi_group_version(key: str) -> str | None:
    """``api/v1`` -> ``v1``, ``apis/<g>/<v>`` -> ``<g>/<v>``; any other key names no document
    (``apis/v1`` is not the core group, nor is a bare ``v1``)."""
    parts = key.split("/")
    if len(parts) == 2 and parts[0] == "api":
        return parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return f"{parts[1]}/{parts[2]}"
    return None


class NonResourceHandler:
    def __init__(self, *, catalog: Catalog, server_address: str,
                 is_ready: Callable[[], bool]) -> None:
        self._catalog = catalog
        self._server_address = server_address
        self._is_ready = is_ready
        self._documents: dict[tuple[Any, ...], bytes] = {}

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> bytes:
        body = self._documents.get(key)
        if body is None:
            document = build()
            if document is None:
                raise errors.plain_not_found()
            if len(self._documents) >= _MAX_CACHED_DOCUMENTS:
                # Workspaces with CRDs each have their own documents; keep the cache bounded.
                self._documents.clear()
            body = self._documents[key] = orjson.dumps(document)
        return body

    async def handle(self, request: Request, info: RequestInfo, send: Send, *,
                     served: ServedTypes | None = None) -> None:
        """Serve one non-resource request; ``served`` narrows discovery and OpenAPI to what
        a virtual workspace exposes."""
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(
                f"the server does not allow this method on the requested resource: "
                f"{request.method}")
        path = info.path
        resources = (served or self._catalog).resources(info.cluster)
        if path in ("/healthz", "/livez", "/readyz"):
            await self._health(path, send)
        elif path == "/version":
            await send_bytes(send, 200, orjson.dumps(version_info()))
        elif path == "/metrics":
            await send_bytes(send, 200, metrics.render(),
                             content_type=b"text/plain; version=0.0.4; charset=utf-8")
        elif path in ("/api", "/apis"):
            await self._discovery_root(request, path, resources, send)
        elif info.api_prefix:
            await self._discovery_group(info, resources, send)
        elif path == "/openapi/v3":
            # client-go resolves /openapi/v3/... URLs against its own path prefix
            # (/clusters/<name>), so the index needs no per-cluster base.
            body = self._cached(("openapi-index", resources),
                                lambda: openapi.openapi_v3_index(
                                    resources, schema_for=self._schema_for))
            await send_bytes(send, 200, body)
        elif path.startswith("/openapi/v3/"):
            group_version = _openapi_group_version(path.removeprefix("/openapi/v3/"))
            if group_version is None:
                raise errors.plain_not_found()
            body = self._cached(("openapi", group_version, resources),
                                lambda: self._openapi_document(group_version, resources))
            await send_bytes(send, 200, body)
        else:
            raise errors.plain_not_found()

    def _schema_for(self, rt: ResourceType) -> tuple[str, Mapping[str, Any]] | None:
        builtin = openapi.builtin_schema_for(rt)
        if builtin is not None:
            return builtin
        published = self._catalog.strategy(rt).published_schema()
        return openapi.custom_schema(rt, *published) if published else None

    def _openapi_document(self, group_version: str,
                          resources: tuple[ResourceType, ...]) -> dict[str, Any] | None:
        if not any(rt.api_version == group_version for rt in resources):
            return None
        return openapi.openapi_v3_document(group_version, resources,
                                           schema_for=self._schema_for)

    async def _health(self, path: str, send: Send) -> None:
        if path == "/readyz" and not self._is_ready():
            await send_bytes(send, 503, b"readyz check failed: storage is not ready\n",
                             content_type=b"text/plain; charset=utf-8")
            return
        await send_bytes(send, 200, b"ok", content_type=b"text/plain; charset=utf-8")

    async def _discovery_root(self, request: Request, path: str,
                              resources: tuple[ResourceType, ...], send: Send) -> None:
        core = path == "/api"
        if discovery.wants_aggregated(request.header("accept")):
            body = self._cached(("aggregated", core, resources),
                                lambda: discovery.aggregated_discovery(resources, legacy_core=core))
            await send_bytes(send, 200, body,
                             content_type=discovery.AGGREGATED_CONTENT_TYPE.encode())
            return
        if core:
            body = self._cached(("api",), lambda: discovery.api_versions(self._server_address))
        else:
            body = self._cached(("apis", resources), lambda: discovery.api_group_list(resources))
        await send_bytes(send, 200, body)

    async def _discovery_group(self, info: RequestInfo, resources: tuple[ResourceType, ...],
                               send: Send) -> None:
        if info.api_prefix == "api":
            group_version = info.version
        elif info.version:
            group_version = f"{info.group}/{info.version}"
        else:
            body = self._cached(("group", info.group, resources),
                                lambda: discovery.api_group(info.group, resources))
            await send_bytes(send, 200, body)
            return
        body = self._cached(("resources", group_version, resources),
                            lambda: discovery.api_resource_list(group_version, resources))
        await send_bytes(send, 200, body)
