"""Publishing the API in the provider's workspace and finding where to serve it from.

On every start the provider makes sure its APIResourceSchema and APIExport exist as this
version of the code defines them (creating the schema under its content-addressed name and
pointing the export at it), then waits for the server to give the export an identity and an
APIExportEndpointSlice with the virtual workspace URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kplane.sdk import Client, Conflict, NotFound
from kplane_postgres import api

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_SECONDS = 0.5


async def publish(client: Client, *, group: str, export: str) -> str:
    """Create the schema (if new) and create or update the export; returns the schema name."""
    schema = api.schema_object(group)
    name = schema["metadata"]["name"]
    try:
        await client.create(api.SCHEMAS, schema)
        log.info("created APIResourceSchema %s", name)
    except Conflict:
        pass  # same name, same content: the name is a digest of it
    body = api.export_object(export, group, name)
    try:
        await client.create(api.EXPORTS, body)
        log.info("created APIExport %s", export)
    except Conflict:
        current = await client.get(api.EXPORTS, export)
        spec = current.get("spec") or {}
        wanted = body["spec"]
        if any(spec.get(key) != value for key, value in wanted.items()):
            # A merge patch replaces these lists whole and keeps fields others set
            # (identity, maximalPermissionPolicy).
            await client.patch(api.EXPORTS, export, {"spec": wanted}, patch_type="merge")
            log.info("updated APIExport %s to schema %s", export, name)
    return str(name)


async def _poll(what: str, attempt: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await attempt()
        except NotFound:
            found = None
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


async def wait_for_endpoint(client: Client, *, export: str, timeout: float) -> tuple[str, str]:
    """Wait for the export's identity hash and virtual workspace URL; returns both."""

    async def identity() -> str | None:
        found: Any = ((await client.get(api.EXPORTS, export)).get("status") or {}).get(
            "identityHash")
        return str(found) if found else None

    async def endpoint() -> str | None:
        status = (await client.get(api.ENDPOINT_SLICES, export)).get("status") or {}
        for entry in status.get("endpoints") or []:
            if isinstance(entry, dict) and entry.get("url"):
                return str(entry["url"])
        return None

    identity_hash = await _poll(f"APIExport {export} identity", identity, timeout)
    url = await _poll(f"APIExportEndpointSlice {export}", endpoint, timeout)
    log.info("APIExport %s has identity %s… and virtual workspace %s", export,
             identity_hash[:12], url)
    return identity_hash, url
