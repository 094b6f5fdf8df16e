"""An async, cluster-aware Kubernetes client over httpx, with a kubeconfig's credentials.

Every call names a ``Resource`` and, optionally, a logical cluster: ``cluster=None`` (or
"") uses the base URL as it is (a workspace URL such as ``.../clusters/root:acme``), while
``cluster="x"`` appends ``/clusters/x`` to a base URL that names no cluster yet (the server
root, or an APIExport virtual workspace endpoint). ``cluster="*"`` lists and watches across
clusters where the server allows it.

Objects are plain dicts, bodies JSON (orjson). Errors the server answers become ``ApiError``
(``NotFound``, ``Conflict``, ``Gone``); failed connections raise ``httpx.TransportError``
and are left to the caller to retry, because only the caller knows whether retrying is safe.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from kplane.sdk.errors import NotFound, error_from_status
from kplane.sdk.kubeconfig import Kubeconfig, split_server
from kplane.sdk.resource import Resource

log = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "apply", "strategic"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
    "strategic": "application/strategic-merge-patch+json",
}
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_PAGE_SIZE = 500
# A watch may stay silent for a bookmark interval (60 s on kplane) before the server's own
# timeout ends it; reading is given that much slack beyond timeoutSeconds.
_WATCH_READ_SLACK_SECONDS = 90.0


class Client:
    """One base URL, one set of credentials, one connection pool (HTTP/1.1, keep-alive)."""

    def __init__(self, config: Kubeconfig, *, base_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 user_agent: str = "kplane-sdk") -> None:
        self._config = config
        self._base_url = (base_url if base_url is not None else config.server).rstrip("/")
        self._timeout = timeout
        self._user_agent = user_agent
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(verify=config.ssl_context, http1=True, http2=False,
                                       headers=headers, timeout=timeout, trust_env=False)
        self._derived: list[Client] = []
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this client's connections and those of every client ``with_base`` made."""
        if self._closed:
            return
        self._closed = True
        for child in self._derived:
            await child.aclose()
        await self._http.aclose()

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def server_root(self) -> str:
        """The base URL without a ``/clusters/<name>`` suffix."""
        return split_server(self._base_url)[0]

    @property
    def config(self) -> Kubeconfig:
        return self._config

    def with_base(self, url: str) -> Client:
        """A client for another base URL with the same credentials and its own connections.

        It is closed with this one (it may also be closed on its own)."""
        child = Client(self._config, base_url=url, timeout=self._timeout,
                       user_agent=self._user_agent)
        self._derived.append(child)
        return child

    # --- URLs ---------------------------------------------------------------------------

    def url(self, res: Resource, name: str = "", *, namespace: str = "",
            cluster: str | None = None, subresource: str = "") -> str:
        """The absolute URL of a collection, an object, or an object's subresource."""
        parts = [self._base_url]
        if cluster:
            parts.append("/clusters/" + quote(cluster, safe=":*"))
        parts.append(res.api_prefix)
        if namespace and res.namespaced:
            parts.append("/namespaces/" + quote(namespace, safe=""))
        parts.append("/" + res.plural)
        if name:
            parts.append("/" + quote(name, safe=""))
            if subresource:
                parts.append("/" + subresource)
        return "".join(parts)

    # --- verbs --------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str = "",
                  cluster: str | None = None, subresource: str = "") -> dict[str, Any]:
        return await self._call("GET", self.url(res, name, namespace=namespace, cluster=cluster,
                                                 subresource=subresource))

    async def list(self, res: Resource, namespace: str = "", cluster: str | None = None,
                   label_selector: str = "", field_selector: str = "",
                   page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
        """The List object with every page's items; its resourceVersion is the first page's,
        which every later page shares (a continue token pins the snapshot)."""
        url = self.url(res, namespace=namespace, cluster=cluster)
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        result: dict[str, Any] | None = None
        items: list[dict[str, Any]] = []
        while True:
            page = await self._call("GET", url, params=params)
            if result is None:
                result = page
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            params = {**params, "continue": str(token)}
        assert result is not None
        metadata = dict(result.get("metadata") or {})
        metadata.pop("continue", None)
        metadata.pop("remainingItemCount", None)
        result["metadata"] = metadata
        # Lists leave kind and apiVersion off their items; put them back so an item can be
        # sent back as it is (an update, an apply).
        kind = str(result.get("kind") or "")
        item_kind = kind[:-4] if kind.endswith("List") else ""
        for item in items:
            if isinstance(item, dict):
                item.setdefault("apiVersion", res.api_version)
                if item_kind:
                    item.setdefault("kind", item_kind)
        result["items"] = items
        return result

    async def create(self, res: Resource, body: Mapping[str, Any], namespace: str = "",
                     cluster: str | None = None) -> dict[str, Any]:
        namespace = namespace or _namespace_of(body)
        return await self._call("POST", self.url(res, namespace=namespace, cluster=cluster),
                                body=body)

    async def update(self, res: Resource, body: Mapping[str, Any], namespace: str = "",
                     cluster: str | None = None, subresource: str = "") -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            raise ValueError("update needs metadata.name in the body")
        namespace = namespace or _namespace_of(body)
        return await self._call("PUT", self.url(res, name, namespace=namespace, cluster=cluster,
                                                 subresource=subresource), body=body)

    async def patch(self, res: Resource, name: str,
                    patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                    namespace: str = "", cluster: str | None = None,
                    patch_type: PatchType = "merge", field_manager: str = "",
                    force: bool = False, subresource: str = "") -> dict[str, Any]:
        content_type = _PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"unknown patch type {patch_type!r}")
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        return await self._call("PATCH", self.url(res, name, namespace=namespace,
                                                   cluster=cluster, subresource=subresource),
                                body=patch, params=params, content_type=content_type)

    async def apply(self, res: Resource, body: Mapping[str, Any], field_manager: str,
                    namespace: str = "", cluster: str | None = None, force: bool = True,
                    subresource: str = "") -> dict[str, Any]:
        """Server-side apply of ``body`` (which names itself) as ``field_manager``."""
        if not field_manager:
            raise ValueError("server-side apply needs a field manager")
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            raise ValueError("apply needs metadata.name in the body")
        return await self.patch(res, name, body, namespace=namespace or _namespace_of(body),
                                cluster=cluster, patch_type="apply",
                                field_manager=field_manager, force=force,
                                subresource=subresource)

    async def delete(self, res: Resource, name: str, namespace: str = "",
                     cluster: str | None = None,
                     propagation_policy: str = "") -> dict[str, Any] | None:
        """Delete; the answer (the object while finalizers hold it, else a Status), or None
        when there was nothing to delete."""
        body = None
        if propagation_policy:
            body = {"kind": "DeleteOptions", "apiVersion": "v1",
                    "propagationPolicy": propagation_policy}
        try:
            return await self._call("DELETE", self.url(res, name, namespace=namespace,
                                                        cluster=cluster), body=body)
        except NotFound:
            return None

    async def watch(self, res: Resource, namespace: str = "", cluster: str | None = None,
                    resource_version: str = "", timeout_seconds: float | None = None,
                    label_selector: str = "", field_selector: str = "",
                    allow_bookmarks: bool = True,
                    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(event type, object) pairs until the server ends the stream.

        An ERROR event raises its Status as an ``ApiError`` (``Gone`` for 410, when the
        resourceVersion is too old). Use ``contextlib.aclosing`` to stop early promptly.
        """
        params: dict[str, str] = {"watch": "1"}
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        read_timeout: float | None = None
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(max(1, int(timeout_seconds)))
            read_timeout = timeout_seconds + _WATCH_READ_SLACK_SECONDS
        url = self.url(res, namespace=namespace, cluster=cluster)
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        async with self._http.stream("GET", url, params=params, timeout=timeout) as response:
            if response.status_code != 200:
                raw = await response.aread()
                raise error_from_status(response.status_code, _decode(raw),
                                        fallback=raw.decode("utf-8", "replace").strip())
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                event_type = str(event.get("type") or "")
                obj = event.get("object")
                if not isinstance(obj, dict):
                    obj = {}
                if event_type == "ERROR":
                    raise error_from_status(int(obj.get("code") or 500), obj)
                yield event_type, obj

    # --- plumbing -----------------------------------------------------------------------

    async def _call(self, method: str, url: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None,
                    content_type: str = "application/json") -> dict[str, Any]:
        headers = {}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = content_type
        response = await self._http.request(method, url, params=params, content=content,
                                            headers=headers)
        decoded = _decode(response.content)
        if response.status_code >= 400:
            raise error_from_status(response.status_code, decoded,
                                    fallback=response.text.strip())
        return decoded


def _decode(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _namespace_of(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata")
    return str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""
