"""Serving resource requests: from a parsed URL and query to a Store call and its response.

This module owns the HTTP side of every verb: reading query parameters into options (a
delete's DeleteOptions in :mod:`kplane.server.delete_options`), choosing the representation
(JSON, YAML, Table), status codes (201 on create), the shape of delete responses, and handing
watches to :mod:`kplane.server.watch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import yaml

from kplane.apimachinery import errors
from kplane.apimachinery.apply import FIELD_MANAGER_MAX_LENGTH, manager_from_user_agent
from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.protobuf import PROTOBUF_CONTENT_TYPE, supports_protobuf
from kplane.auth.authn import SYSTEM_MASTERS, UserInfo
from kplane.registry import builtin
from kplane.registry.catalog import Catalog, ServedTypes
from kplane.registry.kinds.tenancy import OWNER_ANNOTATION
from kplane.registry.options import (
    FIELD_VALIDATION_MODES,
    DeleteOptions,
    ListOptions,
    WriteOptions,
)
from kplane.registry.resources import ResourceType
from kplane.registry.store import (
    APPLY_PATCH,
    APPLY_PATCH_CBOR,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    Store,
    Target,
)
from kplane.registry.tables import table_for_kind
from kplane.server import negotiation, scale
from kplane.server.bind_permission import BINDING_TYPES, BindPermission
from kplane.server.body import decode_body, media_type
from kplane.server.delete_options import delete_options
from kplane.server.http import Request, query_flag, query_int64, send_bytes, warning_headers
from kplane.server.metadata_only import partial_list, partial_object
from kplane.server.request_info import RequestInfo
from kplane.server.reviews import Reviews
from kplane.server.types import Send
from kplane.server.watch import WatchStream

BODY_TYPES = ("application/json", "application/yaml", "")
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH, APPLY_PATCH_CBOR)
_MAX_TIMEOUT_SECONDS = 3600
# libyaml's emitter is ~5x faster than PyYAML's and, for JSON-shaped documents, writes the same
# bytes; only odd keys and quoting of exotic strings may be laid out differently, still as YAML
# that reads back to the same values (see tests/server/test_resource_handler.py).
_YAML_DUMPER: Any = yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper
# Above this much JSON the YAML is written in a worker thread so that other requests go on.
_YAML_THREAD_BYTES = 256 * 1024


def yaml_bytes(value: Any) -> bytes:
    """A JSON-shaped document as YAML, keys in their order, as a YAML response body."""
    text: str = yaml.dump(value, Dumper=_YAML_DUMPER, sort_keys=False)
    return text.encode()


async def yaml_response(doc: bytes) -> bytes:
    """The YAML of a JSON document; a large one is converted off the event loop."""
    if len(doc) < _YAML_THREAD_BYTES:
        return yaml_bytes(orjson.loads(doc))
    return await asyncio.to_thread(lambda: yaml_bytes(orjson.loads(doc)))


def list_options(query: dict[str, str]) -> ListOptions:
    """ListOptions from the query, integers parsed strictly as upstream does (a non-integer
    or out-of-int64 ``limit`` or ``timeoutSeconds`` is a 400, not ignored)."""
    limit = query_int64(query, "limit") or 0
    if limit < 0:
        raise errors.bad_request(f"limit: Invalid value: {limit}: must be a non-negative integer")
    return ListOptions(
        label_selector=query.get("labelSelector", ""),
        field_selector=query.get("fieldSelector", ""),
        limit=limit,
        continue_token=query.get("continue", ""),
        resource_version=query.get("resourceVersion", ""),
        resource_version_match=query.get("resourceVersionMatch", ""),
        timeout_seconds=query_int64(query, "timeoutSeconds"),
    )


_OPTIONS_GROUP = "meta.k8s.io"


def write_options(request: Request, *, options_kind: str,
                  patch_type: str | None = None) -> WriteOptions:
    """The options of a create, update or patch. Invalid values are a 422 naming
    ``options_kind`` (``CreateOptions``, ``UpdateOptions``, ``PatchOptions``), as upstream."""
    query = request.query
    causes: list[errors.Cause] = []
    if patch_type in (APPLY_PATCH, APPLY_PATCH_CBOR):
        # The User-Agent default does not count: an apply must name who owns its fields.
        if not query.get("fieldManager"):
            causes.append(errors.field_required("fieldManager", "Required value: is required "
                                                "for apply patch"))
    elif patch_type is not None and "force" in query:
        causes.append(errors.field_forbidden("force", "may not be specified for non-apply patch"))
    dry_run = query.get("dryRun", "")
    if dry_run and dry_run != "All":
        causes.append(errors.field_not_supported("dryRun", dry_run[:32], ["All"]))
    mode = query.get("fieldValidation", "Warn") or "Warn"
    if mode not in FIELD_VALIDATION_MODES:
        causes.append(errors.field_not_supported("fieldValidation", mode[:32],
                                                 ["", *FIELD_VALIDATION_MODES]))
    manager = query.get("fieldManager", "")
    if len(manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        causes.append(errors.field_too_long("fieldManager", FIELD_MANAGER_MAX_LENGTH))
    elif not manager.isprintable():
        causes.append(errors.field_invalid("fieldManager", manager,
                                           "must only contain printable characters"))
    if causes:
        raise errors.invalid(options_kind, _OPTIONS_GROUP, "", causes)
    if not manager:
        manager = manager_from_user_agent(request.header("user-agent"))
    return WriteOptions(field_manager=manager, dry_run=bool(dry_run), field_validation=mode)


def record_owner(body: Any, user: UserInfo | None) -> None:
    """Name a new Workspace's creator, who becomes its admin (kcp's owner annotation).

    Whatever the client put there is replaced: nobody may name someone else the owner.
    system:masters needs no binding, so its workspaces carry no owner."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return
    annotations = body["metadata"].get("annotations")
    if not isinstance(annotations, dict):
        annotations = body["metadata"]["annotations"] = {}
    annotations.pop(OWNER_ANNOTATION, None)
    if user is not None and SYSTEM_MASTERS not in user.groups:
        annotations[OWNER_ANNOTATION] = orjson.dumps(
            {"username": user.name, "groups": list(user.groups)}).decode()


