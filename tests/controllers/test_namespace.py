"""The namespace deletion controller, end to end over a real Store."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from kplane.controllers import namespace as namespace_module
from kplane.controllers.namespace import NamespaceController
from kplane.registry import builtin
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import MERGE_PATCH, Store, Target
from tests.registry.test_store import running_store

ROOT = "root"


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                ) -> AsyncIterator[Store]:
    # Objects held by finalizers are rechecked on a timer; keep the tests quick.
    monkeypatch.setattr(namespace_module, "_RECHECK_SECONDS", 0.05)
    async with running_store(tmp_path) as running:
        yield running


@pytest_asyncio.fixture
async def controller(store: Store) -> AsyncIterator[NamespaceController]:
    running = NamespaceController(store=store, catalog=store.catalog)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def ns_target(name: str, cluster: str = ROOT) -> Target:
    return Target(builtin.NAMESPACES, cluster, "", name)


async def create_namespace(store: Store, name: str, cluster: str = ROOT) -> None:
    await store.create(ns_target(name, cluster), {"metadata": {"name": name}}, WriteOptions())


async def fill(store: Store, namespace: str, cluster: str = ROOT) -> None:
    """A few configmaps and secrets in the namespace."""
    for rt in (builtin.CONFIGMAPS, builtin.SECRETS):
        for name in ("one", "two"):
            await store.create(Target(rt, cluster, namespace, name),
                               {"metadata": {"name": name}}, WriteOptions())


async def names_in(store: Store, rt: ResourceType, namespace: str,
                   cluster: str = ROOT) -> list[str]:
    result = await store.list(Target(rt, cluster, namespace), ListOptions())
    return [o.name for o in result.items]


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> None:
    """Poll until ``condition`` holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_deleting_a_namespace_empties_it_and_removes_it(
        store: Store, controller: NamespaceController) -> None:
    await create_namespace(store, "doomed")
    await fill(store, "doomed")
    await fill(store, "default")
    _, gone = await store.delete(ns_target("doomed"), DeleteOptions())
    assert gone is False

    async def namespace_gone() -> bool:
        return store.get_cached(ns_target("doomed")) is None

    await eventually(namespace_gone)
    assert await names_in(store, builtin.CONFIGMAPS, "doomed") == []
    assert await names_in(store, builtin.SECRETS, "doomed") == []
    assert await names_in(store, builtin.CONFIGMAPS, "default") == ["one", "two"]
    assert await names_in(store, builtin.SECRETS, "default") == ["one", "two"]


async def test_other_clusters_keep_their_namespace_of_the_same_name(
        store: Store, controller: NamespaceController) -> None:
    await create_namespace(store, "shared")
    await create_namespace(store, "shared", cluster="other")
    await fill(store, "shared")
    await fill(store, "shared", cluster="other")
    await store.delete(ns_target("shared", cluster="other"), DeleteOptions())

    async def other_gone() -> bool:
        return store.get_cached(ns_target("shared", cluster="other")) is None

    await eventually(other_gone)
    assert await names_in(store, builtin.CONFIGMAPS, "shared", cluster="other") == []
    assert store.get_cached(ns_target("shared")) is not None
    assert await names_in(store, builtin.CONFIGMAPS, "shared") == ["one", "two"]


async def test_a_finalizer_in_the_namespace_holds_it_terminating(
        store: Store, controller: NamespaceController) -> None:
    await create_namespace(store, "held")
    await fill(store, "held")
    held = Target(builtin.CONFIGMAPS, ROOT, "held", "held")
    await store.create(held, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}},
                       WriteOptions())
    await store.delete(ns_target("held"), DeleteOptions())

    async def only_held_left() -> bool:
        return (await names_in(store, builtin.CONFIGMAPS, "held") == ["held"]
                and await names_in(store, builtin.SECRETS, "held") == [])

    await eventually(only_held_left)
    await asyncio.sleep(0.3)  # several recheck periods: the namespace must stay
    namespace = store.get_cached(ns_target("held"))
    assert namespace is not None
    assert namespace.fields["status.phase"] == "Terminating"
    assert b'"deletionTimestamp"' in (await store.get(held)).raw

    await store.patch(held, MERGE_PATCH, {"metadata": {"finalizers": None}}, WriteOptions())

    async def namespace_gone() -> bool:
        return store.get_cached(ns_target("held")) is None

    await eventually(namespace_gone)
    assert await names_in(store, builtin.CONFIGMAPS, "held") == []


async def test_a_namespace_terminating_before_the_controller_starts_is_finished(
        store: Store) -> None:
    await create_namespace(store, "early")
    await fill(store, "early")
    await store.delete(ns_target("early"), DeleteOptions())
    controller = NamespaceController(store=store, catalog=store.catalog)
    await controller.start()
    try:
        async def namespace_gone() -> bool:
            return store.get_cached(ns_target("early")) is None

        await eventually(namespace_gone)
        assert await names_in(store, builtin.SECRETS, "early") == []
    finally:
        await controller.stop()


async def test_finalize_leaves_live_and_missing_namespaces_alone(store: Store) -> None:
    controller = NamespaceController(store=store, catalog=store.catalog)
    await store.create(Target(builtin.CONFIGMAPS, ROOT, "default", "keep"),
                       {"metadata": {"name": "keep"}}, WriteOptions())
    assert await controller.finalize(ROOT, "default") is True
    assert await controller.finalize(ROOT, "missing") is True
    assert await names_in(store, builtin.CONFIGMAPS, "default") == ["keep"]
    assert store.get_cached(ns_target("default")) is not None


async def test_finalize_reports_unfinished_work_while_content_remains(store: Store) -> None:
    controller = NamespaceController(store=store, catalog=store.catalog)
    await create_namespace(store, "slow")
    await store.create(Target(builtin.CONFIGMAPS, ROOT, "slow", "held"),
                       {"metadata": {"name": "held", "finalizers": ["example.com/x"]}},
                       WriteOptions())
    await store.delete(ns_target("slow"), DeleteOptions())
    assert await controller.finalize(ROOT, "slow") is False
    assert store.get_cached(ns_target("slow")) is not None
    await store.patch(Target(builtin.CONFIGMAPS, ROOT, "slow", "held"), MERGE_PATCH,
                      {"metadata": {"finalizers": None}}, WriteOptions())
    assert await controller.finalize(ROOT, "slow") is True
    assert store.get_cached(ns_target("slow")) is None
