"""kplane.sdk's Informer against a real kplane: one informer over ``/clusters/*`` sees two
workspaces; it resumes from its resourceVersion when a watch ends or the connection drops,
survives a server restart, and relists after 410 Gone with synthetic events for what it
missed. A Controller fed by it reconciles each object with finalizers, as a provider does.

The connection cuts go through a TCP proxy between the informer and the server (a real
network failure, not a fake client); restarts stop and start the real server process on
the same data directory and port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kplane.sdk import (
    CLUSTER_ANNOTATION,
    Client,
    Controller,
    Gone,
    Informer,
    Kubeconfig,
    NotFound,
    ObjectKey,
    Result,
    cluster_of,
    ensure_finalizer,
    remove_finalizer,
)
from tests.e2e.server import KplaneProcess, free_port
from tests.sdk.helpers import CONFIGMAPS, CuttableProxy, eventually, ready_workspace

NAMES = ("sdk-inf-a", "sdk-inf-b")
FINALIZER = "sdk.example.io/cleanup"


@dataclass(frozen=True)
class Workspaces:
    a: str  # logical cluster names
    b: str


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    base: Path = tmp_path_factory.mktemp("sdk-informer")
    server = KplaneProcess(data_dir=base / "data", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def workspaces(kplane: KplaneProcess) -> Workspaces:
    async def make() -> Workspaces:
        async with Client(Kubeconfig.load(kplane.kubeconfig)) as root:
            a, b = [await ready_workspace(root, name) for name in NAMES]
            return Workspaces(a["spec"]["cluster"], b["spec"]["cluster"])

    return asyncio.run(make())


@pytest.fixture
async def root(kplane: KplaneProcess, workspaces: Workspaces) -> AsyncIterator[Client]:
    """A client on the server root: ``cluster=`` picks the workspace."""
    config = Kubeconfig.load(kplane.kubeconfig)
    async with Client(config, base_url=config.server_root) as client:
        yield client


class Recorder:
    """An informer handler that keeps every (event, cluster, name, data) it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        self.events.append((event_type, cluster_of(obj), obj["metadata"]["name"],
                            dict(obj.get("data") or {})))

    def of(self, name: str) -> list[str]:
        return [event for event, _cluster, n, _data in self.events if n == name]


def configmap(name: str, label: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"test": label}},
            "data": data}


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    await informer.start()
    try:
        await informer.wait_synced(timeout=30)
        yield informer
    finally:
        await informer.stop()


def has(informer: Informer, key: ObjectKey, **data: str) -> bool:
    obj = informer.get(key)
    return obj is not None and all(obj.get("data", {}).get(k) == v for k, v in data.items())


async def test_one_informer_sees_both_workspaces(root: Client, workspaces: Workspaces) -> None:
    await root.create(CONFIGMAPS, configmap("before", "both", n="1"), cluster=workspaces.a)
    recorder = Recorder()
    informer = Informer(root, CONFIGMAPS, cluster="*", label_selector="test=both")
    informer.add_handler(recorder)
    async with running(informer):
        assert [ObjectKey.of(o) for o in informer.list()] == [
            ObjectKey(workspaces.a, "default", "before")]
        assert recorder.events == [("ADDED", workspaces.a, "before", {"n": "1"})]

        await root.create(CONFIGMAPS, configmap("same", "both", n="a"), cluster=workspaces.a)
        await root.create(CONFIGMAPS, configmap("same", "both", n="b"), cluster=f"root:{NAMES[1]}")
        await root.patch(CONFIGMAPS, "before", {"data": {"n": "2"}}, namespace="default",
                         cluster=workspaces.a)
        await root.delete(CONFIGMAPS, "before", namespace="default", cluster=workspaces.a)
        await eventually(lambda: len(recorder.events) == 5, what="five events")

        same_a = informer.get(ObjectKey(workspaces.a, "default", "same"))
        same_b = informer.get(ObjectKey(workspaces.b, "default", "same"))
        assert same_a is not None and same_a["data"] == {"n": "a"}
        assert same_b is not None and same_b["data"] == {"n": "b"}
        assert same_b["metadata"]["annotations"][CLUSTER_ANNOTATION] == workspaces.b
        assert informer.get(ObjectKey(workspaces.a, "default", "before")) is None
        assert recorder.events[1:] == [
            ("ADDED", workspaces.a, "same", {"n": "a"}),
            ("ADDED", workspaces.b, "same", {"n": "b"}),
            ("MODIFIED", workspaces.a, "before", {"n": "2"}),
            ("DELETED", workspaces.a, "before", {"n": "2"}),
        ]
        assert informer.relists == 0


