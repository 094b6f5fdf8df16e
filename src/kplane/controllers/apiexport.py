"""APIExports: their identity, and where their virtual workspace is served.

An export's identity is a random key in a Secret of its own workspace (``kcp-system/<export
name>`` unless ``spec.identity.secretRef`` names another); ``status.identityHash`` is the hex
SHA-256 of that key. Bound objects are stored under the hash, so an export's identity, not
its name, decides which objects are its own: a second export of the same group and resource
elsewhere can never see them. The controller creates the key once and never rotates it.

For each export it also keeps an APIExportEndpointSlice of the same name whose
``status.endpoints`` lists the virtual workspace URL the provider's controller talks to; slices
that users create for an export (under any name) get the same URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.controllers.conditions import with_conditions
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.keys import resource_prefix
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.storage.cacher import CachedObject
from kplane.tenancy.resolver import ClusterResolver

log = logging.getLogger(__name__)

MANAGER = "apiexport-controller"
IDENTITY_NAMESPACE = "kcp-system"
IDENTITY_KEY = "key"
_RETRY_SECONDS = 1.0
# A slice may name an export that does not exist yet; look again now and then, not in a loop.
_SLICE_RETRY_SECONDS = 5.0


def virtual_workspace_url(base_url: str, cluster: str, export: str) -> str:
    return f"{base_url}/services/apiexport/{cluster}/{export}"


def identity_hash(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def _secret_ref(export: Mapping[str, Any]) -> tuple[str, str]:
    ref = ((export.get("spec") or {}).get("identity") or {}).get("secretRef") or {}
    name = (export.get("metadata") or {}).get("name", "")
    return str(ref.get("namespace") or IDENTITY_NAMESPACE), str(ref.get("name") or name)


class APIExportController:
    def __init__(self, *, store: Store, resolver: ClusterResolver, base_url: str) -> None:
        self._store = store
        self._resolver = resolver
        self._base_url = base_url
        self._exports = WorkQueue(self._reconcile_export, retry_after=lambda: _RETRY_SECONDS,
                                  what="APIExport")
        self._slices = WorkQueue(self._reconcile_slice, retry_after=lambda: _SLICE_RETRY_SECONDS,
                                 what="APIExportEndpointSlice")
        self._tasks: list[asyncio.Task[None]] = []
        self._options = WriteOptions(field_manager=MANAGER)

    async def start(self) -> None:
        exports = follow_prefix(self._store, resource_prefix(builtin.API_EXPORTS),
                                self._on_export)
        slices = follow_prefix(self._store, resource_prefix(builtin.API_EXPORT_ENDPOINT_SLICES),
                               self._on_slice)
        self._tasks = [asyncio.create_task(exports, name="apiexport-watch"),
                       asyncio.create_task(slices, name="apiexportendpointslice-watch"),
                       *self._exports.workers(2, name="apiexport-worker"),
                       *self._slices.workers(1, name="apiexportendpointslice-worker")]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    def _on_export(self, cached: CachedObject, deleted: bool) -> None:
        if not deleted:
            self._exports.add_key(cached.key)

    def _on_slice(self, cached: CachedObject, deleted: bool) -> None:
        if not deleted:
            self._slices.add_key(cached.key)

    # APIExports --------------------------------------------------------------------------

    async def _reconcile_export(self, cluster: str, name: str) -> bool:
        target = Target(builtin.API_EXPORTS, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            return True
        export = orjson.loads(cached.raw)
        if export["metadata"].get("deletionTimestamp"):
            return True
        namespace, secret_name = _secret_ref(export)
        key = await self._identity_key(cluster, namespace, secret_name)
        wanted_hash = identity_hash(key)
        status = export.get("status") or {}
        if status.get("identityHash") != wanted_hash or not _ready(status):
            def with_status(current: dict[str, Any]) -> dict[str, Any]:
                return with_conditions(current, [("IdentityValid", True, "", ""),
                                                 ("VirtualWorkspaceURLsReady", True, "", "")],
                                       identityHash=wanted_hash)

            with contextlib.suppress(StatusError):
                await self._store.update_with(target, with_status, self._options,
                                              subresource="status")
        await self._ensure_slice(cluster, name)
        return True

    async def _identity_key(self, cluster: str, namespace: str, name: str) -> bytes:
        """The export's identity key, created on first use."""
        secret = Target(builtin.SECRETS, cluster, namespace, name)
        cached = self._store.get_cached(secret)
        if cached is None:
            await self._ensure_namespace(cluster, namespace)
            body = {"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "namespace": namespace},
                    "type": "Opaque",
                    "data": {IDENTITY_KEY: base64.b64encode(
                        secrets.token_urlsafe(32).encode()).decode()}}
            try:
                created = await self._store.create(secret, body, self._options)
            except StatusError as exc:
                if exc.code != 409:
                    raise
                cached = self._store.get_cached(secret)
                if cached is None:
                    raise
                created = orjson.loads(cached.raw)
        else:
            created = orjson.loads(cached.raw)
        encoded = (created.get("data") or {}).get(IDENTITY_KEY)
        if not encoded:
            raise StatusError(422, "Invalid",
                              f'identity secret {namespace}/{name} has no "{IDENTITY_KEY}"')
        return base64.b64decode(encoded)

    async def _ensure_namespace(self, cluster: str, namespace: str) -> None:
        target = Target(builtin.NAMESPACES, cluster, "", namespace)
        if self._store.get_cached(target) is not None:
            return
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        with contextlib.suppress(StatusError):
            await self._store.create(target, body, self._options)

    async def _ensure_slice(self, cluster: str, name: str) -> None:
        target = Target(builtin.API_EXPORT_ENDPOINT_SLICES, cluster, "", name)
        if self._store.get_cached(target) is not None:
            return
        body = {"apiVersion": builtin.API_EXPORT_ENDPOINT_SLICES.api_version,
                "kind": "APIExportEndpointSlice", "metadata": {"name": name},
                "spec": {"export": {"path": self._resolver.path_of(cluster) or cluster,
                                    "name": name}}}
        with contextlib.suppress(StatusError):
            await self._store.create(target, body, self._options)

    # APIExportEndpointSlices -------------------------------------------------------------

    async def _reconcile_slice(self, cluster: str, name: str) -> bool:
        target = Target(builtin.API_EXPORT_ENDPOINT_SLICES, cluster, "", name)
        cached = self._store.get_cached(target)
        if cached is None:
            return True
        endpoint_slice = orjson.loads(cached.raw)
        export_ref = (endpoint_slice.get("spec") or {}).get("export") or {}
        path = str(export_ref.get("path") or "") or cluster
        export_cluster = self._resolver.resolve(path)
        export_name = str(export_ref.get("name") or "")
        exists = export_cluster is not None and self._store.get_cached(
            Target(builtin.API_EXPORTS, export_cluster, "", export_name)) is not None
        endpoints = ([{"url": virtual_workspace_url(self._base_url, export_cluster, export_name)}]
                     if exists and export_cluster is not None else [])
        status = endpoint_slice.get("status") or {}
        if status.get("endpoints", []) == endpoints and status.get("conditions"):
            return exists

        def with_endpoints(current: dict[str, Any]) -> dict[str, Any]:
            return with_conditions(current, [(
                "APIExportValid", exists, "" if exists else "APIExportNotFound",
                "" if exists else f'APIExport "{path}:{export_name}" not found')],
                endpoints=endpoints)

        with contextlib.suppress(StatusError):
            await self._store.update_with(target, with_endpoints, self._options,
                                          subresource="status")
        # A slice whose export is missing is looked at again: the export may come later.
        return exists


def _ready(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions") or []
    return any(isinstance(c, Mapping) and c.get("type") == "IdentityValid"
               and c.get("status") == "True" for c in conditions)
