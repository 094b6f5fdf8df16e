"""kplane.sdk's Client against a real kplane: kubeconfig forms, CRUD, server-side apply, the
status subresource, patches, paging, watches, errors and the finalizer helpers.

One server per module, one workspace (``root:sdk-client``) holding a Widget CRD.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kplane.sdk import (
    CLUSTER_ANNOTATION,
    ApiError,
    Client,
    Conflict,
    Kubeconfig,
    NotFound,
    ObjectKey,
    Resource,
    cluster_of,
    ensure_finalizer,
    remove_finalizer,
)
from tests.e2e.server import KplaneProcess, free_port
from tests.sdk.helpers import (
    CONFIGMAPS,
    NAMESPACES,
    WIDGETS,
    eventually,
    install_widgets,
    ready_workspace,
)

WS = "root:sdk-client"
TOKEN = "sdk-token-0123456789abcdef"
FINALIZER = "sdk.example.io/cleanup"
# Answers with the caller's identity.
SELF_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", namespaced=False)


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    base: Path = tmp_path_factory.mktemp("sdk-client")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},sdk-robot,uid-1,"system:masters"\n')
    server = KplaneProcess(data_dir=base / "data", port=free_port(),
                           extra_args=["--token-auth-file", str(tokens)])
    server.start()
    try:
        asyncio.run(_prepare(server))
        yield server
    finally:
        server.stop()


async def _prepare(server: KplaneProcess) -> None:
    async with Client(Kubeconfig.load(server.kubeconfig)) as root:
        await ready_workspace(root, "sdk-client")
        await install_widgets(root.with_base(f"{server.url}/clusters/{WS}"))


@pytest.fixture
async def client(kplane: KplaneProcess) -> AsyncIterator[Client]:
    """The admin's client on the test workspace."""
    config = Kubeconfig.load(kplane.kubeconfig)
    async with Client(config, base_url=f"{config.server_root}/clusters/{WS}") as ws:
        yield ws


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sdk.example.io/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


# --- kubeconfig -----------------------------------------------------------------------------


def _admin_kubeconfig(kplane: KplaneProcess) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(kplane.kubeconfig.read_text())
    return loaded


async def test_embedded_credentials_reach_the_workspace(kplane: KplaneProcess) -> None:
    config = Kubeconfig.load(kplane.kubeconfig)
    assert config.server == f"{kplane.url}/clusters/root"
    assert config.server_root == kplane.url
    assert config.workspace == "root"
    async with Client(config) as root:
        assert root.base_url == f"{kplane.url}/clusters/root"
        namespace = await root.get(NAMESPACES, "default")
        assert namespace["metadata"]["name"] == "default"


async def test_file_references_are_read_relative_to_the_kubeconfig(
        kplane: KplaneProcess, tmp_path: Path) -> None:
    source = _admin_kubeconfig(kplane)
    cluster, user = source["clusters"][0]["cluster"], source["users"][0]["user"]
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster.pop("certificate-authority-data")))
    (tmp_path / "me.crt").write_bytes(base64.b64decode(user.pop("client-certificate-data")))
    (tmp_path / "me.key").write_bytes(base64.b64decode(user.pop("client-key-data")))
    cluster["certificate-authority"] = "ca.crt"
    user |= {"client-certificate": "me.crt", "client-key": "me.key"}
    cluster["server"] = f"{kplane.url}/clusters/{WS}"
    (tmp_path / "config").write_text(yaml.safe_dump(source))
    async with Client(Kubeconfig.load(tmp_path / "config")) as ws:
        listed = await ws.list(NAMESPACES)
    assert {"default"} <= {n["metadata"]["name"] for n in listed["items"]}
    assert {cluster_of(n) for n in listed["items"]} == {
        cluster_of(listed["items"][0])} != {""}


