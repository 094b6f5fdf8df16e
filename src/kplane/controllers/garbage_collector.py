"""Garbage collection: dependents go with their owners, as upstream's garbage collector.

This controller owns what ``metadata.ownerReferences`` promise. Operators (kopf,
controller-runtime) set owner references on the ConfigMaps, Secrets and custom resources
they create and rely on them to disappear with the parent; ``kubectl delete --cascade``
and the ``propagationPolicy`` of a DELETE choose how. The Store only records the choice
as a finalizer on the deleted owner (``foregroundDeletion`` or ``orphan``); this
controller carries it out, per logical cluster (an owner reference never leaves its
workspace):

* A dependent none of whose owners exists any more (absent, or present with another uid:
  a re-created owner is a different owner) is deleted, in the background, or in the
  foreground when it has dependents itself and an owner waits for it in the foreground.
  A dependent with some owners left loses only the references to the missing ones.
* An owner deleted in the foreground keeps ``foregroundDeletion`` until none of its
  dependents with ``blockOwnerDeletion: true`` exists; its dependents are deleted first.
* An owner deleted with Orphan first has itself removed from every dependent's owner
  references, then loses ``orphan``.

How, and what it costs. One watch follows the whole cache (every resource of every
logical cluster) through a predicate that lets through only objects with owner
references, objects held by a garbage collector finalizer, and objects whose name some
indexed reference names (so an owner's deletion is seen). Creating an object without owner
references costs a bytes search or two and no queued event. The index maps
(cluster, owner uid) to dependents and holds only objects that carry owner references.
Events only trigger work: two work queues (dependents to classify, owners to finalize)
decide from the cache's current state, so a late or repeated event is harmless.

Several kplane servers on one etcd each run this controller. Every write is a
compare-and-swap through the Store (a delete has the uid and resourceVersion the decision
was made on as preconditions; reference and finalizer removals are read-modify-write), so
collectors racing on one object are safe: the loser sees NotFound (done) or Conflict
(decide again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.objectmeta import FINALIZER_DELETE_DEPENDENTS as FOREGROUND
from kplane.apimachinery.objectmeta import FINALIZER_ORPHAN_DEPENDENTS as ORPHAN
from kplane.controllers.loop import WorkQueue, follow_prefix, stop_tasks
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.keys import ROOT, cluster_of_key, object_key, parse_key, resource_prefix
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import Store, Target
from kplane.storage.cacher import CachedObject

log = logging.getLogger(__name__)

MANAGER = "garbage-collector"
DELETE_WORKERS = 4
OWNER_WORKERS = 2
_RETRY_SECONDS = 0.5
# A reference to a kind the cluster does not serve is retried, backing off up to this.
_UNRESOLVED_MAX_SECONDS = 30.0
# Upstream's collector ignores Events (core and events.k8s.io share this storage).
_EVENTS_PREFIX = resource_prefix(builtin.EVENTS)


@dataclass(frozen=True, slots=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str
    block: bool


@dataclass(frozen=True, slots=True)
class _Dependent:
    cluster: str
    uid: str
    refs: tuple[OwnerRef, ...]


def owner_refs(meta: dict[str, Any]) -> tuple[OwnerRef, ...]:
    """The well-formed owner references of an object's metadata."""
    refs = meta.get("ownerReferences")
    if not isinstance(refs, list):
        return ()
    found = []
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        parts = (ref.get("apiVersion"), ref.get("kind"), ref.get("name"), ref.get("uid"))
        if all(isinstance(part, str) and part for part in parts):
            api_version, kind, name, uid = (str(part) for part in parts)
            found.append(OwnerRef(api_version, kind, name, uid,
                                  ref.get("blockOwnerDeletion") is True))
    return tuple(found)


def _metadata(raw: bytes) -> dict[str, Any]:
    meta = orjson.loads(raw).get("metadata")
    return meta if isinstance(meta, dict) else {}


def _finalizers(meta: dict[str, Any]) -> list[Any]:
    finalizers = meta.get("finalizers")
    return finalizers if isinstance(finalizers, list) else []


def _describe(target: Target) -> str:
    where = f"{target.namespace}/{target.name}" if target.namespace else target.name
    return f"{target.rt.group_resource} {where} in {target.cluster}"


