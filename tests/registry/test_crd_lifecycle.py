"""A CRD's lifecycle over a real Store: creates refused while it terminates, creates in
flight counted, watches of its kind ended when it goes."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.registry import builtin
from kplane.registry.crd_lifecycle import CreateGate, KindWatches, is_terminating
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import APPLY_PATCH, MERGE_PATCH, Store, Target
from tests.registry.test_store import running_store

ROOT = "root"
GROUP = "example.kplane.io"
NAME = f"widgets.{GROUP}"
OPTIONS = WriteOptions(field_manager="t")


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def widget(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}}


CRD = Target(builtin.CUSTOM_RESOURCE_DEFINITIONS, ROOT, "", NAME)


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    """A Store with an Established Widget CRD (no controller: the tests move it along)."""
    async with running_store(tmp_path) as running:
        running.catalog.custom.watches = KindWatches(grace_seconds=0.0)
        await running.catalog.custom.start(running.cacher)
        await running.create(CRD, widget_crd(), OPTIONS)

        def established(crd: dict[str, Any]) -> dict[str, Any]:
            crd["status"]["conditions"] = [{"type": "Established", "status": "True"}]
            return crd

        await running.update_with(CRD, established, OPTIONS, subresource="status")
        for _ in range(200):
            if widget_type(running) is not None:
                break
            await asyncio.sleep(0.01)
        try:
            yield running
        finally:
            await running.catalog.custom.stop()


def widget_type(store: Store) -> ResourceType | None:
    return next((rt for rt, _ in store.catalog.custom.types(ROOT) if rt.resource == "widgets"),
                None)


def widgets(store: Store, name: str = "") -> Target:
    rt = widget_type(store)
    assert rt is not None, "the Widget type is not served"
    return Target(rt, ROOT, "default", name)


async def test_creates_are_refused_once_the_crd_is_terminating(store: Store) -> None:
    await store.create(widgets(store), widget("before"), OPTIONS)
    deleting, gone = await store.delete(CRD, DeleteOptions())
    assert not gone and deleting["metadata"]["deletionTimestamp"]
    for attempt in (
        store.create(widgets(store), widget("after"), OPTIONS),
        store.create(widgets(store), widget("dry"), WriteOptions(field_manager="t",
                                                                 dry_run=True)),
        store.patch(widgets(store, "applied"), APPLY_PATCH, widget("applied"), OPTIONS),
    ):
        with pytest.raises(StatusError) as refused:
            await attempt
        assert (refused.value.code, refused.value.reason) == (403, "Forbidden")
        assert refused.value.message.endswith(
            '" is forbidden: create not allowed while custom resource definition is '
            "terminating")
    assert str(refused.value.message).startswith(f'widgets.{GROUP} "applied" is forbidden')
    # What exists may still change (its finalizers must be able to come off).
    changed = await store.patch(widgets(store, "before"), MERGE_PATCH,
                                {"metadata": {"labels": {"a": "b"}}}, OPTIONS)
    assert changed["metadata"]["labels"] == {"a": "b"}
    listed = await store.list(widgets(store), ListOptions())
    assert [o.name for o in listed.items] == ["before"]


async def test_a_terminating_condition_also_refuses_creates(store: Store) -> None:
    def terminating(crd: dict[str, Any]) -> dict[str, Any]:
        crd["status"]["conditions"].append({"type": "Terminating", "status": "True"})
        return crd

    await store.update_with(CRD, terminating, OPTIONS, subresource="status")
    with pytest.raises(StatusError) as refused:
        await store.create(widgets(store), widget("w"), OPTIONS)
    assert refused.value.code == 403


async def test_a_generated_name_is_not_named_in_the_refusal(store: Store) -> None:
    await store.delete(CRD, DeleteOptions())
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"generateName": "w-"}}
    with pytest.raises(StatusError) as refused:
        await store.create(widgets(store), body, OPTIONS)
    assert refused.value.message.startswith(f'widgets.{GROUP} "" is forbidden')


async def test_creates_in_flight_are_counted_until_they_land(store: Store) -> None:
    gate = store.catalog.custom.creates
    rt = widgets(store).rt
    with gate.creating(store.cacher, rt, "w"):
        assert gate.in_flight(ROOT, NAME) == 1
        waiting = asyncio.ensure_future(gate.landed(ROOT, NAME))
        await asyncio.sleep(0)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1.0)
    assert gate.in_flight(ROOT, NAME) == 0
    await asyncio.wait_for(gate.landed(ROOT, NAME), 1.0)  # nothing in flight: at once


async def test_the_kinds_watches_end_when_its_crd_goes(store: Store) -> None:
    await store.create(widgets(store), widget("w"), OPTIONS)
    start = await store.watch(widgets(store), ListOptions(), send_initial_events=None)
    assert [o.name for o in start.initial] == ["w"]
    cm_start = await store.watch(Target(builtin.CONFIGMAPS, ROOT, "default"), ListOptions(),
                                 send_initial_events=None)
    await store.delete(CRD, DeleteOptions())

    def without_finalizers(crd: dict[str, Any]) -> dict[str, Any]:
        crd["metadata"]["finalizers"] = []
        return crd

    await store.update_with(CRD, without_finalizers, OPTIONS)
    assert store.get_cached(CRD) is None

    async def drain() -> None:
        async for _ in start.watcher:
            pass

    await asyncio.wait_for(drain(), 5.0)
    assert start.watcher.closed
    assert not cm_start.watcher.closed, "other kinds' watches go on"
    cm_start.watcher.close()


async def test_a_watch_started_after_its_type_went_ends_at_once(store: Store) -> None:
    target = widgets(store)
    await store.delete(CRD, DeleteOptions())

    def without_finalizers(crd: dict[str, Any]) -> dict[str, Any]:
        crd["metadata"]["finalizers"] = []
        return crd

    await store.update_with(CRD, without_finalizers, OPTIONS)
    for _ in range(200):
        if widget_type(store) is None:
            break
        await asyncio.sleep(0.01)
    start = await store.watch(target, ListOptions(), send_initial_events=None)
    assert start.watcher.closed


def test_terminating_means_a_deletion_or_the_terminating_condition() -> None:
    assert not is_terminating({"metadata": {}, "status": {"conditions": [
        {"type": "Terminating", "status": "False"}]}})
    assert is_terminating({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert is_terminating({"metadata": {}, "status": {"conditions": [
        {"type": "Terminating", "status": "True"}]}})


async def test_the_gate_lets_built_in_and_bound_types_through(store: Store) -> None:
    gate = CreateGate()
    bound = ResourceType(group=GROUP, version="v1", resource="widgets", kind="Widget",
                         namespaced=True, storage_resource="widgets:abc")
    for rt in (builtin.CONFIGMAPS, bound):
        gate.check(store.cacher, rt, "c")
        with gate.creating(store.cacher, rt, "c"):
            assert gate.in_flight("", f"widgets.{GROUP}") == 0


async def test_watches_end_after_the_grace_period(store: Store) -> None:
    rt = ResourceType(group=GROUP, version="v1", resource="widgets", kind="Widget",
                      namespaced=True, cluster=ROOT)
    other = ResourceType(group=GROUP, version="v2", resource="widgets", kind="Widget",
                         namespaced=True, cluster=ROOT)
    watches = KindWatches(grace_seconds=0.05)
    mine = store.cacher.watch("/registry/a/", after_revision=store.cacher.revision)
    theirs = store.cacher.watch("/registry/b/", after_revision=store.cacher.revision)
    watches.track(rt, mine)
    watches.track(other, theirs)
    watches.end([rt])
    assert not mine.closed, "queued events get the grace period to go out"
    for _ in range(100):
        if mine.closed:
            break
        await asyncio.sleep(0.01)
    assert mine.closed and not theirs.closed
    assert watches.count(other) == 1
    theirs.close()