async def test_bearer_token_authenticates_and_a_wrong_one_is_refused(
        kplane: KplaneProcess, tmp_path: Path) -> None:
    source = _admin_kubeconfig(kplane)
    source["users"][0]["user"] = {"tokenFile": "token"}
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "config").write_text(yaml.safe_dump(source))
    config = Kubeconfig.load(tmp_path / "config")
    assert config.token == TOKEN
    async with Client(config) as root:
        review = await root.create(
            SELF_REVIEWS, {"apiVersion": "authentication.k8s.io/v1",
                            "kind": "SelfSubjectReview"})
        assert review["status"]["userInfo"]["username"] == "sdk-robot"
    source["users"][0]["user"] = {"token": "wrong"}
    async with Client(Kubeconfig.from_dict(source)) as root:
        with pytest.raises(ApiError) as refused:
            await root.get(NAMESPACES, "default")
    assert refused.value.status == 401


# --- CRUD and errors ------------------------------------------------------------------------


async def test_create_get_update_delete_a_custom_resource(client: Client) -> None:
    created = await client.create(WIDGETS, widget("crud", size=1, color="red"))
    assert created["spec"] == {"size": 1, "color": "red"}
    assert cluster_of(created) != ""
    fetched = await client.get(WIDGETS, "crud", namespace="default")
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]

    fetched["spec"]["size"] = 2
    updated = await client.update(WIDGETS, fetched)
    assert updated["spec"]["size"] == 2
    assert updated["metadata"]["generation"] == 2

    # The copy read before the update is stale now.
    with pytest.raises(Conflict) as stale:
        await client.update(WIDGETS, {**fetched, "spec": {"size": 3}})
    assert stale.value.status == 409 and stale.value.reason == "Conflict"
    with pytest.raises(Conflict) as exists:
        await client.create(WIDGETS, widget("crud"))
    assert exists.value.reason == "AlreadyExists"
    assert exists.value.body["details"]["name"] == "crud"

    assert await client.delete(WIDGETS, "crud", namespace="default") is not None
    with pytest.raises(NotFound) as missing:
        await client.get(WIDGETS, "crud", namespace="default")
    assert missing.value.status == 404 and "crud" in missing.value.message
    assert await client.delete(WIDGETS, "crud", namespace="default") is None


async def test_an_invalid_object_is_refused_with_the_server_message(client: Client) -> None:
    with pytest.raises(ApiError) as invalid:
        await client.create(WIDGETS, widget("bad", size=-1))
    assert invalid.value.status == 422
    assert invalid.value.reason == "Invalid"
    assert "spec.size" in invalid.value.message
    with pytest.raises(NotFound):
        await client.get(WIDGETS, "bad", namespace="default")


async def test_list_follows_every_page_and_keeps_one_resource_version(client: Client) -> None:
    for i in range(7):
        await client.create(CONFIGMAPS, {"metadata": {"name": f"page-{i}", "namespace": "default",
                                                      "labels": {"paged": "yes"}}})
    listed = await client.list(CONFIGMAPS, namespace="default", label_selector="paged=yes",
                               page_size=2)
    assert sorted(o["metadata"]["name"] for o in listed["items"]) == [
        f"page-{i}" for i in range(7)]
    assert listed["kind"] == "ConfigMapList"
    assert "continue" not in listed["metadata"]
    assert int(listed["metadata"]["resourceVersion"]) >= max(
        int(o["metadata"]["resourceVersion"]) for o in listed["items"])
    # Items come back whole, ready to be sent again.
    assert {(o["apiVersion"], o["kind"]) for o in listed["items"]} == {("v1", "ConfigMap")}
    by_field = await client.list(CONFIGMAPS, namespace="default",
                                 field_selector="metadata.name=page-3")
    assert [o["metadata"]["name"] for o in by_field["items"]] == ["page-3"]


async def test_cluster_argument_addresses_a_workspace_from_the_server_root(
        kplane: KplaneProcess, client: Client) -> None:
    await client.create(CONFIGMAPS, {"metadata": {"name": "where", "namespace": "default"}})
    root = client.with_base(client.server_root)
    assert root.base_url == kplane.url
    same = await root.get(CONFIGMAPS, "where", namespace="default", cluster=WS)
    # The logical cluster name addresses the same workspace as its path.
    by_name = await root.get(CONFIGMAPS, "where", namespace="default", cluster=cluster_of(same))
    assert by_name["metadata"]["uid"] == same["metadata"]["uid"]
    assert ObjectKey.of(same) == ObjectKey(cluster_of(same), "default", "where")
    everywhere = await root.list(CONFIGMAPS, cluster="*", field_selector="metadata.name=where")
    assert [o["metadata"]["uid"] for o in everywhere["items"]] == [same["metadata"]["uid"]]
    assert everywhere["items"][0]["metadata"]["annotations"][CLUSTER_ANNOTATION] == cluster_of(
        same)


