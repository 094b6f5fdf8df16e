"""What the SDK's end-to-end tests share: a kplane process per module, workspaces, a CRD,
polling, and a TCP proxy that can cut the connection between an informer and the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from kplane.sdk import Client, NotFound, Resource

WORKSPACES = Resource("tenancy.kcp.io", "v1alpha1", "workspaces", namespaced=False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
GROUP = "sdk.example.io"
WIDGETS = Resource(GROUP, "v1", "widgets")
READY_TIMEOUT = 30.0


async def eventually(check: Callable[[], Any], *, timeout: float = READY_TIMEOUT,
                     what: str = "condition") -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


async def ready_workspace(root: Client, name: str) -> dict[str, Any]:
    """Create Workspace ``name`` through ``root`` (a client of the root workspace) and wait
    until it is Ready; returns it (``spec.cluster`` is its logical cluster name)."""
    await root.create(WORKSPACES, {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                                   "metadata": {"name": name}})

    async def ready() -> dict[str, Any] | None:
        workspace = await root.get(WORKSPACES, name)
        return workspace if workspace.get("status", {}).get("phase") == "Ready" else None

    found: dict[str, Any] = await eventually(ready, what=f"workspace {name} Ready")
    return found


def widget_crd() -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer", "minimum": 0},
                "color": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "status": {"type": "object", "properties": {
                "phase": {"type": "string"}, "observed": {"type": "integer"}}},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": schema},
                          "subresources": {"status": {}}}],
        },
    }


async def install_widgets(client: Client, cluster: str | None = None) -> None:
    """Create the Widget CRD and wait until widgets are served."""
    await client.create(CRDS, widget_crd(), cluster=cluster)

    async def served() -> bool:
        try:
            await client.list(WIDGETS, namespace="default", cluster=cluster)
        except NotFound:
            return False
        return True

    await eventually(served, what="widgets served")


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of the server. ``cut()`` drops every connection and
    refuses new ones (they are accepted and closed at once) until ``restore()``: a network
    failure between a client and a server that stays up. TLS passes through untouched."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