async def test_informer_of_one_workspace_ignores_the_other(root: Client,
                                                           workspaces: Workspaces) -> None:
    informer = Informer(root, CONFIGMAPS, cluster=f"root:{NAMES[1]}", namespace="default",
                        label_selector="test=one")
    async with running(informer):
        await root.create(CONFIGMAPS, configmap("x", "one"), cluster=workspaces.a)
        await root.create(CONFIGMAPS, configmap("y", "one"), cluster=workspaces.b)
        await eventually(lambda: informer.get(ObjectKey(workspaces.b, "default", "y")),
                         what="y seen")
        assert [ObjectKey.of(o) for o in informer.list()] == [
            ObjectKey(workspaces.b, "default", "y")]


async def test_watches_that_end_are_resumed_without_relisting(root: Client,
                                                              workspaces: Workspaces) -> None:
    informer = Informer(root, CONFIGMAPS, cluster="*", label_selector="test=short",
                        watch_timeout=1)
    async with running(informer):
        await eventually(lambda: informer.watches >= 3, what="three watches", timeout=20)
        await root.create(CONFIGMAPS, configmap("late", "short"), cluster=workspaces.b)
        await eventually(lambda: informer.get(ObjectKey(workspaces.b, "default", "late")),
                         what="late seen")
        assert informer.relists == 0


async def test_a_cut_connection_resumes_from_the_last_resource_version(
        kplane: KplaneProcess, root: Client, workspaces: Workspaces) -> None:
    recorder = Recorder()
    async with CuttableProxy(kplane.port) as proxy:
        through = root.with_base(f"https://127.0.0.1:{proxy.port}")
        informer = Informer(through, CONFIGMAPS, cluster="*", label_selector="test=cut")
        informer.add_handler(recorder)
        async with running(informer):
            await root.create(CONFIGMAPS, configmap("keep", "cut", v="1"), cluster=workspaces.a)
            await root.create(CONFIGMAPS, configmap("drop", "cut"), cluster=workspaces.b)
            await eventually(lambda: len(informer.list()) == 2, what="two objects")
            watches = informer.watches

            proxy.cut()
            await root.patch(CONFIGMAPS, "keep", {"data": {"v": "2"}}, namespace="default",
                             cluster=workspaces.a)
            await root.delete(CONFIGMAPS, "drop", namespace="default", cluster=workspaces.b)
            await root.create(CONFIGMAPS, configmap("new", "cut"), cluster=workspaces.b)
            proxy.restore()

            await eventually(lambda: has(informer, ObjectKey(workspaces.b, "default", "new")),
                             what="new seen")
            assert has(informer, ObjectKey(workspaces.a, "default", "keep"), v="2")
            assert informer.get(ObjectKey(workspaces.b, "default", "drop")) is None
            # The missed changes were replayed by the server from the informer's
            # resourceVersion, in order, as the real events: no relist happened.
            assert informer.relists == 0
            assert informer.watches > watches
            assert [e for e, _c, n, _d in recorder.events[2:]] == ["MODIFIED", "DELETED",
                                                                   "ADDED"]