async def test_a_derived_client_is_closed_with_its_parent(kplane: KplaneProcess) -> None:
    config = Kubeconfig.load(kplane.kubeconfig)
    parent = Client(config)
    child = parent.with_base(config.server_root)
    await child.get(NAMESPACES, "default", cluster="root")
    await parent.aclose()
    with pytest.raises(RuntimeError):
        await child.get(NAMESPACES, "default", cluster="root")


# --- patches, apply and status ----------------------------------------------------------


async def test_merge_and_json_patches(client: Client) -> None:
    await client.create(WIDGETS, widget("patched", size=1, color="red"))
    merged = await client.patch(WIDGETS, "patched", {"spec": {"color": None, "size": 4}},
                                namespace="default")
    assert merged["spec"] == {"size": 4}
    version = merged["metadata"]["resourceVersion"]
    patched = await client.patch(WIDGETS, "patched", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/spec/color", "value": "blue"}],
        namespace="default", patch_type="json")
    assert patched["spec"] == {"size": 4, "color": "blue"}
    with pytest.raises(ApiError) as failed_test:
        await client.patch(WIDGETS, "patched", [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version}],
            namespace="default", patch_type="json")
    assert failed_test.value.status == 422


async def test_server_side_apply_tracks_owners_and_conflicts(client: Client) -> None:
    first = await client.apply(WIDGETS, widget("applied", size=1), field_manager="alice")
    assert first["spec"] == {"size": 1}
    both = await client.apply(WIDGETS, widget("applied", color="red"), field_manager="bob")
    assert both["spec"] == {"size": 1, "color": "red"}
    managers = {f["manager"]: f["operation"] for f in both["metadata"]["managedFields"]}
    assert managers == {"alice": "Apply", "bob": "Apply"}

    with pytest.raises(Conflict) as conflict:
        await client.apply(WIDGETS, widget("applied", size=2), field_manager="bob", force=False)
    assert "alice" in conflict.value.message
    taken = await client.apply(WIDGETS, widget("applied", size=2, color="red"),
                               field_manager="bob")
    assert taken["spec"] == {"size": 2, "color": "red"}
    # alice's apply without size now gives up nothing she still owns: size stays bob's.
    again = await client.apply(WIDGETS, widget("applied"), field_manager="alice")
    assert again["spec"] == {"size": 2, "color": "red"}


async def test_status_subresource_writes_only_status(client: Client) -> None:
    created = await client.create(WIDGETS, widget("stat", size=1))
    patched = await client.patch(WIDGETS, "stat", {"status": {"phase": "Ready"},
                                                   "spec": {"size": 9}},
                                 namespace="default", subresource="status")
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"] == {"size": 1}
    assert patched["metadata"]["generation"] == created["metadata"]["generation"]

    patched["status"]["observed"] = 1
    patched["spec"]["size"] = 7
    updated = await client.update(WIDGETS, patched, subresource="status")
    assert updated["status"] == {"phase": "Ready", "observed": 1}
    assert updated["spec"] == {"size": 1}

    applied = await client.apply(
        WIDGETS, {**widget("stat"), "status": {"phase": "Done"}}, field_manager="ctrl",
        subresource="status")
    assert applied["status"]["phase"] == "Done"
    status = await client.get(WIDGETS, "stat", namespace="default", subresource="status")
    assert status["status"]["phase"] == "Done"
    # Writing status through the main resource is ignored, as upstream does.
    main = await client.patch(WIDGETS, "stat", {"status": {"phase": "Ignored"}},
                              namespace="default")
    assert main["status"]["phase"] == "Done"


# --- watch ---------------------------------------------------------------------------------


