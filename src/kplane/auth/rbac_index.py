"""The RBAC objects of every logical cluster, indexed for the authorizer, fed by the cache.

One :class:`RbacIndex` holds, per logical cluster that has any RBAC object, its Roles and
ClusterRoles (decoded once) and its bindings indexed by subject, so a request only looks
at the bindings naming its user or one of its groups. A cluster without RBAC objects has
no entry at all: it costs nothing, and sees only the built-in policy
(:mod:`kplane.auth.bootstrap_policy`), which is shared by every cluster and overridden
per cluster by a stored object of the same name.

:class:`IndexFollower` keeps the index in step with the watch cache: one cache watch per
RBAC resource across all clusters; when a watch ends (the cache relisted, or we fell
behind) that resource is reloaded from the cache. It also knows which cache revision the
index reflects, so a request can wait for a binding that was just written.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from kplane.auth import bootstrap_policy
from kplane.auth.authn import UserInfo
from kplane.auth.rbac import (
    CLUSTER_ROLE_KIND,
    GROUP_KIND,
    ROLE_KIND,
    USER_KIND,
    Binding,
    PolicyRule,
    Role,
    Subject,
    decode_binding,
    decode_role,
)
from kplane.registry.keys import parse_key
from kplane.storage.backend import CompactedError, UnavailableError
from kplane.storage.cacher import DELETED, CachedObject, Cacher, CacheWatcher

logger = logging.getLogger(__name__)

RBAC_STORAGE_GROUP = "rbac.authorization.k8s.io"
ROLES = "roles"
ROLE_BINDINGS = "rolebindings"
CLUSTER_ROLES = "clusterroles"
CLUSTER_ROLE_BINDINGS = "clusterrolebindings"
RBAC_RESOURCES = (ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS)
_RETRY_SECONDS = 0.1


def rbac_prefix(resource: str) -> str:
    """Every object of one RBAC resource, across all logical clusters."""
    return f"/registry/{RBAC_STORAGE_GROUP}/{resource}/"


BindingsByName = dict[str, Binding]


@dataclass(slots=True)
class _SubjectIndex:
    """Bindings by the user name or group name a subject matches."""

    users: dict[str, BindingsByName] = field(default_factory=dict)
    groups: dict[str, BindingsByName] = field(default_factory=dict)

    def add(self, binding: Binding) -> None:
        for subject in binding.subjects:
            self._table(subject).setdefault(subject.name, {})[binding.name] = binding

    def remove(self, binding: Binding) -> None:
        for subject in binding.subjects:
            table = self._table(subject)
            named = table.get(subject.name)
            if named is not None and named.get(binding.name) is binding:
                del named[binding.name]
                if not named:
                    del table[subject.name]

    def _table(self, subject: Subject) -> dict[str, BindingsByName]:
        return self.users if subject.kind == USER_KIND else self.groups

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


@dataclass(slots=True)
class ClusterPolicy:
    """The stored RBAC objects of one logical cluster."""

    roles: dict[tuple[str, str], Role] = field(default_factory=dict)
    cluster_roles: dict[str, Role] = field(default_factory=dict)
    role_bindings: dict[tuple[str, str], Binding] = field(default_factory=dict)
    cluster_role_bindings: dict[str, Binding] = field(default_factory=dict)
    # Role bindings by namespace, then by subject.
    role_binding_subjects: dict[str, _SubjectIndex] = field(default_factory=dict)
    cluster_role_binding_subjects: _SubjectIndex = field(default_factory=_SubjectIndex)
    # Effective rules of aggregated ClusterRoles; dropped whenever a ClusterRole changes.
    aggregated: dict[str, tuple[PolicyRule, ...]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.roles or self.cluster_roles or self.role_bindings
                    or self.cluster_role_bindings)


class _Bootstrap:
    """The built-in policy, decoded once and shared by every cluster."""

    def __init__(self) -> None:
        self.cluster_roles = {
            role.name: role for role in map(decode_role, bootstrap_policy.cluster_roles())}
        self.cluster_role_bindings = {
            binding.name: binding
            for binding in map(decode_binding, bootstrap_policy.cluster_role_bindings())}
        self.subjects = _SubjectIndex()
        for binding in self.cluster_role_bindings.values():
            self.subjects.add(binding)
        # Aggregated rules for clusters that store no ClusterRole of their own.
        self.aggregated: dict[str, tuple[PolicyRule, ...]] = {}


_BOOTSTRAP = _Bootstrap()


class RbacIndex:
    """Decoded RBAC objects per logical cluster (see the module docstring)."""

    def __init__(self) -> None:
        self._clusters: dict[str, ClusterPolicy] = {}

    # -- feeding -------------------------------------------------------------------

    def put(self, key: str, raw: bytes) -> None:
        """Add or replace the object stored under ``key``."""
        parsed = parse_key(key)
        if parsed is None or parsed.resource not in RBAC_RESOURCES:
            return
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.warning("cannot decode %s; ignoring it for authorization", key)
            self.remove(key)
            return
        policy = self._clusters.setdefault(parsed.cluster, ClusterPolicy())
        self._remove_from(policy, parsed.resource, parsed.namespace, parsed.name)
        if parsed.resource == ROLES:
            policy.roles[parsed.namespace, parsed.name] = decode_role(obj)
        elif parsed.resource == CLUSTER_ROLES:
            policy.cluster_roles[parsed.name] = decode_role(obj)
            policy.aggregated.clear()
        elif parsed.resource == ROLE_BINDINGS:
            binding = decode_binding(obj)
            policy.role_bindings[parsed.namespace, parsed.name] = binding
            policy.role_binding_subjects.setdefault(parsed.namespace, _SubjectIndex()).add(
                binding)
        else:
            binding = decode_binding(obj)
            policy.cluster_role_bindings[parsed.name] = binding
            policy.cluster_role_binding_subjects.add(binding)

    def remove(self, key: str) -> None:
        parsed = parse_key(key)
        if parsed is None or parsed.resource not in RBAC_RESOURCES:
            return
        policy = self._clusters.get(parsed.cluster)
        if policy is None:
            return
        self._remove_from(policy, parsed.resource, parsed.namespace, parsed.name)
        if policy.is_empty():
            del self._clusters[parsed.cluster]

    def replace_resource(self, resource: str, objects: list[CachedObject]) -> None:
        """Forget every object of one RBAC resource and load ``objects`` instead."""
        for cluster in list(self._clusters):
            policy = self._clusters[cluster]
            for namespace, name in self._names(policy, resource):
                self._remove_from(policy, resource, namespace, name)
            if policy.is_empty():
                del self._clusters[cluster]
        for cached in objects:
            self.put(cached.key, cached.raw)

    @staticmethod
    def _names(policy: ClusterPolicy, resource: str) -> list[tuple[str, str]]:
        if resource == ROLES:
            return list(policy.roles)
        if resource == ROLE_BINDINGS:
            return list(policy.role_bindings)
        if resource == CLUSTER_ROLES:
            return [("", name) for name in policy.cluster_roles]
        return [("", name) for name in policy.cluster_role_bindings]

    @staticmethod
    def _remove_from(policy: ClusterPolicy, resource: str, namespace: str, name: str) -> None:
        if resource == ROLES:
            policy.roles.pop((namespace, name), None)
        elif resource == CLUSTER_ROLES:
            if policy.cluster_roles.pop(name, None) is not None:
                policy.aggregated.clear()
        elif resource == ROLE_BINDINGS:
            old = policy.role_bindings.pop((namespace, name), None)
            subjects = policy.role_binding_subjects.get(namespace)
            if old is not None and subjects is not None:
                subjects.remove(old)
                if not subjects:
                    del policy.role_binding_subjects[namespace]
        else:
            old = policy.cluster_role_bindings.pop(name, None)
            if old is not None:
                policy.cluster_role_binding_subjects.remove(old)

    # -- reading -------------------------------------------------------------------

    def has_cluster(self, cluster: str) -> bool:
        """Whether the cluster stores any RBAC object (an entry costs memory only then)."""
        return cluster in self._clusters

    @property
    def cluster_count(self) -> int:
        return len(self._clusters)

    def cluster_role(self, cluster: str, name: str) -> Role | None:
        """A stored ClusterRole, else the built-in one of that name."""
        policy = self._clusters.get(cluster)
        if policy is not None:
            stored = policy.cluster_roles.get(name)
            if stored is not None:
                return stored
        return _BOOTSTRAP.cluster_roles.get(name)

    def role_rules(self, cluster: str, binding: Binding) -> tuple[PolicyRule, ...] | None:
        """The effective rules a binding grants, or None if its role does not exist."""
        if binding.role_kind == CLUSTER_ROLE_KIND:
            return self.cluster_role_rules(cluster, binding.role_name)
        if binding.role_kind != ROLE_KIND or not binding.namespace:
            return None
        policy = self._clusters.get(cluster)
        role = policy.roles.get((binding.namespace, binding.role_name)) if policy else None
        return role.rules if role is not None else None

    def cluster_role_rules(self, cluster: str, name: str) -> tuple[PolicyRule, ...] | None:
        """A ClusterRole's rules, with those of the ClusterRoles it aggregates."""
        role = self.cluster_role(cluster, name)
        if role is None:
            return None
        if role.aggregation is None:
            return role.rules
        return self._aggregated_rules(cluster, role, visiting=frozenset())

    def _aggregated_rules(self, cluster: str, role: Role, *,
                          visiting: frozenset[str]) -> tuple[PolicyRule, ...]:
        policy = self._clusters.get(cluster)
        memo = policy.aggregated if policy and policy.cluster_roles else _BOOTSTRAP.aggregated
        cached = memo.get(role.name)
        if cached is not None:
            return cached
        rules = list(role.rules)
        inner = visiting | {role.name}
        for other in self._all_cluster_roles(cluster):
            # A cycle of aggregated roles contributes each role's own rules once.
            if other.name in inner or not role.aggregates(other):
                continue
            if other.aggregation is None:
                rules.extend(other.rules)
            else:
                rules.extend(self._aggregated_rules(cluster, other, visiting=inner))
        result = tuple(rules)
        if not visiting:
            memo[role.name] = result
        return result

    def _all_cluster_roles(self, cluster: str) -> list[Role]:
        policy = self._clusters.get(cluster)
        merged = dict(_BOOTSTRAP.cluster_roles)
        if policy is not None:
            merged.update(policy.cluster_roles)
        return [merged[name] for name in sorted(merged)]

    def bindings_for(self, user: UserInfo, cluster: str,
                     namespace: str) -> Iterator[tuple[Binding, Subject]]:
        """The bindings of ``cluster`` naming ``user`` (or one of its groups), each once
        with the subject that matched: ClusterRoleBindings (stored, then built-in ones
        not overridden), then the RoleBindings of ``namespace``."""
        policy = self._clusters.get(cluster)
        seen: set[tuple[str, str]] = set()
        if policy is not None:
            yield from _matching(policy.cluster_role_binding_subjects, user, seen)
        stored_names = policy.cluster_role_bindings if policy is not None else {}
        for binding, subject in _matching(_BOOTSTRAP.subjects, user, seen):
            if binding.name not in stored_names:
                yield binding, subject
        if namespace and policy is not None:
            subjects = policy.role_binding_subjects.get(namespace)
            if subjects is not None:
                yield from _matching(subjects, user, seen)


