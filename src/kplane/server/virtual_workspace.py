"""The APIExport virtual workspace: one endpoint through which a provider serves every consumer.

``/services/apiexport/<export workspace>/<export name>/clusters/<consumer | *>/...`` is a
Kubernetes API of its own. It serves exactly what the export exposes: its resources (in every
workspace that bound it) and the resources it claims (in every workspace whose binding
accepted the claim). Under ``*`` a provider lists and watches across all of them, each object
naming its workspace in the ``kcp.io/cluster`` annotation; under one consumer's cluster name
it reads and writes that consumer's objects, status included.

Nothing is copied: requests go to the same Store and watch cache as every other request,
narrowed by the export's types (for routing and discovery) and by which clusters the export
may reach (for lists and watches across clusters). Bound objects live under the export's
identity hash, so a provider can never reach another export's objects of the same kind.
Access needs the request's verb on ``apiexports/content`` of the export, in its workspace.

An open watch ends (:mod:`kplane.server.export_watches`) once what it watches is no longer
served: the export drops the resource or is deleted, or (watching one consumer) that
consumer's binding goes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

from kplane.apimachinery import errors
from kplane.auth.authn import UserInfo
from kplane.auth.authorizer import Attributes
from kplane.registry import builtin
from kplane.registry.bound_types import BoundResource, ExportRef
from kplane.registry.catalog import Catalog
from kplane.registry.resources import ResourceType
from kplane.registry.store import Store, Target
from kplane.server.export_watches import ExportWatches
from kplane.server.http import Request
from kplane.server.nonresource import NonResourceHandler
from kplane.server.request_info import RequestInfo
from kplane.server.resource_handler import ResourceHandler
from kplane.server.security import Security, forbidden_error
from kplane.server.types import Send
from kplane.storage.cacher import CachedObject
from kplane.tenancy.names import WILDCARD
from kplane.tenancy.resolver import ClusterResolver

PREFIX = "/services/apiexport/"
_ALL_VERBS = "*"
_MAX_CACHED_VIEWS = 256


@dataclass(frozen=True, slots=True)
class VirtualPath:
    """A request path under the virtual workspace: which export, and the rest of the path."""

    export_reference: str
    export_name: str
    rest: str
    names_cluster: bool


def match(raw_path: str) -> VirtualPath | None:
    """Split ``/services/apiexport/<ref>/<name>/<rest>``; None for paths outside it."""
    if not raw_path.startswith(PREFIX):
        return None
    parts = raw_path[len(PREFIX):].split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise errors.plain_not_found()
    rest = "/" + (parts[2] if len(parts) > 2 else "")
    return VirtualPath(unquote(parts[0]), unquote(parts[1]), rest,
                       names_cluster=rest.startswith("/clusters/"))


@dataclass(frozen=True, slots=True)
class Claim:
    group: str
    resource: str
    verbs: frozenset[str]

    def allows(self, verb: str) -> bool:
        return _ALL_VERBS in self.verbs or verb in self.verbs


class ExportView:
    """The types one export exposes, as routing and discovery ask for them."""

    def __init__(self, exported: tuple[ResourceType, ...],
                 claimed: dict[ResourceType, Claim]) -> None:
        self.exported = exported
        self.claimed = claimed
        self._types = exported + tuple(claimed)

    def resources(self, cluster: str) -> tuple[ResourceType, ...]:
        return self._types

    def lookup(self, cluster: str, group: str, version: str,
               resource: str) -> ResourceType | None:
        for rt in self._types:
            if rt.group == group and rt.version == version and rt.resource == resource:
                return rt
        return None


class VirtualWorkspaces:
    """Serves every APIExport's virtual workspace."""

    def __init__(self, *, store: Store, catalog: Catalog, resolver: ClusterResolver,
                 security: Security, resources: ResourceHandler,
                 nonresource: NonResourceHandler) -> None:
        self._store = store
        self._catalog = catalog
        self._resolver = resolver
        self._security = security
        self._resources = resources
        self._nonresource = nonresource
        # (export key, export revision, bound-index revision) -> view: a provider's stream
        # of requests reuses one view until its export or a schema changes.
        self._views: dict[tuple[str, int, int], ExportView] = {}
        self.watches = ExportWatches(served=self._still_served)

    async def handle(self, request: Request, info: RequestInfo, path: VirtualPath,
                     user: UserInfo | None, send: Send) -> None:
        if not path.names_cluster:
            raise errors.plain_not_found()
        export_cluster = self._resolver.resolve(path.export_reference)
        if export_cluster is None:
            raise errors.plain_not_found()
        export_ref = ExportRef(export_cluster, path.export_name)
        cached = self._store.get_cached(Target(builtin.API_EXPORTS, export_cluster, "",
                                               path.export_name))
        if cached is None:
            raise errors.plain_not_found()
        self._authorize(user, info, export_ref, path)
        view = self._cached_view(export_cluster, cached)
        consumer = info.cluster
        if not info.is_resource_request:
            await self._nonresource.handle(request, info, send, served=view)
            return
        rt = view.lookup(consumer, info.group, info.version, info.resource)
        if rt is None:
            raise errors.plain_not_found()
        claim = view.claimed.get(rt)
        if claim is not None and not claim.allows(info.verb):
            raise errors.forbidden(
                f"the export's claim on {rt.group_resource} does not include the verb "
                f'"{info.verb}"', group=rt.group, kind=rt.resource, name=info.name)
        cluster_filter: Callable[[str], bool] | None = None
        if consumer == WILDCARD:
            if info.verb not in ("list", "watch"):
                raise errors.method_not_allowed(
                    "only list and watch are served across all consumers; name one "
                    "consumer's logical cluster to change its objects")
            if claim is not None:
                cluster_filter = self._claim_filter(export_ref, claim)
        else:
            self._check_consumer(export_ref, consumer, claim, rt)
        if info.verb == "watch":
            # No await between the checks above and tracking, other than the first watch
            # starting to follow exports and bindings.
            watch = await self.watches.track(
                self._store.cacher, export_ref, rt,
                None if consumer == WILDCARD else consumer, request.receive)
            request.receive = watch.receive
        await self._resources.handle(request, info, send, served=view,
                                     cluster_filter=cluster_filter)

    def _authorize(self, user: UserInfo | None, info: RequestInfo, export: ExportRef,
                   path: VirtualPath) -> None:
        if user is None:
            raise errors.unauthorized("authentication is required")
        verb = info.verb if info.is_resource_request else "get"
        attributes = Attributes(user=user, verb=verb, cluster=export.cluster,
                                api_group=builtin.API_EXPORTS.group, api_version="",
                                resource="apiexports", subresource="content",
                                name=export.name)
        if not self._security.authorize(attributes):
            raise forbidden_error(attributes, workspace=path.export_reference)

    def _cached_view(self, export_cluster: str, cached: CachedObject) -> ExportView:
        key = (cached.key, cached.revision, self._catalog.bound.revision)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= _MAX_CACHED_VIEWS:
                self._views.clear()
            view = self._views[key] = self._view(export_cluster, orjson.loads(cached.raw))
        return view

    def _view(self, export_cluster: str, export: Mapping[str, Any]) -> ExportView:
        identity = str((export.get("status") or {}).get("identityHash") or "")
        spec = export.get("spec") or {}
        exported: list[ResourceType] = []
        if identity:
            for entry in spec.get("resources") or []:
                if not isinstance(entry, Mapping):
                    continue
                bound = BoundResource(
                    group=str(entry.get("group") or ""), resource=str(entry.get("name") or ""),
                    schema=str(entry.get("schema") or ""), identity=identity,
                    export_cluster=export_cluster)
                exported.extend(rt for rt, _ in self._catalog.bound.types_of(bound))
        claimed: dict[ResourceType, Claim] = {}
        for entry in spec.get("permissionClaims") or []:
            if not isinstance(entry, Mapping) or entry.get("identityHash"):
                # Claims on another export's resources are not served yet.
                continue
            group, resource = str(entry.get("group") or ""), str(entry.get("resource") or "")
            verbs = frozenset(str(v) for v in entry.get("verbs") or [_ALL_VERBS])
            for rt in builtin.BUILTIN_RESOURCES:
                if rt.group == group and rt.resource == resource and rt not in builtin.REVIEWS:
                    claimed[rt] = Claim(group, resource, verbs)
        return ExportView(tuple(exported), claimed)

    def _claim_filter(self, export: ExportRef, claim: Claim) -> Callable[[str], bool]:
        bound = self._catalog.bound

        def accepted(cluster: str) -> bool:
            # Read on every event: a consumer that revokes its acceptance stops showing.
            return cluster in bound.accepting_clusters(export, claim.group, claim.resource)

        return accepted

    def _still_served(self, export: ExportRef, rt: ResourceType, consumer: str | None,
                      ) -> bool:
        """Whether a watch of ``rt`` through ``export`` (of ``consumer``'s objects, unless
        None) would still be let in."""
        cached = self._store.get_cached(Target(builtin.API_EXPORTS, export.cluster, "",
                                               export.name))
        if cached is None:
            return False
        view = self._cached_view(export.cluster, cached)
        claim = view.claimed.get(rt)
        if claim is not None:
            if not claim.allows("watch"):
                return False
        elif rt not in view.exported:
            return False
        return consumer is None or self._reaches(export, consumer, claim)

    def _reaches(self, export: ExportRef, consumer: str, claim: Claim | None) -> bool:
        bound = self._catalog.bound
        if claim is None:
            return consumer in bound.clusters_binding(export)
        return consumer in bound.accepting_clusters(export, claim.group, claim.resource)

    def _check_consumer(self, export: ExportRef, consumer: str, claim: Claim | None,
                        rt: ResourceType) -> None:
        if self._reaches(export, consumer, claim):
            return
        if claim is None:
            raise errors.forbidden(
                f'logical cluster "{consumer}" has not bound this APIExport',
                group=rt.group, kind=rt.resource)
        raise errors.forbidden(
                f'logical cluster "{consumer}" has not accepted the claim on '
                f"{rt.group_resource}", group=rt.group, kind=rt.resource)