async def test_after_a_restart_a_stale_watch_is_gone_and_the_informer_relists(
        kplane: KplaneProcess, root: Client, workspaces: Workspaces) -> None:
    recorder = Recorder()
    async with CuttableProxy(kplane.port) as proxy:
        config = root.config
        through = Client(config, base_url=f"https://127.0.0.1:{proxy.port}")
        informer = Informer(through, CONFIGMAPS, cluster="*", label_selector="test=relist")
        informer.add_handler(recorder)
        try:
            async with running(informer):
                for name, cluster in (("stays", workspaces.a), ("changes", workspaces.a),
                                      ("vanishes", workspaces.b)):
                    await root.create(CONFIGMAPS, configmap(name, "relist", v="1"),
                                      cluster=cluster)
                await eventually(lambda: len(informer.list()) == 3, what="three objects")
                stale_version = informer.resource_version

                # While the informer cannot reach the server, things change and the server
                # restarts: its history now starts after the informer's resourceVersion.
                proxy.cut()
                await root.patch(CONFIGMAPS, "changes", {"data": {"v": "2"}},
                                 namespace="default", cluster=workspaces.a)
                await root.delete(CONFIGMAPS, "vanishes", namespace="default",
                                  cluster=workspaces.b)
                await root.create(CONFIGMAPS, configmap("appears", "relist"),
                                  cluster=workspaces.b)
                await asyncio.to_thread(kplane.stop)
                await asyncio.to_thread(kplane.start)
                async with Client(config, base_url=config.server_root) as fresh:
                    with pytest.raises(Gone):
                        async for _event in fresh.watch(CONFIGMAPS, cluster="*",
                                                        resource_version=stale_version):
                            pass
                proxy.restore()

                await eventually(lambda: informer.relists >= 1, what="a relist")
                await eventually(
                    lambda: has(informer, ObjectKey(workspaces.b, "default", "appears")),
                    what="appears seen")
                assert has(informer, ObjectKey(workspaces.a, "default", "changes"), v="2")
                assert informer.get(ObjectKey(workspaces.b, "default", "vanishes")) is None
                assert has(informer, ObjectKey(workspaces.a, "default", "stays"), v="1")
                # The relist told the handlers what they missed, and nothing about "stays".
                assert sorted((e, n) for e, _c, n, _d in recorder.events[3:]) == [
                    ("ADDED", "appears"), ("DELETED", "vanishes"), ("MODIFIED", "changes")]
                assert recorder.of("stays") == ["ADDED"]
                # The synthetic DELETED carries the last state the informer knew.
                deleted = next(ev for ev in recorder.events if ev[0] == "DELETED")
                assert deleted == ("DELETED", workspaces.b, "vanishes", {"v": "1"})
        finally:
            await through.aclose()


async def test_the_informer_rides_out_a_server_restart(
        kplane: KplaneProcess, root: Client, workspaces: Workspaces) -> None:
    informer = Informer(root, CONFIGMAPS, cluster="*", label_selector="test=restart")
    async with running(informer):
        await root.create(CONFIGMAPS, configmap("one", "restart"), cluster=workspaces.a)
        await eventually(lambda: len(informer.list()) == 1, what="one object")
        watches = informer.watches
        await asyncio.to_thread(kplane.stop)
        await asyncio.to_thread(kplane.start)
        await root.create(CONFIGMAPS, configmap("two", "restart"), cluster=workspaces.b)
        await eventually(lambda: informer.get(ObjectKey(workspaces.b, "default", "two")),
                         what="object made after the restart seen")
        assert informer.watches > watches
        assert {ObjectKey.of(o).name for o in informer.list()} == {"one", "two"}


# --- a controller fed by an informer ----------------------------------------------------


async def test_a_controller_reconciles_each_object_with_a_finalizer(
        root: Client, workspaces: Workspaces) -> None:
    """A miniature provider: every labelled ConfigMap gets a finalizer and a status-like
    annotation; on deletion the "external" cleanup is recorded and the finalizer removed."""
    cleaned: list[ObjectKey] = []
    informer = Informer(root, CONFIGMAPS, cluster="*", label_selector="test=ctrl")

    async def reconcile(key: ObjectKey) -> Result | None:
        obj = informer.get(key)
        if obj is None:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            cleaned.append(key)
            await remove_finalizer(root, CONFIGMAPS, obj, FINALIZER)
            return None
        obj = await ensure_finalizer(root, CONFIGMAPS, obj, FINALIZER)
        if obj["metadata"].get("annotations", {}).get("reconciled") != "yes":
            await root.patch(CONFIGMAPS, key.name,
                             {"metadata": {"annotations": {"reconciled": "yes"}}},
                             namespace=key.namespace, cluster=key.cluster)
        return None

    controller = Controller(reconcile, informers=[informer], workers=2, name="mini")
    await controller.start()
    try:
        assert informer.running
        await informer.wait_synced()
        for cluster in (workspaces.a, workspaces.b):
            await root.create(CONFIGMAPS, configmap("managed", "ctrl"), cluster=cluster)

        def done(cluster: str) -> bool:
            obj = informer.get(ObjectKey(cluster, "default", "managed"))
            return bool(obj and obj["metadata"].get("finalizers") == [FINALIZER]
                        and obj["metadata"]["annotations"].get("reconciled") == "yes")

        await eventually(lambda: done(workspaces.a) and done(workspaces.b), what="reconciled")
        await root.delete(CONFIGMAPS, "managed", namespace="default", cluster=workspaces.a)

        async def gone() -> bool:
            try:
                await root.get(CONFIGMAPS, "managed", namespace="default", cluster=workspaces.a)
            except NotFound:
                return True
            return False

        await eventually(gone, what="deleted object released")
        assert cleaned == [ObjectKey(workspaces.a, "default", "managed")]
        assert done(workspaces.b)
    finally:
        await controller.stop()
    assert not informer.running
