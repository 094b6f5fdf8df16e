"""The official ``kubernetes`` Python client against a real kplane process."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.e2e.server import KplaneProcess

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends


@pytest.fixture(scope="module")
def api(kplane: KplaneProcess) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(kplane.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def test_typed_crud(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"x": "1"}),
                              data={"a": "b"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.resource_version
    fetched = core.read_namespaced_config_map("py-cm", "default")
    assert fetched.data == {"a": "b"}
    patched = core.patch_namespaced_config_map("py-cm", "default", {"data": {"c": "d"}})
    assert patched.data == {"a": "b", "c": "d"}
    listed = core.list_namespaced_config_map("default", label_selector="x=1")
    assert [i.metadata.name for i in listed.items] == ["py-cm"]
    core.delete_namespaced_config_map("py-cm", "default")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("py-cm", "default")
    assert missing.value.status == 404


def test_conflict_on_stale_update(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py-stale"), data={"v": "1"}))
    first = core.read_namespaced_config_map("py-stale", "default")
    second = core.read_namespaced_config_map("py-stale", "default")
    first.data = {"v": "2"}
    core.replace_namespaced_config_map("py-stale", "default", first)
    second.data = {"v": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("py-stale", "default", second)
    assert conflict.value.status == 409


def test_pagination(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="paged")))
    for i in range(7):
        core.create_namespaced_secret("paged", client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"s{i}"), string_data={"k": str(i)}))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_secret("paged", limit=3, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3
    assert seen == [f"s{i}" for i in range(7)]
    secret = core.read_namespaced_secret("s3", "paged")
    assert secret.data == {"k": "Mw=="}
    assert secret.type == "Opaque"


def test_watch_stream(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        ready.set()
        for event in w.stream(core.list_namespaced_config_map, "default",
                              label_selector="stream=yes", timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    ready.wait()
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="streamed", labels={"stream": "yes"})))
    core.delete_namespaced_config_map("streamed", "default")
    thread.join(timeout=15)
    assert ("ADDED", "streamed") in seen
    assert ("DELETED", "streamed") in seen


def test_dynamic_client_discovers_resources(api: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api)
    leases = dyn.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    leases.create(namespace="default", body={
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "dyn"}, "spec": {"holderIdentity": "py"}})
    got = leases.get(namespace="default", name="dyn")
    assert got.spec.holderIdentity == "py"
