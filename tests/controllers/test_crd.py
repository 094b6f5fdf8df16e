"""The CRD controller over a real Store: names accepted, Established, cleanup on deletion."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest_asyncio

from kplane.controllers.crd import CustomResourceDefinitionController
from kplane.registry import builtin
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import Store, Target
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
