"""The generic Store: create, get, list, update, patch, delete and watch for every kind.

One Store serves every resource type of every logical cluster. It owns what is the same for
all kinds: storage keys, resourceVersion and optimistic concurrency, uid and timestamps,
generateName, finalizers and graceful deletion, managed fields, field validation modes,
dry runs, and the resourceVersion rules of reads. What differs per kind comes from the
kind's :class:`~kplane.registry.strategy.Strategy`.

Reads are served from the watch cache; writes go to the backend with compare-and-swap on
the modification revision, so concurrent writers never lose an update.
"""

from __future__ import annotations

import builtins
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from kplane.apimachinery import errors, fieldcheck, labels, names, objectmeta
from kplane.apimachinery import fields as fieldselectors
from kplane.apimachinery.apply import server_side_apply, track_update
from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.patch import apply_json_patch, apply_merge_patch
from kplane.apimachinery.random_ids import new_uid
from kplane.apimachinery.strategic import apply_strategic_merge_patch
from kplane.registry import builtin, pagination
from kplane.registry.admission import AdmissionPlugin
from kplane.registry.catalog import Catalog
from kplane.registry.codec import decode_stored, encode_for_storage
from kplane.registry.consistency import RevisionReader
from kplane.registry.keys import ALL_CLUSTERS, cluster_of_key, collection_prefix, object_key
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy
from kplane.storage.backend import (
    Backend,
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
)
from kplane.storage.cacher import CachedObject, Cacher, CacheWatcher

CLUSTER_ANNOTATION = "kcp.io/cluster"
# Every lost compare-and-swap means another writer succeeded, so retrying always makes
# progress; upstream retries without limit. N writers racing on one object need up to N
# attempts, so the bound only stops a bug from spinning forever.
_MAX_CAS_RETRIES = 1_000
_GENERATE_NAME_RETRIES = 8
# The finalizers through which a delete hands an object's dependents to the garbage
# collector, and the propagation policy each stands for.
_GC_POLICY_OF = {objectmeta.FINALIZER_ORPHAN_DEPENDENTS: "Orphan",
                 objectmeta.FINALIZER_DELETE_DEPENDENTS: "Foreground"}
# Metadata the server owns: a client's value is ignored on create.
_SERVER_OWNED_META = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "selfLink")

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


_last_second: list[Any] = [-1, ""]


