"""The CRD controller over a real Store: names accepted, Established, storedVersions, and
upstream's finalizer on deletion (instances deleted normally, their finalizers honoured)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.controllers import crd as crd_controller
from kplane.controllers.crd import CustomResourceDefinitionController
from kplane.registry import builtin
from kplane.registry.kinds.custom import CLEANUP_FINALIZER
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import JSON_PATCH, MERGE_PATCH, Store, Target
from tests.registry.test_store import running_store

ROOT, OTHER = "root", "other"
GROUP = "example.kplane.io"


def crd(plural: str, kind: str, *, short_names: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                           "shortNames": list(short_names)},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def crd_target(name: str, cluster: str = ROOT) -> Target:
    return Target(builtin.CUSTOM_RESOURCE_DEFINITIONS, cluster, "", name)


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    async with running_store(tmp_path) as running:
        await running.catalog.custom.start(running.cacher)
        controller = CustomResourceDefinitionController(store=running, catalog=running.catalog)
        await controller.start()
        try:
            yield running
        finally:
            await controller.stop()
            await running.catalog.custom.stop()


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 3.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.02)


async def read(store: Store, target: Target) -> dict[str, Any] | None:
    cached = store.get_cached(target)
    return None if cached is None else dict(orjson.loads(cached.raw))


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"])
            for c in (obj.get("status") or {}).get("conditions") or []}


async def settled(store: Store, target: Target) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await read(store, target)
        return obj if obj and "Established" in conditions(obj) else None

    found = await eventually(check)
    assert found is not None, f"{target.name} never got conditions"
    return dict(found)


def custom_type(store: Store, cluster: str, plural: str) -> ResourceType | None:
    return next((rt for rt, _ in store.catalog.custom.types(cluster) if rt.resource == plural),
                None)


async def test_a_new_crd_is_established_and_served_in_its_cluster_only(store: Store) -> None:
    await store.create(crd_target(f"widgets.{GROUP}"), crd("widgets", "Widget"),
                       WriteOptions(field_manager="t"))
    established = await settled(store, crd_target(f"widgets.{GROUP}"))
    assert conditions(established) == {"NamesAccepted": ("True", "NoConflicts"),
                                       "Established": ("True", "InitialNamesAccepted")}
    assert established["status"]["acceptedNames"]["kind"] == "Widget"
    assert established["status"]["storedVersions"] == ["v1"]
    assert established["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    assert await eventually(lambda: asyncio.sleep(0, custom_type(store, ROOT, "widgets")))
    rt = custom_type(store, ROOT, "widgets")
    assert rt is not None and (rt.kind, rt.version, rt.cluster) == ("Widget", "v1", ROOT)
    assert custom_type(store, OTHER, "widgets") is None


async def test_a_clashing_kind_is_not_accepted_but_is_in_another_cluster(store: Store) -> None:
    await store.create(crd_target(f"widgets.{GROUP}"), crd("widgets", "Widget", short_names=("w",)),
                       WriteOptions(field_manager="t"))
    await settled(store, crd_target(f"widgets.{GROUP}"))
    clash = crd("gadgets", "Gadget", short_names=("w",))
    await store.create(crd_target(f"gadgets.{GROUP}"), clash, WriteOptions(field_manager="t"))
    refused = await settled(store, crd_target(f"gadgets.{GROUP}"))
    assert conditions(refused) == {"NamesAccepted": ("False", "NameConflict"),
                                   "Established": ("False", "NotAccepted")}
    message = next(c["message"] for c in refused["status"]["conditions"]
                   if c["type"] == "NamesAccepted")
    assert message == f'w already in use by CustomResourceDefinition "widgets.{GROUP}"'
    assert custom_type(store, ROOT, "gadgets") is None
    await store.create(crd_target(f"gadgets.{GROUP}", OTHER), clash,
                       WriteOptions(field_manager="t"))
    elsewhere = await settled(store, crd_target(f"gadgets.{GROUP}", OTHER))
    assert conditions(elsewhere)["Established"][0] == "True"


async def test_deleting_a_crd_deletes_its_objects_first(store: Store) -> None:
    await store.create(crd_target(f"widgets.{GROUP}"), crd("widgets", "Widget"),
                       WriteOptions(field_manager="t"))
    await settled(store, crd_target(f"widgets.{GROUP}"))
    await eventually(lambda: asyncio.sleep(0, custom_type(store, ROOT, "widgets")))
    rt = custom_type(store, ROOT, "widgets")
    assert rt is not None
    for name in ("a", "b"):
        await store.create(Target(rt, ROOT, "default", name),
                           {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                            "metadata": {"name": name}}, WriteOptions(field_manager="t"))
    await store.delete(crd_target(f"widgets.{GROUP}"), DeleteOptions())

    async def gone() -> bool:
        return await read(store, crd_target(f"widgets.{GROUP}")) is None

    assert await eventually(gone)
    assert custom_type(store, ROOT, "widgets") is None
    leftovers = store.cacher.list(f"/registry/{GROUP}/widgets/{ROOT}/")
    assert list(leftovers) == []


# Finalizing: upstream's CRD finalizer ---------------------------------------------------------


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The controller looks again at a CRD held by its objects' finalizers every second.
    monkeypatch.setattr(crd_controller, "_RETRY_SECONDS", 0.05)


async def served_widgets(store: Store) -> ResourceType:
    await store.create(crd_target(f"widgets.{GROUP}"), crd("widgets", "Widget"),
                       WriteOptions(field_manager="t"))
    await settled(store, crd_target(f"widgets.{GROUP}"))
    await eventually(lambda: asyncio.sleep(0, custom_type(store, ROOT, "widgets")))
    rt = custom_type(store, ROOT, "widgets")
    assert rt is not None
    return rt


def widget(name: str, *finalizers: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": meta}


async def test_an_instance_finalizer_holds_the_crd_until_it_is_removed(store: Store) -> None:
    rt = await served_widgets(store)
    options = WriteOptions(field_manager="t")
    await store.create(Target(rt, ROOT, "default", "held"), widget("held", "x.io/f"), options)
    for index in range(20):
        await store.create(Target(rt, ROOT, "default", f"w{index}"), widget(f"w{index}"),
                           options)
    await store.delete(crd_target(f"widgets.{GROUP}"), DeleteOptions())

    async def terminating() -> dict[str, Any] | None:
        obj = await read(store, crd_target(f"widgets.{GROUP}"))
        if obj is None or "Terminating" not in conditions(obj):
            return None
        return obj if len(store.cacher.list(f"/registry/{GROUP}/widgets/{ROOT}/")) == 1 else None

    held_crd = await eventually(terminating)
    assert held_crd is not None, "the free objects were not deleted"
    assert conditions(held_crd)["Terminating"] == ("True", "InstanceDeletionInProgress")
    assert held_crd["metadata"]["finalizers"] == [CLEANUP_FINALIZER]
    held = await read(store, Target(rt, ROOT, "default", "held"))
    assert held is not None and held["metadata"]["deletionTimestamp"]
    with pytest.raises(StatusError) as refused:
        await store.create(Target(rt, ROOT, "default", "late"), widget("late"), options)
    assert refused.value.code == 403
    # Several retries later the CRD is still held.
    await asyncio.sleep(0.3)
    assert await read(store, crd_target(f"widgets.{GROUP}")) is not None

    await store.patch(Target(rt, ROOT, "default", "held"), MERGE_PATCH,
                      {"metadata": {"finalizers": None}}, options)

    async def gone() -> bool:
        return await read(store, crd_target(f"widgets.{GROUP}")) is None

    assert await eventually(gone)
    assert (await store.backend.range(f"/registry/{GROUP}/widgets/{ROOT}/")).items == []


async def test_a_failed_delete_is_reported_and_retried(store: Store) -> None:
    rt = await served_widgets(store)
    options = WriteOptions(field_manager="t")
    await store.create(Target(rt, ROOT, "default", "w"), widget("w", "x.io/f"), options)
    # No real backend fails on demand: the Store's delete fails once, as an overloaded one
    # would after too many lost compare-and-swaps.
    failures = iter([True])
    real_delete = store.delete

    async def failing_once(target: Target, options: DeleteOptions) -> Any:
        if target.rt.resource == "widgets" and next(failures, False):
            raise StatusError(409, "Conflict", "too many concurrent writers")
        return await real_delete(target, options)

    store.delete = failing_once  # type: ignore[method-assign]
    crd_key = f"/registry/apiextensions.k8s.io/customresourcedefinitions/{ROOT}/widgets.{GROUP}"
    watcher = store.cacher.watch(crd_key, after_revision=store.cacher.revision)
    await real_delete(crd_target(f"widgets.{GROUP}"), DeleteOptions())
    seen: list[tuple[str, str, str]] = []
    async with asyncio.timeout(5):
        async for event in watcher:
            for c in orjson.loads(event.obj.raw)["status"].get("conditions") or []:
                if c["type"] == "Terminating":
                    seen.append((c["status"], c["reason"], c["message"]))
            if seen and seen[-1][1] == "InstanceDeletionFailed":
                break
    watcher.close()
    assert seen == [("True", "InstanceDeletionInProgress",
                     "CustomResource deletion is in progress"),
                    ("True", "InstanceDeletionFailed",
                     "could not issue all deletes: too many concurrent writers")]

    async def retried() -> bool:
        held = await read(store, Target(rt, ROOT, "default", "w"))
        return bool(held and held["metadata"].get("deletionTimestamp"))

    assert await eventually(retried)


async def test_a_crd_stored_without_the_finalizer_still_takes_its_objects(
        store: Store) -> None:
    rt = await served_widgets(store)
    options = WriteOptions(field_manager="t")
    for name, finalizers in (("a", ()), ("b", ("x.io/f",))):
        await store.create(Target(rt, ROOT, "default", name), widget(name, *finalizers),
                           options)

    def without_finalizer(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["finalizers"] = []
        return obj

    await store.update_with(crd_target(f"widgets.{GROUP}"), without_finalizer, options)
    _, gone = await store.delete(crd_target(f"widgets.{GROUP}"), DeleteOptions())
    assert gone

    async def swept() -> bool:
        return not (await store.backend.range(f"/registry/{GROUP}/widgets/{ROOT}/")).items

    assert await eventually(swept)


async def test_objects_stored_under_a_gone_crd_are_swept(store: Store) -> None:
    controller = CustomResourceDefinitionController(store=store, catalog=store.catalog)
    # Left by another server that created it after this one's cleanup listed the kind.
    key = f"/registry/{GROUP}/widgets/{ROOT}/default/straggler"
    await store.backend.create(key, orjson.dumps(widget("straggler")))
    elsewhere = f"/registry/{GROUP}/widgets/{OTHER}/default/kept"
    await store.backend.create(elsewhere, orjson.dumps(widget("kept")))
    await controller.reconcile(ROOT, f"widgets.{GROUP}")
    assert await store.backend.get(key) is None
    assert await store.backend.get(elsewhere) is not None
    # A CRD named like a built-in resource never takes that resource's objects.
    leases = f"/registry/coordination.k8s.io/leases/{ROOT}/default/l"
    await store.backend.create(leases, b"{}")
    await controller.reconcile(ROOT, "leases.coordination.k8s.io")
    assert await store.backend.get(leases) is not None


async def test_a_recreated_crd_keeps_its_own_objects(store: Store) -> None:
    controller = CustomResourceDefinitionController(store=store, catalog=store.catalog)
    # Left by an earlier CRD of the same name, whose sweep runs only after the new CRD
    # was created.
    stale = f"/registry/{GROUP}/widgets/{ROOT}/default/stale"
    await store.backend.create(stale, orjson.dumps(widget("stale")))
    rt = await served_widgets(store)
    await store.create(Target(rt, ROOT, "default", "new"), widget("new"),
                       WriteOptions(field_manager="t"))
    await controller._sweep(ROOT, f"widgets.{GROUP}")
    assert await store.backend.get(stale) is None
    assert await store.backend.get(f"/registry/{GROUP}/widgets/{ROOT}/default/new") is not None


async def test_stored_versions_follow_the_storage_version(store: Store) -> None:
    definition = crd("widgets", "Widget")
    definition["spec"]["versions"].append({**definition["spec"]["versions"][0],
                                           "name": "v2", "storage": False})
    target = crd_target(f"widgets.{GROUP}")
    options = WriteOptions(field_manager="t")
    await store.create(target, definition, options)
    await settled(store, target)
    switched = await store.patch(target, JSON_PATCH, [
        {"op": "replace", "path": "/spec/versions/0/storage", "value": False},
        {"op": "replace", "path": "/spec/versions/1/storage", "value": True}], options)
    assert switched["status"]["storedVersions"] == ["v1", "v2"]
    with pytest.raises(StatusError) as refused:
        await store.patch(target, JSON_PATCH, [{"op": "remove", "path": "/spec/versions/0"}],
                          options)
    assert refused.value.code == 422
    assert "status.storedVersions[0]: Invalid value: \"v1\": missing from spec.versions" in (
        refused.value.message)
    # A storage migration takes v1 out of storedVersions; then v1 may go.
    await store.patch(target, MERGE_PATCH, {"status": {"storedVersions": ["v2"]}}, options,
                      subresource="status")
    removed = await store.patch(target, JSON_PATCH,
                                [{"op": "remove", "path": "/spec/versions/0"}], options)
    assert [v["name"] for v in removed["spec"]["versions"]] == ["v2"]
    assert removed["status"]["storedVersions"] == ["v2"]


async def test_the_controller_repairs_stored_versions_written_before_the_strategy(
        store: Store) -> None:
    target = crd_target(f"widgets.{GROUP}")
    options = WriteOptions(field_manager="t")
    definition = crd("widgets", "Widget")
    await store.create(target, definition, options)
    await settled(store, target)
    # A status write may leave out the storage version (upstream does not check it).
    await store.patch(target, MERGE_PATCH, {"status": {"storedVersions": []}}, options,
                      subresource="status")

    async def repaired() -> bool:
        obj = await read(store, target)
        return bool(obj and obj["status"].get("storedVersions") == ["v1"])

    assert await eventually(repaired)
