"""The garbage collector over a real Store: background, foreground and orphan deletion,
dangling references, uids, scopes, workspaces and custom resources."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.controllers import garbage_collector as gc_module
from kplane.controllers.crd import CustomResourceDefinitionController
from kplane.controllers.garbage_collector import GarbageCollector
from kplane.registry import builtin
from kplane.registry.codec import encode_for_storage
from kplane.registry.keys import object_key
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import MERGE_PATCH, Store, Target
from tests.controllers.test_crd import crd, crd_target, settled
from tests.registry.test_store import running_store

ROOT, OTHER = "root", "other"
CM = builtin.CONFIGMAPS
FOREGROUND = DeleteOptions(propagation_policy="Foreground")
ORPHAN = DeleteOptions(propagation_policy="Orphan")
HOLD = "example.com/hold"


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    async with running_store(tmp_path) as running:
        await running.catalog.custom.start(running.cacher)
        crds = CustomResourceDefinitionController(store=running, catalog=running.catalog)
        await crds.start()
        try:
            yield running
        finally:
            await crds.stop()
            await running.catalog.custom.stop()


@pytest_asyncio.fixture
async def collector(store: Store) -> AsyncIterator[GarbageCollector]:
    running = GarbageCollector(store=store, catalog=store.catalog)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def cm(name: str, namespace: str = "default", cluster: str = ROOT) -> Target:
    return Target(CM, cluster, namespace, name)


def ref(owner: dict[str, Any], *, block: bool | None = None) -> dict[str, Any]:
    """An owner reference to ``owner`` (as created: it carries its uid)."""
    reference = {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                 "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
    if block is not None:
        reference["blockOwnerDeletion"] = block
    return reference


async def create(store: Store, target: Target, *, owners: list[dict[str, Any]] | None = None,
                 finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": target.name}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    body = {"apiVersion": target.rt.api_version, "kind": target.rt.kind, "metadata": meta}
    return await store.create(target, body, WriteOptions(field_manager="test"))


def read(store: Store, target: Target) -> dict[str, Any] | None:
    cached = store.get_cached(target)
    return None if cached is None else dict(orjson.loads(cached.raw))


async def eventually(condition: Callable[[], bool | Awaitable[bool]], *,
                     within: float = 5.0) -> None:
    """Poll until ``condition`` holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def gone(store: Store, *targets: Target) -> Callable[[], bool]:
    return lambda: all(store.get_cached(t) is None for t in targets)


async def settle(store: Store) -> None:
    """Let the collector see everything written so far and finish what it queued: a check
    that something did *not* happen needs the collector to have had its chance."""
    marker = cm(f"settle-{store.cacher.revision}")
    owner = await create(store, marker)
    witness = await create(store, cm(f"{marker.name}-dep"), owners=[ref(owner)])
    await store.delete(marker, DeleteOptions())
    # Deleted after everything before it, so its queue position follows theirs.
    await eventually(gone(store, cm(witness["metadata"]["name"])))


async def remove_finalizers(store: Store, target: Target) -> None:
    await store.patch(target, MERGE_PATCH, {"metadata": {"finalizers": None}},
                      WriteOptions(field_manager="test"))


# Background --------------------------------------------------------------------------------


async def test_background_deletion_deletes_the_dependents_afterwards(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    for name in ("one", "two"):
        await create(store, cm(name), owners=[ref(parent)])
    bystander = await create(store, cm("bystander"))
    _, deleted = await store.delete(cm("parent"), DeleteOptions())
    assert deleted is True
    await eventually(gone(store, cm("one"), cm("two")))
    assert read(store, cm("bystander")) == bystander
    assert collector.dependents_of(ROOT, parent["metadata"]["uid"]) == set()


async def test_a_dependent_whose_owner_does_not_exist_is_deleted(
        store: Store, collector: GarbageCollector) -> None:
    phantom = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "never-there", "uid": "0d1b0f1e-0000-4000-8000-000000000001"}}
    await create(store, cm("orphaned"), owners=[ref(phantom)])
    await eventually(gone(store, cm("orphaned")))


