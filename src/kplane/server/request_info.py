"""Parse a request path into what it addresses: a :class:`RequestInfo`.

Kubernetes routing is regular enough to parse rather than match against a route table:
``[/clusters/<cluster>]`` then either a non-resource path (``/version``, ``/openapi/v3/...``,
``/healthz``) or ``/api/v1/...`` / ``/apis/<group>/<version>/...`` followed by
``[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]``. The verb follows from the method,
whether a name is present, and ``?watch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from kplane.apimachinery import errors

DEFAULT_CLUSTER = "root"
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_MAX_PATH = 8192


@dataclass(frozen=True, slots=True)
class RequestInfo:
    cluster: str
    path: str                      # the path with any /clusters/<x> prefix removed
    is_resource_request: bool
    api_prefix: str = ""           # "api" or "apis"
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    verb: str = ""                 # get list watch create update patch delete deletecollection
    parts: tuple[str, ...] = ()    # path segments after api/<v> or apis/<g>/<v>


def _split(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    if "%" not in path:
        return parts
    segments = [unquote(p) for p in parts]
    # An encoded "/" inside a segment would let a name, namespace or cluster address keys
    # outside its own; upstream decodes before splitting, so such a segment never exists there.
    if any("/" in segment for segment in segments):
        raise errors.plain_not_found()
    return segments


def parse_request(method: str, raw_path: str, *, watch: bool) -> RequestInfo:
    """``raw_path`` is the path as sent, still percent-encoded; it is decoded exactly once."""
    return _parse_request(method, raw_path, watch)


# Clients repeat the same few paths (a controller's collection, a lease, a status); a
# RequestInfo is immutable, so a repeated path is parsed once. Bounded, so that a client
# sending ever-new paths only evicts.
@lru_cache(maxsize=4096)
def _parse_request(method: str, raw_path: str, watch: bool) -> RequestInfo:
    if len(raw_path) > _MAX_PATH:
        raise errors.StatusError(414, "RequestURITooLong", "the request URI is too long")
    segments = _split(raw_path)
    cluster = DEFAULT_CLUSTER
    if len(segments) >= 2 and segments[0] == "clusters":
        cluster = segments[1]
        segments = segments[2:]
    path = "/" + "/".join(segments)
    if not segments or segments[0] not in ("api", "apis"):
        return RequestInfo(cluster=cluster, path=path, is_resource_request=False)
    prefix = segments[0]
    rest = segments[1:]
    if prefix == "api":
        if not rest:
            return RequestInfo(cluster=cluster, path=path, is_resource_request=False,
                               api_prefix=prefix)
        group, version, parts = "", rest[0], rest[1:]
    else:
        if len(rest) < 2:
            return RequestInfo(cluster=cluster, path=path, is_resource_request=False,
                               api_prefix=prefix, group=rest[0] if rest else "")
        group, version, parts = rest[0], rest[1], rest[2:]
    if not parts:
        return RequestInfo(cluster=cluster, path=path, is_resource_request=False,
                           api_prefix=prefix, group=group, version=version)
    legacy_watch = False
    if parts[0] == "watch":
        legacy_watch = True
        parts = parts[1:]
    namespace = ""
    # /namespaces/<ns>/<resource>... is inside a namespace; /namespaces/<name>[/status|finalize]
    # addresses the namespace object itself.
    if (len(parts) > 2 and parts[0] == "namespaces"
            and parts[2] not in _NAMESPACE_SUBRESOURCES):
        namespace = parts[1]
        parts = parts[2:]
    if not parts:
        raise errors.plain_not_found()
    resource = parts[0]
    name = parts[1] if len(parts) > 1 else ""
    subresource = parts[2] if len(parts) > 2 else ""
    if len(parts) > 3:
        raise errors.plain_not_found()
    verb = _verb(method, bool(name), watch or legacy_watch)
    return RequestInfo(
        cluster=cluster, path=path, is_resource_request=True, api_prefix=prefix, group=group,
        version=version, resource=resource, subresource=subresource, namespace=namespace,
        name=name, verb=verb, parts=tuple(parts),
    )


def _verb(method: str, has_name: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()
