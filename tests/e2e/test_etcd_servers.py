"""Several kplane servers on one real etcd cluster serve one consistent API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import KplaneProcess, free_port
from tests.storage.etcd_cluster import EtcdCluster

CM = "/api/v1/namespaces/default/configmaps"


def _configmap(name: str, value: str = "v") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": value}}


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.create(tmp_path_factory.mktemp("etcd"), size=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def servers(etcd: EtcdCluster, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[KplaneProcess, KplaneProcess]]:
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    args = ["--etcd-servers", ",".join(etcd.endpoints), "--etcd-prefix", "/e2e"]
    first = KplaneProcess(data_dir=data_dir, port=free_port(), extra_args=args)
    first.start()
    second = KplaneProcess(data_dir=data_dir, port=free_port(), extra_args=args)
    second.start()
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_write_through_one_read_and_watch_through_the_other(
        servers: tuple[KplaneProcess, KplaneProcess]) -> None:
    first, second = servers
    with first.client() as a, second.client() as b:
        start_rv = b.get(CM).json()["metadata"]["resourceVersion"]
        with b.stream("GET", CM, params={"watch": "1", "resourceVersion": start_rv,
                                         "timeoutSeconds": "10"}) as watch:
            created = a.post(CM, json=_configmap("shared-1"))
            assert created.status_code == 201
            line = next(watch.iter_lines())
        assert '"ADDED"' in line and "shared-1" in line
        # A read without a resourceVersion is consistent: it sees the other server's write.
        assert b.get(f"{CM}/shared-1").json()["data"] == {"k": "v"}


def test_optimistic_concurrency_holds_across_servers(
        servers: tuple[KplaneProcess, KplaneProcess]) -> None:
    first, second = servers
    with first.client() as a, second.client() as b:
        a.post(CM, json=_configmap("contended"))
        stale = b.get(f"{CM}/contended").json()
        fresh = a.get(f"{CM}/contended").json()
        fresh["data"] = {"k": "from-a"}
        assert a.put(f"{CM}/contended", json=fresh).status_code == 200
        stale["data"] = {"k": "from-b"}
        conflict = b.put(f"{CM}/contended", json=stale)
        assert conflict.status_code == 409
        assert "the object has been modified" in conflict.json()["message"]


def test_workspaces_created_on_one_server_work_on_the_other(
        servers: tuple[KplaneProcess, KplaneProcess]) -> None:
    first, second = servers
    with first.client() as a, second.client() as b:
        body = {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                "metadata": {"name": "shared-ws"}}
        url = "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces"
        assert a.post(url, json=body).status_code == 201
        _wait_for(lambda: b.get(f"{url}/shared-ws").json().get("status", {})
                  .get("phase") == "Ready")
        namespaces = b.get("/clusters/root:shared-ws/api/v1/namespaces").json()["items"]
        assert [n["metadata"]["name"] for n in namespaces] == ["default"]


def test_one_server_dies_the_other_keeps_serving(
        etcd: EtcdCluster, tmp_path: Path) -> None:
    args = ["--etcd-servers", ",".join(etcd.endpoints), "--etcd-prefix", "/e2e-kill"]
    data_dir = tmp_path / "data"
    doomed = KplaneProcess(data_dir=data_dir, port=free_port(), extra_args=args)
    doomed.start()
    survivor = KplaneProcess(data_dir=data_dir, port=free_port(), extra_args=args)
    survivor.start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        with doomed.client() as client:
            for i in range(100_000):
                if stop.is_set():
                    return
                try:
                    response = client.post(CM, json=_configmap(f"k{i}"))
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    acknowledged.append(f"k{i}")

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        _wait_for(lambda: len(acknowledged) >= 50, timeout=20)
        doomed.stop(kill=True)
        stop.set()
        writer.join(timeout=15)
        with survivor.client() as client:
            stored = {i["metadata"]["name"] for i in client.get(CM).json()["items"]}
            assert set(acknowledged) <= stored
            assert client.post(CM, json=_configmap("after")).status_code == 201
    finally:
        stop.set()
        survivor.stop()
        doomed.stop()


def test_etcd_down_fails_fast_then_recovers(tmp_path: Path) -> None:
    cluster = EtcdCluster.create(tmp_path / "etcd", size=1)
    cluster.start()
    server = KplaneProcess(data_dir=tmp_path / "data", port=free_port(),
                           extra_args=["--etcd-servers", ",".join(cluster.endpoints)])
    try:
        server.start()
        with server.client() as client:
            assert client.post(CM, json=_configmap("before")).status_code == 201
            cluster.stop()
            started = time.monotonic()
            down = client.post(CM, json=_configmap("during"))
            assert down.status_code in (503, 504), down.text
            assert down.json()["kind"] == "Status"
            assert time.monotonic() - started < 15
            cluster.start_member(0)

            def recovered() -> bool:
                try:
                    return client.post(CM, json=_configmap("after")).status_code == 201
                except httpx.HTTPError:
                    return False

            _wait_for(recovered, timeout=60)
            names = {i["metadata"]["name"] for i in client.get(CM).json()["items"]}
            assert {"before", "after"} <= names
    finally:
        server.stop()
        cluster.stop()