def _matching(index: _SubjectIndex, user: UserInfo,
              seen: set[tuple[str, str]]) -> Iterator[tuple[Binding, Subject]]:
    named = index.users.get(user.name)
    if named:
        for binding in list(named.values()):
            yield from _once(binding, USER_KIND, user.name, seen)
    if index.groups:
        for group in user.groups:
            named = index.groups.get(group)
            if named:
                for binding in list(named.values()):
                    yield from _once(binding, GROUP_KIND, group, seen)


def _once(binding: Binding, kind: str, name: str,
          seen: set[tuple[str, str]]) -> Iterator[tuple[Binding, Subject]]:
    identity = (binding.namespace, binding.name)
    if identity in seen:
        return
    seen.add(identity)
    for subject in binding.subjects:
        if subject.kind == kind and subject.name == name:
            yield binding, subject
            return


# -- following the cache ---------------------------------------------------------------


@dataclass(slots=True)
class _Progress:
    """How far one resource's watch has been applied.

    ``pending`` is the newest revision the cache has handed to our watch (noted
    synchronously while the cache dispatches, see ``observe``), ``applied`` the newest
    one the index reflects; they are equal when nothing is queued."""

    applied: int = 0
    pending: int = 0
    following: bool = False

    def observe(self, cached: CachedObject) -> bool:
        # Used as the watch predicate: it sees every change on the prefix at the moment
        # the cache applies it, which is what lets `revision` be exact; it filters nothing.
        if cached.revision > self.pending:
            self.pending = cached.revision
        return True