async def test_an_owner_with_another_uid_is_another_owner(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    kept = await create(store, cm("right-uid"), owners=[ref(parent)])
    impostor = {**parent, "metadata": {**parent["metadata"],
                                       "uid": "0d1b0f1e-0000-4000-8000-000000000002"}}
    await create(store, cm("wrong-uid"), owners=[ref(impostor)])
    await eventually(gone(store, cm("wrong-uid")))
    await settle(store)
    assert read(store, cm("right-uid")) == kept


async def test_a_recreated_owner_does_not_adopt_the_old_ones_dependents(
        store: Store, collector: GarbageCollector) -> None:
    await collector.stop()  # so the re-creation surely comes before any collection
    parent = await create(store, cm("parent"))
    await create(store, cm("child"), owners=[ref(parent)])
    await store.delete(cm("parent"), DeleteOptions())
    reborn = await create(store, cm("parent"))
    assert reborn["metadata"]["uid"] != parent["metadata"]["uid"]
    await collector.start()
    await eventually(gone(store, cm("child")))
    assert read(store, cm("parent")) is not None


async def test_start_up_collects_what_was_left_while_no_collector_ran(
        store: Store, collector: GarbageCollector) -> None:
    await collector.stop()
    parent = await create(store, cm("parent"))
    await create(store, cm("child"), owners=[ref(parent)])
    await store.delete(cm("parent"), DeleteOptions())
    assert read(store, cm("child")) is not None
    await collector.start()
    await eventually(gone(store, cm("child")))


async def test_a_dependent_with_an_owner_left_only_loses_the_reference_to_the_gone_one(
        store: Store, collector: GarbageCollector) -> None:
    first = await create(store, cm("first"))
    second = await create(store, cm("second"))
    await create(store, cm("shared"), owners=[ref(first), ref(second)])
    await store.delete(cm("first"), DeleteOptions())

    def only_second_left() -> bool:
        shared = read(store, cm("shared"))
        return shared is not None and shared["metadata"]["ownerReferences"] == [ref(second)]

    await eventually(only_second_left)
    await store.delete(cm("second"), DeleteOptions())
    await eventually(gone(store, cm("shared")))


# Foreground --------------------------------------------------------------------------------


async def test_foreground_deletion_waits_for_blocking_dependents(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    # Held by a finalizer of its own, so the parent's wait can be watched.
    await create(store, cm("blocking"), owners=[ref(parent, block=True)], finalizers=[HOLD])
    await create(store, cm("free"), owners=[ref(parent, block=False)])
    obj, deleted = await store.delete(cm("parent"), FOREGROUND)
    assert deleted is False
    assert obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert obj["metadata"]["deletionTimestamp"]

    def blocking_marked() -> bool:
        blocking = read(store, cm("blocking"))
        return blocking is not None and bool(blocking["metadata"].get("deletionTimestamp"))

    await eventually(blocking_marked)
    await eventually(gone(store, cm("free")))
    await settle(store)
    still = read(store, cm("parent"))
    assert still is not None and still["metadata"]["finalizers"] == ["foregroundDeletion"]

    await remove_finalizers(store, cm("blocking"))
    await eventually(gone(store, cm("blocking"), cm("parent")))


async def test_foreground_deletion_without_dependents_finishes_at_once(
        store: Store, collector: GarbageCollector) -> None:
    await create(store, cm("alone"))
    _, deleted = await store.delete(cm("alone"), FOREGROUND)
    assert deleted is False
    await eventually(gone(store, cm("alone")))


async def test_foreground_deletion_goes_down_the_chain_bottom_up(
        store: Store, collector: GarbageCollector) -> None:
    top = await create(store, cm("top"))
    middle = await create(store, cm("middle"), owners=[ref(top, block=True)])
    await create(store, cm("bottom"), owners=[ref(middle, block=True)], finalizers=[HOLD])
    await store.delete(cm("top"), FOREGROUND)

    def middle_waits_in_the_foreground() -> bool:
        obj = read(store, cm("middle"))
        return obj is not None and obj["metadata"].get("finalizers") == ["foregroundDeletion"]

    await eventually(middle_waits_in_the_foreground)
    await settle(store)
    assert read(store, cm("top")) is not None
    await remove_finalizers(store, cm("bottom"))
    await eventually(gone(store, cm("bottom"), cm("middle"), cm("top")))


async def test_a_dependent_that_stops_blocking_lets_the_owner_go(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    await create(store, cm("held"), owners=[ref(parent, block=True)], finalizers=[HOLD])
    await store.delete(cm("parent"), FOREGROUND)
    await eventually(lambda: bool((read(store, cm("held")) or {}).get("metadata", {})
                                  .get("deletionTimestamp")))
    assert read(store, cm("parent")) is not None
    await store.patch(cm("held"), MERGE_PATCH,
                      {"metadata": {"ownerReferences": [ref(parent, block=False)]}},
                      WriteOptions(field_manager="test"))
    await eventually(gone(store, cm("parent")))
    assert read(store, cm("held")) is not None


async def test_a_background_delete_ends_a_foreground_wait(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    await create(store, cm("held"), owners=[ref(parent, block=True)], finalizers=[HOLD])
    await store.delete(cm("parent"), FOREGROUND)
    assert read(store, cm("parent")) is not None
    _, deleted = await store.delete(cm("parent"), DeleteOptions(propagation_policy="Background"))
    assert deleted is True
    assert read(store, cm("parent")) is None


# Orphan ------------------------------------------------------------------------------------


async def test_orphan_deletion_keeps_the_dependents_without_the_reference(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    other = await create(store, cm("other-owner"))
    await create(store, cm("only-child"), owners=[ref(parent, block=True)])
    await create(store, cm("shared"), owners=[ref(parent), ref(other)])
    obj, deleted = await store.delete(cm("parent"), ORPHAN)
    assert deleted is False
    assert obj["metadata"]["finalizers"] == ["orphan"]
    await eventually(gone(store, cm("parent")))
    only_child = read(store, cm("only-child"))
    assert only_child is not None and "ownerReferences" not in only_child["metadata"]
    shared = read(store, cm("shared"))
    assert shared is not None and shared["metadata"]["ownerReferences"] == [ref(other)]
    await settle(store)
    assert read(store, cm("only-child")) is not None


async def test_orphan_deletion_waits_for_other_finalizers(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"), finalizers=[HOLD])
    await create(store, cm("child"), owners=[ref(parent)])
    await store.delete(cm("parent"), ORPHAN)

    def orphaned() -> bool:
        child = read(store, cm("child"))
        owner = read(store, cm("parent"))
        return (child is not None and "ownerReferences" not in child["metadata"]
                and owner is not None and owner["metadata"]["finalizers"] == [HOLD])

    await eventually(orphaned)
    await remove_finalizers(store, cm("parent"))
    assert read(store, cm("parent")) is None
    await settle(store)
    assert read(store, cm("child")) is not None


# Scopes, workspaces, kinds -----------------------------------------------------------------


async def test_a_cluster_scoped_owner_of_namespaced_dependents(
        store: Store, collector: GarbageCollector) -> None:
    await store.create(Target(builtin.NAMESPACES, ROOT, "", "elsewhere"),
                       {"metadata": {"name": "elsewhere"}}, WriteOptions())
    role_target = Target(builtin.CLUSTERROLES, ROOT, "", "owner-role")
    role = await create(store, role_target)
    await create(store, cm("here"), owners=[ref(role)])
    await create(store, cm("there", namespace="elsewhere"), owners=[ref(role)])
    await settle(store)
    assert read(store, cm("here")) is not None
    await store.delete(role_target, DeleteOptions())
    await eventually(gone(store, cm("here"), cm("there", namespace="elsewhere")))


async def test_a_cluster_scoped_dependent_of_a_namespaced_owner_is_left_alone(
        store: Store, collector: GarbageCollector) -> None:
    parent = await create(store, cm("parent"))
    role_target = Target(builtin.CLUSTERROLES, ROOT, "", "odd-role")
    await create(store, role_target, owners=[ref(parent)])
    await store.delete(cm("parent"), DeleteOptions())
    await settle(store)
    assert read(store, role_target) is not None


async def test_owner_references_never_cross_workspaces(
        store: Store, collector: GarbageCollector) -> None:
    await store.create(Target(builtin.NAMESPACES, OTHER, "", "default"),
                       {"metadata": {"name": "default"}}, WriteOptions())
    parent = await create(store, cm("parent"))
    # The same owner (name and uid) in another workspace, as a copy of its stored form.
    copy = dict(parent, metadata={**parent["metadata"],
                                  "annotations": {"kcp.io/cluster": OTHER}})
    copy["metadata"].pop("resourceVersion")
    kv = await store.backend.create(object_key(CM, OTHER, "default", "parent"),
                                    encode_for_storage(copy))
    await store.cacher.wait_for_revision(kv.mod_revision)
    await create(store, cm("child"), owners=[ref(parent)])
    await create(store, cm("child", cluster=OTHER), owners=[ref(parent)])
    # A reference to the first workspace's owner from a workspace without it is dangling.
    only_in_root = await create(store, cm("only-in-root"))
    await create(store, cm("stray", cluster=OTHER), owners=[ref(only_in_root)])
    await eventually(gone(store, cm("stray", cluster=OTHER)))
    assert read(store, cm("only-in-root")) == only_in_root

    await store.delete(cm("parent"), DeleteOptions())
    await eventually(gone(store, cm("child")))
    await settle(store)
    assert read(store, cm("child", cluster=OTHER)) is not None
    assert collector.dependents_of(OTHER, parent["metadata"]["uid"]) == {
        object_key(CM, OTHER, "default", "child")}
    await store.delete(cm("parent", cluster=OTHER), DeleteOptions())
    await eventually(gone(store, cm("child", cluster=OTHER)))


async def custom_type(store: Store, plural: str, kind: str) -> ResourceType:
    await store.create(crd_target(f"{plural}.example.kplane.io"), crd(plural, kind),
                       WriteOptions())
    await settled(store, crd_target(f"{plural}.example.kplane.io"))
    found: list[ResourceType] = []

    def served() -> bool:
        rt = store.catalog.lookup(ROOT, "example.kplane.io", "v1", plural)
        found[:] = [rt] if rt is not None else []
        return rt is not None

    await eventually(served)
    return found[0]


async def test_custom_resources_as_owners_and_dependents(
        store: Store, collector: GarbageCollector) -> None:
    apps = await custom_type(store, "apps", "App")
    parts = await custom_type(store, "parts", "Part")
    app = await create(store, Target(apps, ROOT, "default", "shop"))
    part = await create(store, Target(parts, ROOT, "default", "cart"), owners=[ref(app)])
    await create(store, cm("cart-config"), owners=[ref(part, block=True)])
    await store.delete(Target(apps, ROOT, "default", "shop"), FOREGROUND)
    await eventually(gone(store, Target(apps, ROOT, "default", "shop"),
                          Target(parts, ROOT, "default", "cart"), cm("cart-config")))


async def test_a_reference_to_a_kind_not_served_yet_waits_for_it(
        store: Store, collector: GarbageCollector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc_module, "_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(gc_module, "_UNRESOLVED_MAX_SECONDS", 0.2)
    future_owner = {"apiVersion": "example.kplane.io/v1", "kind": "Gadget",
                    "metadata": {"name": "g", "uid": "0d1b0f1e-0000-4000-8000-000000000003"}}
    await create(store, cm("waiting"), owners=[ref(future_owner)])
    await settle(store)
    assert read(store, cm("waiting")) is not None
    # Once the kind is served, the reference resolves, the owner is absent: collected.
    await custom_type(store, "gadgets", "Gadget")
    await eventually(gone(store, cm("waiting")))


async def test_objects_of_a_bound_api_as_owners(store: Store,
                                                collector: GarbageCollector) -> None:
    """An export's objects are stored under its identity; their dependents find them."""
    await store.catalog.bound.start(store.cacher)
    try:
        schema = {
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
            "metadata": {"name": "v1.widgets.example.io", "uid": "schema-uid"},
            "spec": {"group": "example.io", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                               "listKind": "WidgetList"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": True}}]}}
        binding = {
            "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
            "metadata": {"name": "widgets", "uid": "binding-uid"},
            "spec": {"reference": {"export": {"path": "provider", "name": "widgets"}}},
            "status": {"phase": "Bound", "apiExportClusterName": "provider",
                       "boundResources": [{"group": "example.io", "resource": "widgets",
                                           "schema": {"name": "v1.widgets.example.io",
                                                      "UID": "schema-uid",
                                                      "identityHash": "f00d"}}]}}
        # Written as the binding controller leaves them: the index reads the stored state.
        for key, obj in (
                (object_key(builtin.API_RESOURCE_SCHEMAS, "provider", "",
                            "v1.widgets.example.io"), schema),
                (object_key(builtin.API_BINDINGS, ROOT, "", "widgets"), binding)):
            kv = await store.backend.create(key, encode_for_storage(obj))
            await store.cacher.wait_for_revision(kv.mod_revision)
        found: list[ResourceType] = []

        def served() -> bool:
            rt = store.catalog.lookup(ROOT, "example.io", "v1", "widgets")
            found[:] = [rt] if rt is not None else []
            return rt is not None

        await eventually(served)
        widgets = found[0]
        assert widgets.stored_resource == "widgets:f00d"
        widget = await create(store, Target(widgets, ROOT, "default", "w"))
        await create(store, cm("widget-config"), owners=[ref(widget)])
        await settle(store)
        assert read(store, cm("widget-config")) is not None
        await store.delete(Target(widgets, ROOT, "default", "w"), DeleteOptions())
        await eventually(gone(store, cm("widget-config")))
    finally:
        await store.catalog.bound.stop()