async def test_watch_from_a_list_sees_each_change_once(client: Client) -> None:
    listed = await client.list(WIDGETS, namespace="default")
    seen: list[tuple[str, str, Any]] = []

    async def follow() -> None:
        events = client.watch(WIDGETS, namespace="default",
                              resource_version=listed["metadata"]["resourceVersion"])
        async with contextlib.aclosing(events):
            async for event_type, obj in events:
                if event_type == "BOOKMARK":
                    continue
                seen.append((event_type, obj["metadata"]["name"], obj["spec"].get("size")))
                if event_type == "DELETED":
                    return

    watcher = asyncio.create_task(follow())
    await client.create(WIDGETS, widget("watched", size=1))
    await client.patch(WIDGETS, "watched", {"spec": {"size": 2}}, namespace="default")
    await client.delete(WIDGETS, "watched", namespace="default")
    await asyncio.wait_for(watcher, 15)
    assert seen == [("ADDED", "watched", 1), ("MODIFIED", "watched", 2),
                    ("DELETED", "watched", 2)]


async def test_a_watch_ends_at_its_timeout(client: Client) -> None:
    listed = await client.list(WIDGETS, namespace="default")
    events = [e async for e in client.watch(
        WIDGETS, namespace="default", resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=1)]
    assert [t for t, _ in events if t != "BOOKMARK"] == []


async def test_watching_an_unknown_resource_raises_not_found(client: Client) -> None:
    with pytest.raises(NotFound):
        async for _event in client.watch(Resource("nope.example.io", "v1", "things")):
            pass


# --- finalizers ----------------------------------------------------------------------------


async def test_ensure_finalizer_adds_once_and_keeps_others(client: Client) -> None:
    created = await client.create(WIDGETS, {**widget("fin"), "metadata": {
        "name": "fin", "namespace": "default", "finalizers": ["someone.else/keep"]}})
    ensured = await ensure_finalizer(client, WIDGETS, created, FINALIZER, cluster="")
    assert ensured["metadata"]["finalizers"] == ["someone.else/keep", FINALIZER]
    again = await ensure_finalizer(client, WIDGETS, ensured, FINALIZER, cluster="")
    assert again["metadata"]["resourceVersion"] == ensured["metadata"]["resourceVersion"]

    removed = await remove_finalizer(client, WIDGETS, again, FINALIZER, cluster="")
    assert removed is not None
    assert removed["metadata"]["finalizers"] == ["someone.else/keep"]
    await client.patch(WIDGETS, "fin", {"metadata": {"finalizers": None}}, namespace="default")


async def test_finalizer_helpers_retry_on_a_stale_copy(client: Client) -> None:
    stale = await client.create(WIDGETS, widget("race", size=1))
    # Someone else adds a finalizer after our copy was read.
    await client.patch(WIDGETS, "race", {"metadata": {"finalizers": ["other/one"]}},
                       namespace="default")
    ensured = await ensure_finalizer(client, WIDGETS, stale, FINALIZER, cluster="")
    assert ensured["metadata"]["finalizers"] == ["other/one", FINALIZER]
    await client.patch(WIDGETS, "race", {"spec": {"size": 5}}, namespace="default")
    removed = await remove_finalizer(client, WIDGETS, ensured, FINALIZER, cluster="")
    assert removed is not None
    assert removed["metadata"]["finalizers"] == ["other/one"]
    assert removed["spec"]["size"] == 5


async def test_removing_the_last_finalizer_lets_a_deleted_object_go(
        kplane: KplaneProcess, client: Client) -> None:
    created = await client.create(WIDGETS, widget("doomed"))
    held = await ensure_finalizer(client, WIDGETS, created, FINALIZER, cluster="")
    deleting = await client.delete(WIDGETS, "doomed", namespace="default")
    assert deleting is not None and deleting["metadata"].get("deletionTimestamp")
    assert (await client.get(WIDGETS, "doomed", namespace="default"))["metadata"][
        "finalizers"] == [FINALIZER]
    # From the server root, the default cluster is the object's own (its annotation).
    root = client.with_base(client.server_root)
    await remove_finalizer(root, WIDGETS, held, FINALIZER)

    async def gone() -> bool:
        try:
            await client.get(WIDGETS, "doomed", namespace="default")
        except NotFound:
            return True
        return False

    await eventually(gone, what="doomed widget gone")
    assert await remove_finalizer(root, WIDGETS, held, FINALIZER) is None
    with pytest.raises(NotFound):
        await ensure_finalizer(root, WIDGETS, created, FINALIZER)