def _held_for_gc(raw: bytes) -> bool:
    """Cheaply: may this object be an owner deleted in the foreground or with Orphan?"""
    return b'"deletionTimestamp"' in raw and (b'"foregroundDeletion"' in raw
                                              or b'"orphan"' in raw)


class GarbageCollector:
    def __init__(self, *, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._options = WriteOptions(field_manager=MANAGER)
        self._deletes = WorkQueue(self.collect, retry_after=lambda: _RETRY_SECONDS,
                                  what="dependent")
        self._owners = WorkQueue(self.finalize_owner, retry_after=lambda: _RETRY_SECONDS,
                                 what="owner")
        self._tasks: list[asyncio.Task[None]] = []
        # The index: only objects with owner references have entries.
        self._refs: dict[str, _Dependent] = {}
        self._dependents: dict[tuple[str, str], set[str]] = {}
        self._owner_names: dict[str, int] = {}
        # Owners deleted in the foreground, (cluster, uid) -> key: a dependent's change
        # may unblock them.
        self._waiting: dict[tuple[str, str], str] = {}
        self._unresolved: dict[str, int] = {}
        self._builtin_kinds = {(rt.group, rt.version, rt.kind): rt
                               for rt in builtin.BUILTIN_RESOURCES
                               if rt not in builtin.REVIEWS}

    async def start(self) -> None:
        follow = follow_prefix(self._store, ROOT, self._on_change, predicate=self._relevant)
        self._tasks = [asyncio.create_task(follow, name="garbage-collector-watch"),
                       *self._deletes.workers(DELETE_WORKERS, name="garbage-collector-delete"),
                       *self._owners.workers(OWNER_WORKERS, name="garbage-collector-owner")]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    def dependents_of(self, cluster: str, uid: str) -> set[str]:
        """The keys of the objects that name ``uid`` as an owner (for tests and debugging)."""
        return set(self._dependents.get((cluster, uid), ()))

    # Watching ----------------------------------------------------------------------------

    def _relevant(self, cached: CachedObject) -> bool:
        # Runs for every change in the cache: a create without owners must cost nothing.
        raw = cached.raw
        return (b'"ownerReferences"' in raw or cached.name in self._owner_names
                or _held_for_gc(raw))

    def _on_change(self, cached: CachedObject, deleted: bool) -> None:
        try:
            self._observe(cached, deleted)
        except Exception:
            # An odd object must not stop the watch every other object depends on.
            log.exception("garbage collector cannot index %s; skipping it", cached.key)

    def _observe(self, cached: CachedObject, deleted: bool) -> None:
        key, raw = cached.key, cached.raw
        cluster = cluster_of_key(key)
        meta: dict[str, Any] | None = None
        # As a dependent.
        if deleted or b'"ownerReferences"' not in raw or key.startswith(_EVENTS_PREFIX):
            old = self._unindex(key)
            if old is not None:
                self._wake_waiting_owners(old)
        else:
            meta = _metadata(raw)
            refs = owner_refs(meta)
            old = self._index(key, cluster, str(meta.get("uid", "")), refs)
            if old is not None and old.refs != refs:
                self._wake_waiting_owners(old)
            if refs:
                self._deletes.add(cluster, key)
        # As an owner.
        held = _held_for_gc(raw)
        if not held and cached.name not in self._owner_names:
            return
        if meta is None:
            meta = _metadata(raw)
        uid = str(meta.get("uid", ""))
        if deleted:
            self._waiting.pop((cluster, uid), None)
            for dependent in self._dependents.get((cluster, uid), ()):
                self._deletes.add(cluster, dependent)
            return
        finalizers = _finalizers(meta) if held and meta.get("deletionTimestamp") else []
        if FOREGROUND in finalizers:
            self._waiting[(cluster, uid)] = key
        else:
            self._waiting.pop((cluster, uid), None)
        if FOREGROUND in finalizers or ORPHAN in finalizers:
            self._owners.add(cluster, key)

    def _index(self, key: str, cluster: str, uid: str,
               refs: tuple[OwnerRef, ...]) -> _Dependent | None:
        """Record a dependent's references; what was recorded before."""
        old = self._refs.get(key)
        if old is not None and old.uid == uid and old.refs == refs:
            return old
        self._unindex(key)
        if refs:
            self._refs[key] = _Dependent(cluster, uid, refs)
            for ref in refs:
                self._dependents.setdefault((cluster, ref.uid), set()).add(key)
                self._owner_names[ref.name] = self._owner_names.get(ref.name, 0) + 1
        return old

    def _unindex(self, key: str) -> _Dependent | None:
        old = self._refs.pop(key, None)
        if old is None:
            return None
        self._unresolved.pop(key, None)
        for ref in old.refs:
            dependents = self._dependents.get((old.cluster, ref.uid))
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[(old.cluster, ref.uid)]
            left = self._owner_names.get(ref.name, 0) - 1
            if left > 0:
                self._owner_names[ref.name] = left
            else:
                self._owner_names.pop(ref.name, None)
        return old

    def _wake_waiting_owners(self, dependent: _Dependent) -> None:
        for ref in dependent.refs:
            owner = self._waiting.get((dependent.cluster, ref.uid))
            if owner is not None:
                self._owners.add(dependent.cluster, owner)

    # Dependents --------------------------------------------------------------------------

    async def collect(self, cluster: str, key: str) -> bool:
        """Delete a dependent whose owners are gone, or drop its dangling references."""
        cached = self._store.cacher.get(key)
        if cached is None or b'"ownerReferences"' not in cached.raw:
            self._unresolved.pop(key, None)
            return True
        meta = _metadata(cached.raw)
        refs = owner_refs(meta)
        target = self._target(key)
        # Being deleted is a one-way trip; its own owner work (if any) is the owner queue's.
        if not refs or meta.get("deletionTimestamp") or target is None:
            return True
        solid: list[OwnerRef] = []
        gone: list[OwnerRef] = []
        waiting: list[OwnerRef] = []
        for ref in refs:
            owner_rt = self._owner_type(cluster, ref)
            if owner_rt is None:
                self._retry_unresolved(cluster, key)
                return True
            if owner_rt.namespaced and not target.namespace:
                # Upstream leaves a cluster-scoped object naming a namespaced owner alone.
                log.info("%s is cluster-scoped but names a namespaced owner; ignoring it", key)
                return True
            owner = self._store.cacher.get(object_key(
                owner_rt, cluster, target.namespace if owner_rt.namespaced else "", ref.name))
            owner_meta = _metadata(owner.raw) if owner is not None else {}
            if owner_meta.get("uid") != ref.uid:
                gone.append(ref)
            elif owner_meta.get("deletionTimestamp") and FOREGROUND in _finalizers(owner_meta):
                waiting.append(ref)
            else:
                solid.append(ref)
        self._unresolved.pop(key, None)
        uid = str(meta.get("uid", ""))
        if solid:
            if gone or waiting:
                # A waiting owner must not keep waiting for a dependent that stays.
                await self._without_references(target, uid, {r.uid for r in gone + waiting})
            return True
        resource_version = str(meta.get("resourceVersion", ""))
        if waiting and self._dependents.get((cluster, uid)):
            policy = "Foreground"
            if self._has_waiting_dependent(cluster, uid):
                # Owner and dependent waiting for each other would wait forever (upstream
                # breaks such a cycle the same way, by unblocking this object's owners).
                unblocked = await self._unblocked(target, uid)
                if unblocked is None:
                    return True
                resource_version = str(unblocked["metadata"].get("resourceVersion", ""))
        else:
            finalizers = _finalizers(meta)
            policy = ("Orphan" if ORPHAN in finalizers else
                      "Foreground" if FOREGROUND in finalizers else "Background")
        return await self._delete(target, DeleteOptions(
            uid=uid, resource_version=resource_version, propagation_policy=policy))

    def _owner_type(self, cluster: str, ref: OwnerRef) -> ResourceType | None:
        group, _, version = ref.api_version.rpartition("/")
        known = self._builtin_kinds.get((group, version, ref.kind))
        if known is not None:
            return known
        for rt in self._catalog.resources(cluster):
            if rt.kind == ref.kind and rt.version == version and rt.group == group:
                return rt
        return None

    def _retry_unresolved(self, cluster: str, key: str) -> None:
        """Upstream cannot tell a kind not served yet (a CRD on its way) from a wrong one,
        so it never deletes over it and tries again later; so do we, backing off."""
        attempts = self._unresolved.get(key, 0)
        self._unresolved[key] = attempts + 1
        delay = min(_RETRY_SECONDS * 2 ** attempts, _UNRESOLVED_MAX_SECONDS)
        asyncio.get_running_loop().call_later(delay, self._deletes.add, cluster, key)

    def _has_waiting_dependent(self, cluster: str, uid: str) -> bool:
        for key in self._dependents.get((cluster, uid), ()):
            dependent = self._refs.get(key)
            if dependent is not None and (cluster, dependent.uid) in self._waiting:
                return True
        return False

    async def _delete(self, target: Target, options: DeleteOptions) -> bool:
        try:
            await self._store.delete(target, options)
        except StatusError as exc:
            if exc.code == 409:
                return False  # changed since the decision: decide again
            if exc.code != 404:
                log.warning("garbage collector cannot delete %s: %s", _describe(target),
                            exc.message)
        return True

    async def _without_references(self, target: Target, uid: str, owners: set[str]) -> None:
        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            meta = current["metadata"]
            refs = meta.get("ownerReferences")
            if meta.get("uid") != uid or not isinstance(refs, list):
                return current
            kept = [r for r in refs if not (isinstance(r, dict) and r.get("uid") in owners)]
            if len(kept) == len(refs):
                return current
            if kept:
                meta["ownerReferences"] = kept
            else:
                meta.pop("ownerReferences")
            return current

        await self._update(target, mutate)

    async def _unblocked(self, target: Target, uid: str) -> dict[str, Any] | None:
        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            meta = current["metadata"]
            if meta.get("uid") != uid:
                return current
            for ref in meta.get("ownerReferences") or []:
                if isinstance(ref, dict) and ref.get("blockOwnerDeletion") is True:
                    ref["blockOwnerDeletion"] = False
            return current

        return await self._update(target, mutate)

    async def _update(self, target: Target, mutate: Callable[[dict[str, Any]], dict[str, Any]],
                      ) -> dict[str, Any] | None:
        """A read-modify-write (compare-and-swap, retried by the Store); None if the object
        is gone or cannot be written."""
        try:
            return await self._store.update_with(target, mutate, self._options)
        except StatusError as exc:
            if exc.code == 409:
                raise  # many writers at once: the work queue tries again later
            if exc.code != 404:
                log.warning("garbage collector cannot update %s: %s", _describe(target),
                            exc.message)
            return None

    # Owners ------------------------------------------------------------------------------

    async def finalize_owner(self, cluster: str, key: str) -> bool:
        """Carry out an owner's Orphan or Foreground deletion, then remove its finalizer."""
        cached = self._store.cacher.get(key)
        target = self._target(key)
        if cached is None or target is None:
            return True
        meta = _metadata(cached.raw)
        finalizers = _finalizers(meta)
        uid = str(meta.get("uid", ""))
        if not meta.get("deletionTimestamp"):
            return True
        dependents = sorted(self._dependents.get((cluster, uid), ()))
        if ORPHAN in finalizers:
            for dependent_key in dependents:
                dependent = self._refs.get(dependent_key)
                dependent_target = self._target(dependent_key)
                if dependent is not None and dependent_target is not None:
                    await self._without_references(dependent_target, dependent.uid, {uid})
            await self._without_finalizer(target, uid, ORPHAN)
        elif FOREGROUND in finalizers:
            if not any(self._blocks(cluster, uid, dependent_key)
                       for dependent_key in dependents):
                await self._without_finalizer(target, uid, FOREGROUND)
                return True
            for dependent_key in dependents:
                self._deletes.add(cluster, dependent_key)
        return True

    def _blocks(self, cluster: str, owner_uid: str, key: str) -> bool:
        dependent = self._refs.get(key)
        return (dependent is not None
                and any(ref.uid == owner_uid and ref.block for ref in dependent.refs)
                # The index may still hold a dependent whose deletion it has not seen.
                and self._store.cacher.get(key) is not None)

    async def _without_finalizer(self, target: Target, uid: str, finalizer: str) -> None:
        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            meta = current["metadata"]
            finalizers = _finalizers(meta)
            if meta.get("uid") == uid and finalizer in finalizers:
                meta["finalizers"] = [f for f in finalizers if f != finalizer]
            return current

        await self._update(target, mutate)

    def _target(self, key: str) -> Target | None:
        parsed = parse_key(key)
        if parsed is None:
            return None
        rt = self._catalog.by_storage(parsed.group, parsed.resource, parsed.cluster)
        if rt is None:
            return None
        return Target(rt, parsed.cluster, parsed.namespace, parsed.name)