class ResourceHandler:
    """Answers every request addressed to a resource."""

    def __init__(self, *, store: Store, catalog: Catalog, reviews: Reviews | None = None,
                 bind_permission: BindPermission | None = None) -> None:
        self._store = store
        self._catalog = catalog
        self._reviews = reviews
        self._bind_permission = bind_permission

    def resolve(self, info: RequestInfo, served: ServedTypes | None = None) -> ResourceType:
        rt = (served or self._catalog).lookup(info.cluster, info.group, info.version,
                                              info.resource)
        if rt is None:
            raise errors.plain_not_found()
        if info.subresource and info.subresource not in rt.subresources:
            raise errors.plain_not_found()
        if info.namespace and not rt.namespaced:
            raise errors.plain_not_found()
        if rt.namespaced and not info.namespace and info.name:
            # Upstream serves a namespaced kind outside a namespace only as a collection.
            raise errors.plain_not_found()
        return rt

    async def handle(self, request: Request, info: RequestInfo, send: Send, *,
                     served: ServedTypes | None = None,
                     cluster_filter: Callable[[str], bool] | None = None) -> None:
        """Serve one resource request; ``served`` and ``cluster_filter`` narrow what a
        virtual workspace exposes (default: the logical cluster's own types)."""
        rt = self.resolve(info, served)
        target = Target(rt, info.cluster, info.namespace, info.name, cluster_filter)
        verb = info.verb
        if self._reviews is not None and self._reviews.handles(rt, info.subresource):
            await self._review(request, rt, info, send)
            return
        if info.subresource == "scale":
            await self._scale(request, target, info, send)
            return
        if verb not in rt.verbs and verb not in ("get", "update", "patch"):
            raise errors.method_not_allowed(
                f"{verb} is not supported on resources of kind {rt.group_resource}")
        if rt.namespaced and not info.namespace and verb not in ("list", "watch"):
            # Across all namespaces only reads exist (a DELETE there must not empty them all).
            raise errors.method_not_allowed(
                f"the server does not allow this method on the requested resource: "
                f"{request.method}")
        # An unacceptable Accept is refused before anything happens: a write must not be
        # carried out when its answer cannot be sent (upstream negotiates first too).
        negotiation.choose(request.header("accept"), table_allowed=True,
                           collection=verb in ("list", "deletecollection"))
        if verb == "get":
            await self._get(request, target, send)
        elif verb == "list":
            await self._list(request, target, send)
        elif verb == "watch":
            await self._watch(request, target, send)
        elif verb == "create":
            await self._create(request, target, send, info)
        elif verb == "update":
            await self._update(request, target, send, info)
        elif verb == "patch":
            await self._patch(request, target, send, info)
        elif verb == "delete":
            await self._delete(request, target, send)
        elif verb == "deletecollection":
            await self._delete_collection(request, target, send)
        else:
            raise errors.method_not_allowed(f"the server does not allow this method: {verb}")

    async def _review(self, request: Request, rt: ResourceType, info: RequestInfo,
                      send: Send) -> None:
        """A question answered in the response (reviews, token requests); nothing stored."""
        assert self._reviews is not None
        if info.verb != "create":
            raise errors.method_not_allowed(
                f"{info.verb} is not supported on {rt.group_resource}"
                + (f"/{info.subresource}" if info.subresource else ""))
        body = await self._read_body(request)
        answer = await self._reviews.create(rt, info, request.user, body)
        await send_bytes(send, 201, orjson.dumps(answer))

    async def _scale(self, request: Request, target: Target, info: RequestInfo,
                     send: Send) -> None:
        """GET, PUT or PATCH the autoscaling/v1 Scale of a custom resource."""
        paths = getattr(self._catalog.strategy(target.rt), "scale_paths", None)
        if not paths:
            raise errors.plain_not_found()
        if info.verb == "get":
            cached = await self._store.get(
                target, resource_version=request.query.get("resourceVersion", ""))
            obj = orjson.loads(cached.raw)
            await send_bytes(send, 200, orjson.dumps(scale.scale_of(obj, paths)))
            return
        if info.verb not in ("update", "patch"):
            raise errors.method_not_allowed(f"{info.verb} is not supported on scale")
        doc = await self._read_body(request)
        content = media_type(request.header("content-type", "application/json"))
        options = write_options(request, options_kind="UpdateOptions" if info.verb == "update"
                                else "PatchOptions")

        def resize(current: dict[str, Any]) -> dict[str, Any]:
            view = scale.scale_of(current, paths)
            wanted = (doc if info.verb == "update"
                      else scale.patched_scale(view, content, doc))
            expected = (wanted.get("metadata") or {}).get("resourceVersion") \
                if isinstance(wanted, dict) else None
            if expected and expected != current["metadata"].get("resourceVersion"):
                raise errors.stale_conflict(target.rt.resource, target.rt.group, target.name)
            return scale.with_replicas(current, paths,
                                       scale.replicas_from(wanted, name=target.name))

        obj = await self._store.update_with(target, resize, options)
        await send_bytes(send, 200, orjson.dumps(scale.scale_of(obj, paths)))

    # Responses ---------------------------------------------------------------------------

    async def _respond(self, send: Send, request: Request, rt: ResourceType, status: int,
                       obj: dict[str, Any] | bytes, *, warnings: list[str] | None = None) -> None:
        """One object, in the representation the client asked for."""
        representation = negotiation.choose(request.header("accept"), table_allowed=True)
        headers = warning_headers(warnings) if warnings else None
        content_type = b"application/json"
        if representation.table_version:
            parsed = orjson.loads(obj) if isinstance(obj, bytes) else obj
            # Like upstream's table convertor, a one-object Table carries its version.
            list_meta = {"resourceVersion": parsed.get("metadata", {}).get("resourceVersion", "")}
            table = table_for_kind(self._catalog.strategy(rt), [parsed],
                                   include_object=request.query.get(
                "includeObject", "Metadata"), list_meta=list_meta)
            table["apiVersion"] = f"meta.k8s.io/{representation.table_version}"
            body = orjson.dumps(table)
        elif representation.metadata_version:
            parsed = orjson.loads(obj) if isinstance(obj, bytes) else obj
            body = orjson.dumps(partial_object(parsed, representation.metadata_version))
        elif representation.media_type == negotiation.YAML:
            body = await yaml_response(obj if isinstance(obj, bytes) else orjson.dumps(obj))
            content_type = b"application/yaml"
        else:
            body = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        await send_bytes(send, status, body, content_type=content_type, headers=headers)

    # Verbs -------------------------------------------------------------------------------

    async def _get(self, request: Request, target: Target, send: Send) -> None:
        cached = await self._store.get(
            target, resource_version=request.query.get("resourceVersion", ""))
        strategy = self._catalog.strategy(target.rt)
        await self._respond(send, request, target.rt, 200, strategy.read_bytes(cached.raw))

    async def _list(self, request: Request, target: Target, send: Send) -> None:
        rt = target.rt
        representation = negotiation.choose(request.header("accept"), table_allowed=True,
                                            collection=True)
        result = await self._store.list(target, list_options(request.query))
        list_meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
            if result.remaining is not None:
                list_meta["remainingItemCount"] = result.remaining
        if representation.table_version:
            strategy = self._catalog.strategy(rt)
            objects = [strategy.reading_form(orjson.loads(o.raw)) for o in result.items]
            table = table_for_kind(strategy, objects, include_object=request.query.get(
                "includeObject", "Metadata"), list_meta=list_meta)
            table["apiVersion"] = f"meta.k8s.io/{representation.table_version}"
            await send_bytes(send, 200, orjson.dumps(table))
            return
        read = self._catalog.strategy(rt).read_bytes
        if representation.metadata_version:
            partial = partial_list([orjson.loads(read(o.raw)) for o in result.items],
                                   list_meta, representation.metadata_version)
            await send_bytes(send, 200, orjson.dumps(partial))
            return
        head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version,
                             "metadata": list_meta})
        body = head[:-1] + b',"items":[' + b",".join(read(o.raw) for o in result.items) + b"]}"
        if representation.media_type == negotiation.YAML:
            await send_bytes(send, 200, await yaml_response(body),
                             content_type=b"application/yaml")
            return
        await send_bytes(send, 200, body)

    async def _watch(self, request: Request, target: Target, send: Send) -> None:
        query = request.query
        representation = negotiation.choose(request.header("accept"), table_allowed=True)
        options = list_options(query)
        timeout = options.timeout_seconds
        if timeout is not None and timeout < 0:
            raise errors.bad_request("timeoutSeconds: Invalid value: must be non-negative")
        if timeout == 0:
            # As upstream: zero means "no timeout asked for", so the random default applies.
            timeout = None
        send_initial: bool | None = None
        if "sendInitialEvents" in query:
            send_initial = query_flag(query["sendInitialEvents"])
        bookmarks = query_flag(query.get("allowWatchBookmarks"))
        if send_initial and not bookmarks:
            raise errors.unprocessable(
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
                "allowWatchBookmarks to true")
        if target.name:
            # A watch on one object: upstream turns the name into a field selector.
            selector = f"metadata.name={target.name}"
            if options.field_selector:
                selector = f"{options.field_selector},{selector}"
            options = ListOptions(
                label_selector=options.label_selector, field_selector=selector,
                resource_version=options.resource_version,
                resource_version_match=options.resource_version_match)
            target = replace(target, name="")
        stream = WatchStream(
            rt=target.rt, send=send, receive=request.receive,
            table_version=representation.table_version,
            metadata_version=representation.metadata_version,
            include_object=query.get("includeObject", "Metadata"), bookmarks=bookmarks,
            timeout=None if timeout is None else float(min(timeout, _MAX_TIMEOUT_SECONDS)),
            strategy=self._catalog.strategy(target.rt),
        )
        try:
            start = await self._store.watch(target, options, send_initial_events=send_initial)
        except StatusError as exc:
            if exc.code == 410:
                await stream.send_error(exc)
                return
            raise
        await stream.run(start, send_initial_end=bool(send_initial),
                         current_revision=lambda: self._store.cacher.revision)

    @staticmethod
    def _check_body_type(content: str, rt: ResourceType) -> None:
        """JSON and YAML always; protobuf for the built-in kinds kubectl sends it for."""
        if content in BODY_TYPES:
            return
        if content == PROTOBUF_CONTENT_TYPE and supports_protobuf(rt.api_version, rt.kind):
            return
        accepted = list(BODY_TYPES[:2])
        if supports_protobuf(rt.api_version, rt.kind):
            accepted.append(PROTOBUF_CONTENT_TYPE)
        raise errors.unsupported_media_type(content, accepted)

    async def _read_body(self, request: Request) -> Any:
        raw = await request.body()
        return decode_body(raw, request.header("content-type", "application/json"))

    async def _create(self, request: Request, target: Target, send: Send,
                      info: RequestInfo) -> None:
        if info.name and not info.subresource:
            raise errors.method_not_allowed("POST is not allowed on a named object")
        if info.subresource:
            raise errors.method_not_allowed(
                f"the subresource {info.subresource} does not support create")
        content = media_type(request.header("content-type", "application/json"))
        self._check_body_type(content, target.rt)
        body = await self._read_body(request)
        if target.rt == builtin.WORKSPACES:
            record_owner(body, request.user)
        if self._bind_permission is not None and target.rt in BINDING_TYPES:
            self._bind_permission.check(request.user, target.cluster, body)
        options = write_options(request, options_kind="CreateOptions")
        obj = await self._store.create(target, body, options)
        await self._respond(send, request, target.rt, 201, obj, warnings=options.warnings)

    async def _update(self, request: Request, target: Target, send: Send,
                      info: RequestInfo) -> None:
        content = media_type(request.header("content-type", "application/json"))
        self._check_body_type(content, target.rt)
        body = await self._read_body(request)
        options = write_options(request, options_kind="UpdateOptions")
        obj = await self._store.update(target, body, options, subresource=info.subresource)
        await self._respond(send, request, target.rt, 200, obj, warnings=options.warnings)

    async def _patch(self, request: Request, target: Target, send: Send,
                     info: RequestInfo) -> None:
        content = media_type(request.header("content-type"))
        accepted = [t for t in PATCH_TYPES
                    if t != STRATEGIC_PATCH or target.rt.supports_strategic_merge]
        if content not in accepted:
            raise errors.unsupported_media_type(content, accepted)
        if content == APPLY_PATCH_CBOR:
            raise errors.unsupported_media_type(content, [t for t in accepted
                                                          if t != APPLY_PATCH_CBOR])
        doc = await self._read_body(request)
        options = write_options(request, options_kind="PatchOptions", patch_type=content)
        force_raw = request.query.get("force")
        force = query_flag(force_raw) if force_raw is not None else False
        existed = self._store.get_cached(target) is not None
        if not existed and content == APPLY_PATCH and target.rt == builtin.WORKSPACES:
            record_owner(doc, request.user)  # as a POST does: admission reads the creator
        if (not existed and content == APPLY_PATCH and target.rt in BINDING_TYPES
                and self._bind_permission is not None):
            self._bind_permission.check(request.user, target.cluster, doc)
        obj = await self._store.patch(target, content, doc, options, force=force,
                                      subresource=info.subresource)
        status = 201 if content == APPLY_PATCH and not existed else 200
        await self._respond(send, request, target.rt, status, obj,
                                 warnings=options.warnings)

    @staticmethod
    async def _delete_options(request: Request) -> DeleteOptions:
        raw = await request.body()
        return delete_options(raw, request.header("content-type"), request.query,
                              request.query_values)

    async def _delete(self, request: Request, target: Target, send: Send) -> None:
        options = await self._delete_options(request)
        obj, gone = await self._store.delete(target, options)
        if not gone:
            await self._respond(send, request, target.rt, 200, obj)
            return
        rt = target.rt
        status = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": target.name, "group": rt.group, "kind": rt.resource,
                        "uid": obj["metadata"].get("uid", "")},
        }
        await send_bytes(send, 200, orjson.dumps(status))

    async def _delete_collection(self, request: Request, target: Target, send: Send) -> None:
        # The query's ListOptions are read first, as upstream does.
        selection = list_options(request.query)
        options = await self._delete_options(request)
        deleted = await self._store.delete_collection(target, selection, options)
        rt = target.rt
        body = {"kind": rt.list_kind, "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self._store.cacher.revision)},
                "items": deleted}
        await send_bytes(send, 200, orjson.dumps(body))