class IndexFollower:
    """Keeps an :class:`RbacIndex` in step with the watch cache."""

    def __init__(self, cacher: Cacher, index: RbacIndex) -> None:
        self._cacher = cacher
        self._index = index
        self._progress = {resource: _Progress() for resource in RBAC_RESOURCES}
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def start(self) -> None:
        # Load synchronously when the cache is ready, so authorization is right as soon
        # as start() returns; otherwise each follower retries until it is.
        for resource in RBAC_RESOURCES:
            watcher = self._reload(resource)
            self._tasks.append(asyncio.create_task(
                self._follow(resource, watcher), name=f"kplane-rbac-{resource}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UnavailableError("the RBAC index stopped"))
        self._waiters.clear()

    @property
    def revision(self) -> int:
        """The newest cache revision whose RBAC changes the index has all applied."""
        fresh = self._cacher.revision
        for progress in self._progress.values():
            if not progress.following or progress.applied < progress.pending:
                fresh = min(fresh, progress.applied)
        return fresh

    async def wait_for(self, revision: int, *, timeout: float = 5.0) -> None:
        """Return once the index reflects ``revision``; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            await self._cacher.wait_for_revision(revision, timeout=timeout)
            if self.revision >= revision:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (revision, next(self._order), waiter))
            await waiter

    def _reload(self, resource: str) -> CacheWatcher | None:
        """Reload one resource from the cache and watch it from there; None if the cache
        is not ready. No await in here, so the list and the watch see the same state."""
        progress = self._progress[resource]
        if not self._cacher.ready:
            return None
        revision = self._cacher.revision
        prefix = rbac_prefix(resource)
        try:
            watcher = self._cacher.watch(prefix, after_revision=revision,
                                         predicate=progress.observe)
        except (UnavailableError, CompactedError):
            return None
        self._index.replace_resource(resource, self._cacher.list(prefix))
        progress.applied = progress.pending = revision
        progress.following = True
        self._wake_waiters()
        return watcher

    async def _follow(self, resource: str, watcher: CacheWatcher | None) -> None:
        progress = self._progress[resource]
        while True:
            if watcher is None:
                await asyncio.sleep(_RETRY_SECONDS)
                watcher = self._reload(resource)
                continue
            try:
                async for event in watcher:
                    self._apply(event.type, event.obj)
                    progress.applied = event.obj.revision
                    self._wake_waiters()
            finally:
                progress.following = False
                watcher.close()
            logger.info("RBAC watch on %s ended; reloading it from the cache", resource)
            watcher = None

    def _apply(self, event_type: str, cached: CachedObject) -> None:
        if event_type == DELETED:
            self._index.remove(cached.key)
        else:
            self._index.put(cached.key, cached.raw)

    def _wake_waiters(self) -> None:
        if not self._waiters:
            return
        fresh = self.revision
        while self._waiters and self._waiters[0][0] <= fresh:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)