def now_rfc3339() -> str:
    """The current time at second precision; formatted once per second, since every write
    stamps it once or twice."""
    second = int(time.time())
    if second != _last_second[0]:
        _last_second[:] = [second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")]
    return str(_last_second[1])


@dataclass(slots=True)
class ListResult:
    items: list[CachedObject]
    revision: int
    continue_token: str
    remaining: int | None


@dataclass(slots=True)
class WatchStart:
    """A watch ready to stream: objects to send as ADDED first, then the live watcher."""

    initial: list[CachedObject]
    watcher: CacheWatcher
    revision: int


@dataclass(frozen=True, slots=True)
class Target:
    """The object (or collection) a request addresses."""

    rt: ResourceType
    cluster: str
    namespace: str = ""
    name: str = ""
    # Across all logical clusters (``*``): which clusters' objects a list or watch may see
    # (a virtual workspace shows a provider only its consumers'); None: every cluster.
    cluster_filter: Callable[[str], bool] | None = field(default=None, compare=False)


class Store:
    """Every verb on every kind, over one backend and its watch cache."""

    def __init__(self, *, backend: Backend, cacher: Cacher, catalog: Catalog,
                 clock: Callable[[], str] = now_rfc3339,
                 admission: Sequence[AdmissionPlugin] = ()) -> None:
        self.backend = backend
        self.cacher = cacher
        self.catalog = catalog
        self._clock = clock
        self.admission = list(admission)
        self._revisions = RevisionReader(backend)

    def _admission_for(self, rt: ResourceType) -> list[AdmissionPlugin]:
        return [plugin for plugin in self.admission if plugin.handles(rt)]

    async def purge_cluster(self, cluster: str) -> int:
        """Delete every object of one logical cluster, finalizers notwithstanding.

        This is how a deleted workspace's content goes: the cluster itself is gone, so
        nothing in it may hold it back. Returns how many objects were deleted."""
        deleted = 0
        last_revision = 0
        for prefix in self.catalog.storage_prefixes(cluster):
            for cached in self.cacher.list(f"{prefix}{cluster}/"):
                try:
                    kv = await self.backend.delete(cached.key)
                except KeyNotFoundError:
                    continue
                deleted += 1
                last_revision = max(last_revision, kv.mod_revision)
        if last_revision:
            await self.cacher.wait_for_revision(last_revision)
        return deleted

    # Reads -------------------------------------------------------------------------------

    async def _catch_up(self, resource_version: str) -> None:
        """Make the cache at least as new as the caller needs (the resourceVersion rules)."""
        if resource_version == "0":
            return
        if resource_version == "":
            target = await self._revisions.current_revision()
        else:
            target = parse_resource_version(resource_version)
        if self.cacher.revision >= target:
            return
        try:
            await self.cacher.wait_for_revision(target, timeout=3.0)
        except TimeoutError:
            raise StatusError(
                504, "Timeout",
                f"Too large resource version: {target}, current: {self.cacher.revision}",
                retry_after_seconds=1, headers={"Retry-After": "1"},
            ) from None

    async def get(self, target: Target, *, resource_version: str = "") -> CachedObject:
        await self._catch_up(resource_version)
        cached = self.cacher.get(self._key(target))
        if cached is None:
            raise errors.not_found(target.rt.resource, target.rt.group, target.name)
        return cached

    def get_cached(self, target: Target) -> CachedObject | None:
        return self.cacher.get(self._key(target))

    async def list(self, target: Target, options: ListOptions) -> ListResult:
        strategy = self.catalog.strategy(target.rt)
        predicate = self._collection_predicate(target, strategy, options)
        rv_match = options.resource_version_match
        if rv_match and not options.resource_version:
            raise errors.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided")
        if rv_match and rv_match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(
                f'resourceVersionMatch: Unsupported value: "{rv_match}": supported values: '
                '"Exact", "NotOlderThan"')
        if rv_match == "Exact" and options.resource_version == "0":
            raise errors.bad_request(
                'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
        if options.continue_token and options.resource_version not in ("", "0"):
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue")
        if options.limit < 0:
            raise errors.bad_request("limit: Invalid value: must be a non-negative integer")

        start_after = ""
        list_revision = 0
        if options.continue_token:
            token = pagination.decode_continue(options.continue_token)
            start_after, list_revision = token.start_after, token.revision
            # A token from before the last compaction has outlived its history (upstream
            # answers 410 Expired too), even though later pages read the current cache.
            if list_revision <= await self.backend.compacted_revision():
                raise errors.gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.")
        else:
            exact = rv_match == "Exact" or (
                options.limit > 0 and options.resource_version not in ("", "0")
                and rv_match != "NotOlderThan")
            await self._catch_up(options.resource_version)
            if exact:
                wanted = parse_resource_version(options.resource_version)
                if wanted != self.cacher.revision:
                    raise errors.gone(
                        f"too old resource version: {wanted} ({self.cacher.revision})")

        prefix = collection_prefix(target.rt, target.cluster, target.namespace)
        objects = self.cacher.list(prefix)
        revision = list_revision or self.cacher.revision
        if start_after:
            objects = pagination.after_key(objects, prefix + start_after)
        matched: list[CachedObject] = []
        remaining: int | None = None
        continue_token = ""
        for index, cached in enumerate(objects):
            if predicate is not None and not predicate(cached):
                continue
            if options.limit and len(matched) == options.limit:
                continue_token = pagination.encode_continue(
                    start_after=matched[-1].key[len(prefix):], revision=revision)
                remaining = None if predicate is not None else len(objects) - index
                break
            matched.append(cached)
        return ListResult(matched, revision, continue_token, remaining)

    def _collection_predicate(self, target: Target, strategy: Strategy, options: ListOptions,
                              ) -> Callable[[CachedObject], bool] | None:
        predicate = self.predicate(strategy, options.label_selector, options.field_selector)
        if target.cluster != ALL_CLUSTERS:
            return predicate
        if target.namespace:
            # Across all clusters the key prefix cannot select a namespace; filter instead.
            namespace = target.namespace
            selected = predicate
            predicate = (lambda cached: cached.namespace == namespace) if selected is None \
                else (lambda cached: cached.namespace == namespace and selected(cached))
        allowed = target.cluster_filter
        if allowed is None:
            return predicate
        narrowed = predicate
        if narrowed is None:
            return lambda cached: allowed(cluster_of_key(cached.key))
        return lambda cached: allowed(cluster_of_key(cached.key)) and narrowed(cached)

    def predicate(self, strategy: Strategy, label_selector: str, field_selector: str,
                  ) -> Callable[[CachedObject], bool] | None:
        label_sel = labels.parse_label_selector(label_selector) if label_selector else None
        field_sel = fieldselectors.parse_field_selector(field_selector) if field_selector else None
        if field_sel is not None:
            fieldselectors.check_supported(field_sel, strategy.supported_field_selectors)
        if label_sel is not None and label_sel.empty:
            label_sel = None
        if field_sel is not None and field_sel.empty:
            field_sel = None
        if label_sel is None and field_sel is None:
            return None
        if field_sel is None:
            assert label_sel is not None
            match_labels = label_sel.matches
            return lambda cached: match_labels(cached.labels)
        match_fields = _fields_matcher(strategy, field_sel)
        if label_sel is None:
            return lambda cached: match_fields(cached.fields)
        match_labels = label_sel.matches
        return lambda cached: match_labels(cached.labels) and match_fields(cached.fields)

    async def watch(self, target: Target, options: ListOptions, *,
                    send_initial_events: bool | None) -> WatchStart:
        """Start a watch following the resourceVersion rules of kubernetes-api.md."""
        strategy = self.catalog.strategy(target.rt)
        predicate = self._collection_predicate(target, strategy, options)
        prefix = collection_prefix(target.rt, target.cluster, target.namespace)
        rv = options.resource_version
        if send_initial_events is not None:
            if options.resource_version_match != "NotOlderThan":
                raise errors.unprocessable(
                    "sendInitialEvents is forbidden unless resourceVersionMatch is "
                    "\"NotOlderThan\"")
        elif options.resource_version_match:
            raise errors.bad_request("resourceVersionMatch is forbidden for watch")
        if send_initial_events or (send_initial_events is None and rv in ("", "0")):
            await self._catch_up("" if rv == "" else rv)
            initial = self.cacher.list(prefix)
            if predicate is not None:
                initial = [o for o in initial if predicate(o)]
            revision = self.cacher.revision
        else:
            revision = parse_resource_version(rv) if rv else self.cacher.revision
            initial = []
        try:
            watcher = self.cacher.watch(prefix, after_revision=revision, predicate=predicate)
        except CompactedError as exc:
            raise errors.gone(
                f"too old resource version: {revision} ({exc.compacted + 1})") from None
        # A custom resource's watch ends when its CRD (or served version) goes.
        self.catalog.custom.track_watch(target.rt, watcher)
        return WatchStart(initial, watcher, revision)

    # Writes ------------------------------------------------------------------------------

    def _key(self, target: Target, name: str | None = None) -> str:
        return object_key(target.rt, target.cluster, target.namespace, name or target.name)

    def _decode_body(self, target: Target, body: Any) -> dict[str, Any]:
        """Check a request body is an object of the kind the URL names."""
        rt = target.rt
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON or YAML object")
        # Like upstream's decoder, a body without kind/apiVersion takes them from the URL.
        kind = body.setdefault("kind", rt.kind)
        api_version = body.setdefault("apiVersion", rt.api_version)
        if not isinstance(kind, str) or not isinstance(api_version, str):
            raise errors.bad_request(
                f"kind and apiVersion must be strings in '{_preview(body)}'")
        if kind != rt.kind or api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})" if api_version != rt.api_version else
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        meta = body.get("metadata")
        if meta is None:
            body["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.bad_request(
                f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}: "
                "metadata must be an object")
        return body

    def _check_schema(self, strategy: Strategy, obj: dict[str, Any], options: WriteOptions,
                      ) -> None:
        result = fieldcheck.check_fields(obj, strategy.schema,
                                         prune=options.field_validation != "Strict")
        if result.type_errors and strategy.type_errors_are_bad_requests:
            rt = strategy.rt
            detail = "; ".join(c.message if not c.field else f"{c.field}: {c.message}"
                               for c in result.type_errors)
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}',
                causes=result.type_errors)
        if result.unknown:
            if options.field_validation == "Strict":
                raise fieldcheck.strict_error(result.unknown)
            if options.field_validation == "Warn":
                options.warnings.extend(fieldcheck.warning_text(p) for p in result.unknown)

    def _validate(self, strategy: Strategy, target: Target, obj: dict[str, Any],
                  old: dict[str, Any] | None) -> None:
        rt = strategy.rt
        causes = objectmeta.validate_object_meta(
            obj.get("metadata"), namespaced=rt.namespaced,
            name_validator=strategy.name_validator,
            request_namespace=target.namespace if rt.namespaced else None)
        if old is None:
            causes += strategy.validate(obj)
        else:
            causes += objectmeta.validate_object_meta_update(obj["metadata"], old["metadata"])
            causes += strategy.validate_update(obj, old)
        if causes:
            name = str(obj["metadata"].get("name") or obj["metadata"].get("generateName", ""))
            raise errors.invalid(rt.kind, rt.group, name, causes)

    def _check_namespace(self, target: Target, *, creating: bool) -> None:
        """Namespaced objects need a live namespace; a terminating one takes no new content."""
        if not target.rt.namespaced:
            return
        ns = self.cacher.get(object_key(builtin.NAMESPACES, target.cluster, "", target.namespace))
        if ns is None:
            raise errors.not_found("namespaces", "", target.namespace)
        if creating and b'"deletionTimestamp"' in ns.raw:
            raise errors.forbidden(
                f'{target.rt.resource} "{target.name}" is forbidden: unable to create new content '
                f"in namespace {target.namespace} because it is being terminated",
                name=target.name, group=target.rt.group, kind=target.rt.resource)

    async def create(self, target: Target, body: Any, options: WriteOptions) -> dict[str, Any]:
        return await self._create(target, body, options, track=True)

    async def _create(self, target: Target, body: Any, options: WriteOptions, *,
                      track: bool) -> dict[str, Any]:
        rt = target.rt
        strategy = self.catalog.strategy(rt)
        obj = self._decode_body(target, body)
        self._check_schema(strategy, obj, options)
        meta = obj["metadata"]
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != target.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request")
            meta["namespace"] = target.namespace
        else:
            # Upstream drops a namespace sent with a cluster-scoped object instead of failing.
            meta.pop("namespace", None)
        for key in _SERVER_OWNED_META:
            meta.pop(key, None)
        generate = not meta.get("name") and bool(meta.get("generateName"))
        if generate:
            meta["name"] = names.generate_name(str(meta["generateName"]))
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = self._clock()
        if strategy.tracks_generation:
            meta["generation"] = 1
        # Like upstream, ownership records what the client sent, before server defaults.
        if track:
            obj = track_update(None, obj, node=strategy.schema, manager=options.field_manager,
                               api_version=rt.api_version, now=meta["creationTimestamp"])
            meta = obj["metadata"]
        annotations = meta.get("annotations")
        if not isinstance(annotations, dict):
            annotations = meta["annotations"] = {}
        annotations[CLUSTER_ANNOTATION] = target.cluster
        strategy.prepare_for_create(obj)
        for plugin in self._admission_for(rt):
            await plugin.admit_create(rt=rt, cluster=target.cluster, obj=obj)
        # As upstream's admission: no new objects of a kind whose CRD is terminating.
        self._validate(strategy, target, obj, None)
        self.catalog.custom.creates.check(self.cacher, rt, "" if generate else meta["name"])
        self._check_namespace(Target(rt, target.cluster, target.namespace, meta["name"]),
                              creating=True)
        if options.dry_run:
            return obj
        for _attempt in range(_GENERATE_NAME_RETRIES):
            key = self._key(target, obj["metadata"]["name"])
            try:
                stored = encode_for_storage(strategy.storage_form(obj))
                # Counted in flight, so a CRD's cleanup waits for it to land.
                with self.catalog.custom.creates.creating(self.cacher, rt, key.rsplit("/", 1)[1]):
                    kv = await self.backend.create(key, stored)
            except KeyExistsError:
                if not generate:
                    raise errors.already_exists(rt.resource, rt.group,
                                                obj["metadata"]["name"]) from None
                obj["metadata"]["name"] = names.generate_name(str(meta["generateName"]))
                continue
            obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
            await self.cacher.wait_for_revision(kv.mod_revision)
            return obj
        raise StatusError(
            409, "AlreadyExists",
            f"{rt.group_resource} could not generate a unique name for "
            f"{meta.get('generateName')!r}; try again",
        )

    def _encode(self, rt: ResourceType, obj: Mapping[str, Any]) -> bytes:
        return encode_for_storage(self.catalog.strategy(rt).storage_form(obj))

    async def _current(self, target: Target) -> tuple[dict[str, Any], int] | None:
        """The live object and its mod revision, straight from the backend."""
        kv = await self.backend.get(self._key(target))
        if kv is None:
            return None
        obj = decode_stored(kv.value, kv.mod_revision)
        return self.catalog.strategy(target.rt).reading_form(obj), kv.mod_revision

    async def _cached_current(self, target: Target) -> tuple[dict[str, Any], int] | None:
        cached = self.cacher.get(self._key(target))
        if cached is None:
            return await self._current(target)
        obj = decode_stored_raw(cached.raw)
        return self.catalog.strategy(target.rt).reading_form(obj), cached.revision

    async def update(self, target: Target, body: Any, options: WriteOptions, *,
                     subresource: str = "") -> dict[str, Any]:
        """PUT: replace the object (or its status), with optimistic concurrency."""
        rt = target.rt
        strategy = self.catalog.strategy(rt)
        new_body = self._decode_body(target, body)
        self._check_schema(strategy, new_body, options)
        body_name = new_body["metadata"].get("name")
        if body_name and body_name != target.name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL "
                f"({target.name})")
        wanted_rv = str(new_body["metadata"].get("resourceVersion") or "")

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            if wanted_rv and wanted_rv != old["metadata"].get("resourceVersion"):
                raise errors.stale_conflict(rt.resource, rt.group, target.name)
            return copy.deepcopy(new_body)

        return await self.update_with(target, mutate, options,
                                       subresource=subresource)

    async def patch(self, target: Target, patch_type: str, patch_doc: Any,
                    options: WriteOptions, *, force: bool = False,
                    subresource: str = "") -> dict[str, Any]:
        rt = target.rt
        strategy = self.catalog.strategy(rt)
        if patch_type in (APPLY_PATCH, APPLY_PATCH_CBOR):
            return await self._apply(target, strategy, patch_doc, options, force=force,
                                     subresource=subresource)
        if force:
            raise errors.unprocessable("force: Forbidden: may not be specified for non-apply patch")
        if patch_type == STRATEGIC_PATCH and not rt.supports_strategic_merge:
            raise errors.unsupported_media_type(
                patch_type, [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, APPLY_PATCH_CBOR])

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            if patch_type == JSON_PATCH:
                patched = apply_json_patch(old, patch_doc)
            elif patch_type == MERGE_PATCH:
                patched = apply_merge_patch(old, patch_doc)
            elif patch_type == STRATEGIC_PATCH:
                patched = apply_strategic_merge_patch(old, patch_doc, strategy.schema)
            else:
                raise errors.unsupported_media_type(
                    patch_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH])
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch must produce an object")
            patched_name = (patched.get("metadata") or {}).get("name")
            if patched_name != target.name:
                raise errors.bad_request(
                    f"the name of the object ({patched_name}) does not match the name on the "
                    f"URL ({target.name})")
            wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise errors.stale_conflict(rt.resource, rt.group, target.name)
            patched.setdefault("apiVersion", rt.api_version)
            patched.setdefault("kind", rt.kind)
            self._decode_body(target, patched)
            self._check_schema(strategy, patched, options)
            return patched

        return await self.update_with(target, mutate, options,
                                       subresource=subresource)

    async def _apply(self, target: Target, strategy: Strategy, applied: Any,
                     options: WriteOptions, *, force: bool, subresource: str) -> dict[str, Any]:
        rt = target.rt
        if not options.field_manager:
            raise errors.unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                "is required for apply patch")
        applied = self._decode_body(target, applied)
        self._check_schema(strategy, applied, options)
        applied_name = applied["metadata"].get("name")
        if applied_name and applied_name != target.name:
            raise errors.bad_request(
                f"the name of the object ({applied_name}) does not match the name on the URL "
                f"({target.name})")
        for attempt in range(_MAX_CAS_RETRIES):
            current = await (self._cached_current(target) if attempt == 0
                             else self._current(target))
            if current is None:
                if subresource:
                    raise errors.not_found(rt.resource, rt.group, target.name)
                fresh = server_side_apply(
                    None, copy.deepcopy(applied), node=strategy.schema,
                    manager=options.field_manager, api_version=rt.api_version, force=force,
                    now=self._clock())
                fresh["metadata"]["name"] = target.name
                try:
                    return await self._create(target, fresh, options, track=False)
                except StatusError as exc:
                    if exc.reason == "AlreadyExists":
                        continue
                    raise
            old, revision = current
            expected = applied["metadata"].get("resourceVersion")
            if expected and expected != old["metadata"].get("resourceVersion"):
                # As upstream: a configuration that names a resourceVersion applies only
                # to that version of the object.
                raise errors.stale_conflict(rt.resource, rt.group, target.name)
            new = server_side_apply(
                copy.deepcopy(old), copy.deepcopy(applied), node=strategy.schema,
                manager=options.field_manager, api_version=rt.api_version, force=force,
                now=self._clock())
            try:
                return await self._write_update(target, strategy, old, revision, new, options,
                                                subresource=subresource, track=False)
            except ConflictError:
                continue
        raise errors.conflict(rt.resource, rt.group, target.name, "too many concurrent writers")

    async def update_with(self, target: Target,
                          mutate: Callable[[dict[str, Any]], dict[str, Any]],
                          options: WriteOptions, *, subresource: str = "") -> dict[str, Any]:
        """Read-modify-write one object, retrying on concurrent changes."""
        rt = target.rt
        strategy = self.catalog.strategy(rt)
        for attempt in range(_MAX_CAS_RETRIES):
            current = await (self._cached_current(target) if attempt == 0
                             else self._current(target))
            if current is None:
                raise errors.not_found(rt.resource, rt.group, target.name)
            old, revision = current
            new = mutate(copy.deepcopy(old))
            try:
                return await self._write_update(target, strategy, old, revision, new, options,
                                                subresource=subresource, track=True)
            except ConflictError:
                continue
        raise errors.conflict(rt.resource, rt.group, target.name, "too many concurrent writers")

    async def _write_update(self, target: Target, strategy: Strategy, old: dict[str, Any],
                            revision: int, new: dict[str, Any], options: WriteOptions, *,
                            subresource: str, track: bool) -> dict[str, Any]:
        """Validate and store one update; raises ConflictError when ``old`` is stale."""
        rt = target.rt
        new_meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        # What the server owns cannot be changed by a client.
        for key in ("uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation"):
            if key in old_meta:
                new_meta[key] = old_meta[key]
            else:
                new_meta.pop(key, None)
        new_meta["name"] = old_meta["name"]
        if rt.namespaced:
            new_meta.setdefault("namespace", old_meta.get("namespace"))
        else:
            new_meta.pop("namespace", None)
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        annotations = new_meta.get("annotations")
        if not isinstance(annotations, dict):
            annotations = new_meta["annotations"] = {}
        annotations[CLUSTER_ANNOTATION] = target.cluster
        if subresource == "status":
            new = _only_status(old, new)
        elif subresource == "finalize":
            new = _only_spec_finalizers(old, new)
        else:
            strategy.prepare_for_update(new, old)
            for plugin in self._admission_for(rt):
                await plugin.admit_update(rt=rt, cluster=target.cluster, new=new, old=old)
        if strategy.tracks_generation and _spec_changed(old, new):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        self._validate(strategy, target, new, old)
        if track:
            new = track_update(old, new, node=strategy.schema, manager=options.field_manager,
                               api_version=rt.api_version, now=self._clock(),
                               subresource=subresource)
        if _same_ignoring_times(old, new):
            return old
        finalizing = bool(new_meta.get("deletionTimestamp")) and not _pending_finalizers(rt, new)
        if options.dry_run:
            return new
        key = self._key(target)
        if finalizing:
            try:
                kv = await self.backend.delete(key, expected_mod_revision=revision)
            except KeyNotFoundError:
                raise errors.not_found(rt.resource, rt.group, target.name) from None
            await self.cacher.wait_for_revision(kv.mod_revision)
            new["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return new
        try:
            kv = await self.backend.update(key, encode_for_storage(strategy.storage_form(new)),
                                           expected_mod_revision=revision)
        except KeyNotFoundError:
            raise errors.not_found(rt.resource, rt.group, target.name) from None
        new["metadata"]["resourceVersion"] = str(kv.mod_revision)
        await self.cacher.wait_for_revision(kv.mod_revision)
        return new

    async def delete(self, target: Target, options: DeleteOptions) -> tuple[dict[str, Any], bool]:
        """Delete one object. Returns the object and whether it is gone (False while
        finalizers keep it, with deletionTimestamp set)."""
        rt = target.rt
        for attempt in range(_MAX_CAS_RETRIES):
            current = await (self._cached_current(target) if attempt == 0
                             else self._current(target))
            if current is None:
                raise errors.not_found(rt.resource, rt.group, target.name)
            obj, revision = current
            meta = obj["metadata"]
            if options.uid and options.uid != meta.get("uid"):
                raise errors.conflict(
                    rt.resource, rt.group, target.name,
                    f"Precondition failed: UID in precondition: {options.uid}, "
                    f"UID in object meta: {meta.get('uid')}")
            if options.resource_version and options.resource_version != meta["resourceVersion"]:
                raise errors.conflict(
                    rt.resource, rt.group, target.name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{options.resource_version}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}")
            updated = copy.deepcopy(obj)
            _set_gc_finalizers(rt, updated["metadata"], options.propagation_policy)
            if _pending_finalizers(rt, updated):
                if not meta.get("deletionTimestamp"):
                    updated["metadata"]["deletionTimestamp"] = self._clock()
                    updated["metadata"]["deletionGracePeriodSeconds"] = 0
                    generation = meta.get("generation")
                    if isinstance(generation, int) and generation > 0:
                        # As upstream: the deletion is a change of the object's desired
                        # state, so controllers that filter on generation see it.
                        updated["metadata"]["generation"] = generation + 1
                if rt.resource == "namespaces" and not rt.group:
                    updated.setdefault("status", {})["phase"] = "Terminating"
                if updated == obj:
                    return obj, False
                if options.dry_run:
                    return updated, False
                try:
                    kv = await self.backend.update(self._key(target),
                                                   self._encode(rt, updated),
                                                   expected_mod_revision=revision)
                except ConflictError:
                    continue
                except KeyNotFoundError:
                    raise errors.not_found(rt.resource, rt.group, target.name) from None
                updated["metadata"]["resourceVersion"] = str(kv.mod_revision)
                await self.cacher.wait_for_revision(kv.mod_revision)
                return updated, False
            if options.dry_run:
                return obj, True
            try:
                kv = await self.backend.delete(self._key(target), expected_mod_revision=revision)
            except ConflictError:
                continue
            except KeyNotFoundError:
                raise errors.not_found(rt.resource, rt.group, target.name) from None
            await self.cacher.wait_for_revision(kv.mod_revision)
            return obj, True
        raise errors.conflict(rt.resource, rt.group, target.name, "too many concurrent writers")

    async def delete_collection(self, target: Target, list_options: ListOptions,
                                options: DeleteOptions) -> builtins.list[dict[str, Any]]:
        result = await self.list(target, ListOptions(
            label_selector=list_options.label_selector,
            field_selector=list_options.field_selector))
        deleted: builtins.list[dict[str, Any]] = []
        for cached in result.items:
            one = Target(target.rt, target.cluster, cached.namespace, cached.name)
            try:
                obj, _gone = await self.delete(one, DeleteOptions(
                    propagation_policy=options.propagation_policy, dry_run=options.dry_run))
            except StatusError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(obj)
        return deleted


def parse_resource_version(value: str) -> int:
    try:
        revision = int(value)
    except ValueError:
        revision = -1
    if revision < 0 or not value.isdigit():
        raise errors.bad_request(f'invalid resource version "{value[:64]}"')
    return revision


def decode_stored_raw(raw: bytes) -> dict[str, Any]:
    """A cached object's bytes (which already carry their resourceVersion) as a dict."""
    obj: dict[str, Any] = orjson.loads(raw)
    return obj


def _preview(body: Mapping[str, Any]) -> str:
    text = orjson.dumps(body).decode()
    return text if len(text) <= 200 else text[:200] + "..."


def _only_status(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A status write changes .status and nothing else (metadata labels/annotations may
    change upstream through status too, but spec never does)."""
    result = copy.deepcopy(old)
    if "status" in new:
        result["status"] = new["status"]
    else:
        result.pop("status", None)
    result["metadata"]["managedFields"] = new["metadata"].get(
        "managedFields", old["metadata"].get("managedFields"))
    return result


def _only_spec_finalizers(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The finalize subresource of a namespace changes spec.finalizers and nothing else."""
    result = copy.deepcopy(old)
    finalizers = (new.get("spec") or {}).get("finalizers") or []
    result.setdefault("spec", {})["finalizers"] = list(finalizers)
    return result


def _spec_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    ignored = {"metadata", "status"}
    keys = (set(old) | set(new)) - ignored
    return any(old.get(k) != new.get(k) for k in keys)


def _strip_times(obj: Mapping[str, Any]) -> Any:
    meta = dict(obj.get("metadata") or {})
    entries = meta.get("managedFields")
    if isinstance(entries, list):
        meta["managedFields"] = [
            {k: v for k, v in e.items() if k != "time"} if isinstance(e, dict) else e
            for e in entries
        ]
    return {**obj, "metadata": meta}


def _same_ignoring_times(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """An update that changes nothing but managed-field timestamps is not written."""
    if old == new:
        return True
    return bool(_strip_times(old) == _strip_times(new))


def _set_gc_finalizers(rt: ResourceType, meta: dict[str, Any], policy: str) -> None:
    """Put the garbage collector's finalizer for ``policy`` on an object being deleted.

    As upstream's deletionFinalizersForGarbageCollection: Orphan adds ``orphan``,
    Foreground adds ``foregroundDeletion``, Background takes both off (so a Background
    delete of an object waiting for its dependents deletes it now). Without a policy, a GC
    finalizer already there stands, else Background. This holds for an object already
    being deleted too: a second delete may change its policy. Events do not take part in
    garbage collection (their strategy says Unsupported upstream)."""
    if rt.stored_resource == "events" and not rt.stored_group:
        return
    finalizers = meta.get("finalizers") or []
    if not isinstance(finalizers, list):
        return
    if not policy:
        policy = next((_GC_POLICY_OF[f] for f in finalizers if f in _GC_POLICY_OF),
                      "Background")
    wanted = [f for f in finalizers if f not in _GC_POLICY_OF]
    if policy == "Orphan":
        wanted.append(objectmeta.FINALIZER_ORPHAN_DEPENDENTS)
    elif policy == "Foreground":
        wanted.append(objectmeta.FINALIZER_DELETE_DEPENDENTS)
    if set(wanted) == set(finalizers):
        return
    if wanted:
        meta["finalizers"] = wanted
    else:
        meta.pop("finalizers", None)


def _pending_finalizers(rt: ResourceType, obj: Mapping[str, Any]) -> bool:
    if (obj.get("metadata") or {}).get("finalizers"):
        return True
    if rt.resource == "namespaces" and not rt.group:
        return bool((obj.get("spec") or {}).get("finalizers"))
    return False

def _fields_matcher(strategy: Strategy, selector: fieldselectors.FieldSelector,
                    ) -> Callable[[Mapping[str, str]], bool]:
    """Match cached fields, renaming the selector's fields where the kind is stored in
    another form (events.k8s.io Events are stored as core Events)."""
    names = {requirement[0] for requirement in selector.requirements}
    sources = {name: strategy.field_selector_alias(name) for name in names}
    if all(name == source for name, source in sources.items()):
        return selector.matches
    return lambda fields: selector.matches(
        {name: fields.get(source, "") for name, source in sources.items()})
