"""What kplane promises across restarts and crashes of the server process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.e2e.server import KplaneProcess, free_port

CM = "/api/v1/namespaces/default/configmaps"


def _configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"payload": name * 4}}


def test_restart_keeps_objects_and_credentials(tmp_path: Path) -> None:
    server = KplaneProcess(data_dir=tmp_path / "data", port=free_port())
    server.start()
    try:
        server.kubectl("apply", "-f", "-", input='{"apiVersion":"v1","kind":"ConfigMap",'
                       '"metadata":{"name":"survivor"},"data":{"k":"v"}}')
        ca_before = Path(server.ca).read_bytes()
        admin_before = Path(server.admin_cert[0]).read_bytes()
        rv_before = server.kubectl_json("get", "cm", "survivor")["metadata"]["resourceVersion"]
    finally:
        server.stop()
    server.start()
    try:
        assert Path(server.ca).read_bytes() == ca_before
        assert Path(server.admin_cert[0]).read_bytes() == admin_before
        survivor = server.kubectl_json("get", "cm", "survivor")
        assert survivor["data"] == {"k": "v"}
        assert survivor["metadata"]["resourceVersion"] == rv_before
        # Revisions keep growing after a restart: a new write gets a larger resourceVersion.
        server.kubectl("label", "cm", "survivor", "after=restart")
        relabeled = server.kubectl_json("get", "cm", "survivor")
        assert int(relabeled["metadata"]["resourceVersion"]) > int(rv_before)
    finally:
        server.stop()


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    server = KplaneProcess(data_dir=tmp_path / "data", port=free_port())
    server.start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def write_stream(worker: int) -> None:
        with server.client() as client:
            for i in range(100_000):
                if stop.is_set():
                    return
                name = f"w{worker}-{i}"
                try:
                    response = client.post(CM, json=_configmap(name))
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    acknowledged.append(name)

    writers = [threading.Thread(target=write_stream, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(kill=True)
    stop.set()
    for writer in writers:
        writer.join(timeout=15)
    assert len(acknowledged) >= 300, "the write stream was too slow to test anything"

    server.start()
    try:
        with server.client() as client:
            stored = {item["metadata"]["name"]
                      for item in client.get(CM).json()["items"]}
            missing = [name for name in acknowledged if name not in stored]
            assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
            # The store still takes writes after recovery.
            assert client.post(CM, json=_configmap("after-crash")).status_code == 201
    finally:
        server.stop()
