"""The generic Store over a real SQLite backend and a real watch cache.

Each test drives the Store the way the HTTP layer does and checks what a Kubernetes client
would observe: the stored object, the resourceVersion, and the exact Status of a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.apimachinery import names
from kplane.apimachinery.errors import StatusError
from kplane.registry import builtin, pagination
from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder
from kplane.registry.options import DeleteOptions, ListOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import (
    APPLY_PATCH,
    CLUSTER_ANNOTATION,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    Store,
    Target,
)
from kplane.server.runtime import bootstrap
from kplane.storage.cacher import ADDED, DELETED, MODIFIED, Cacher, CacheWatcher
from kplane.storage.sqlite import SQLiteBackend

NOW = "2025-01-02T03:04:05Z"
ROOT = "root"
CM = builtin.CONFIGMAPS


@contextlib.asynccontextmanager
async def running_store(directory: pathlib.Path, *, history_limit: int = 10_000,
                        ) -> AsyncIterator[Store]:
    """A Store assembled as the server assembles it, with the first-start namespaces."""
    backend = SQLiteBackend(directory / "kplane.db")
    await backend.start()
    catalog = Catalog()
    cacher = Cacher(backend, CacheDecoder(catalog), history_limit=history_limit)
    await cacher.start()
    store = Store(backend=backend, cacher=cacher, catalog=catalog, clock=lambda: NOW)
    await bootstrap(store)
    try:
        yield store
    finally:
        await cacher.stop()
        await backend.close()


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    async with running_store(tmp_path) as running:
        yield running


def cm_target(name: str = "", namespace: str = "default", cluster: str = ROOT) -> Target:
    return Target(CM, cluster, namespace, name)


def configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


async def create_cm(store: Store, name: str, *, namespace: str = "default",
                    labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    body = configmap(name, **extra)
    if labels:
        body["metadata"]["labels"] = labels
    return await store.create(cm_target(name, namespace), body, WriteOptions(field_manager="t"))


async def stored(store: Store, target: Target) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads((await store.get(target)).raw)
    return obj


async def create_namespace(store: Store, name: str, cluster: str = ROOT) -> None:
    await store.create(Target(builtin.NAMESPACES, cluster, "", name),
                       {"metadata": {"name": name}}, WriteOptions(field_manager="t"))


async def fails(awaitable: Any) -> StatusError:
    """The StatusError an awaitable raises (the test fails if it raises none)."""
    with pytest.raises(StatusError) as info:
        await awaitable
    return info.value


# Create ------------------------------------------------------------------------------------


async def test_create_sets_what_the_server_owns(store: Store) -> None:
    body = configmap("a", data={"k": "v"})
    body["metadata"].update(uid="client-uid", resourceVersion="12345",
                            creationTimestamp="1999-01-01T00:00:00Z")
    created = await store.create(cm_target("a"), body, WriteOptions(field_manager="kubectl"))
    meta = created["metadata"]
    assert meta["uid"] != "client-uid"
    assert uuid.UUID(meta["uid"]).version == 4
    assert meta["creationTimestamp"] == NOW
    assert meta["resourceVersion"] == str(await store.backend.current_revision())
    assert meta["namespace"] == "default"
    assert meta["annotations"] == {CLUSTER_ANNOTATION: ROOT}
    assert await stored(store, cm_target("a")) == created


async def test_create_defaults_kind_and_api_version_from_the_url(store: Store) -> None:
    created = await store.create(cm_target("a"), {"metadata": {"name": "a"}}, WriteOptions())
    assert (created["apiVersion"], created["kind"]) == ("v1", "ConfigMap")


async def test_create_records_managed_fields_of_the_manager(store: Store) -> None:
    created = await store.create(cm_target("a"), configmap("a", data={"k": "v"}),
                                 WriteOptions(field_manager="kubectl-create"))
    [entry] = created["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl-create"
    assert entry["operation"] == "Update"
    assert entry["apiVersion"] == "v1"
    assert entry["time"] == NOW
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["fieldsV1"]["f:data"] == {".": {}, "f:k": {}}


async def test_create_generate_name_cuts_the_base_and_adds_five_characters(store: Store) -> None:
    base = "x" * 70
    body = {"metadata": {"generateName": base}}
    created = await store.create(cm_target(), body, WriteOptions())
    name = created["metadata"]["name"]
    assert len(name) == 63
    assert name[:58] == base[:58]
    assert set(name[58:]) <= set(names.GENERATE_NAME_ALPHABET)
    assert created["metadata"]["generateName"] == base
    assert (await store.get(cm_target(name))).name == name


async def test_create_generate_name_retries_on_a_collision(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await create_cm(store, "web-aaaaa")
    candidates = iter(["web-aaaaa", "web-aaaaa", "web-bbbbb"])
    monkeypatch.setattr(names, "generate_name", lambda base: next(candidates))
    created = await store.create(cm_target(), {"metadata": {"generateName": "web-"}},
                                 WriteOptions())
    assert created["metadata"]["name"] == "web-bbbbb"


async def test_create_generate_name_gives_up_after_repeated_collisions(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await create_cm(store, "web-aaaaa")
    monkeypatch.setattr(names, "generate_name", lambda base: "web-aaaaa")
    error = await fails(store.create(cm_target(), {"metadata": {"generateName": "web-"}},
                                     WriteOptions()))
    assert (error.code, error.reason) == (409, "AlreadyExists")


async def test_create_existing_name_is_already_exists(store: Store) -> None:
    await create_cm(store, "x")
    error = await fails(create_cm(store, "x"))
    assert (error.code, error.reason) == (409, "AlreadyExists")
    assert error.message == 'configmaps "x" already exists'
    assert (error.name, error.kind) == ("x", "configmaps")


async def test_create_in_a_missing_namespace_is_not_found(store: Store) -> None:
    error = await fails(create_cm(store, "x", namespace="nope"))
    assert (error.code, error.reason) == (404, "NotFound")
    assert error.message == 'namespaces "nope" not found'


async def test_create_in_a_terminating_namespace_is_forbidden(store: Store) -> None:
    await create_namespace(store, "leaving")
    await store.delete(Target(builtin.NAMESPACES, ROOT, "", "leaving"), DeleteOptions())
    error = await fails(create_cm(store, "x", namespace="leaving"))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == ('configmaps "x" is forbidden: unable to create new content in '
                             "namespace leaving because it is being terminated")


async def test_create_with_another_namespace_in_the_body_is_bad_request(store: Store) -> None:
    body = {"metadata": {"name": "x", "namespace": "kube-system"}}
    error = await fails(store.create(cm_target("x"), body, WriteOptions()))
    assert (error.code, error.message) == (
        400, "the namespace of the provided object does not match the namespace sent on the "
             "request")
    body = {"metadata": {"name": "x", "namespace": "default"}}
    assert (await store.create(cm_target("x"), body, WriteOptions()))["metadata"]["name"] == "x"


async def test_a_namespace_sent_with_a_cluster_scoped_object_is_dropped(store: Store) -> None:
    target = Target(builtin.CLUSTERROLES, ROOT, "", "reader")
    body = {"metadata": {"name": "reader", "namespace": "default"}, "rules": []}
    created = await store.create(target, body, WriteOptions())
    assert "namespace" not in created["metadata"]
    updated = await store.update(target, {**body, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}, WriteOptions())
    assert "namespace" not in updated["metadata"]
    assert "namespace" not in (await stored(store, target))["metadata"]


@pytest.mark.parametrize(("body", "message"), [
    ({"kind": "Secret"}, "the kind in the data (Secret) does not match the expected kind "
                         "(ConfigMap)"),
    ({"apiVersion": "apps/v1"}, "the API version in the data (apps/v1) does not match the "
                                "expected API version (v1)"),
])
async def test_create_with_another_kind_or_version_is_bad_request(
        store: Store, body: dict[str, Any], message: str) -> None:
    error = await fails(store.create(cm_target("x"), {**body, "metadata": {"name": "x"}},
                                     WriteOptions()))
    assert (error.code, error.reason, error.message) == (400, "BadRequest", message)


async def test_create_with_wrongly_typed_fields_is_bad_request(store: Store) -> None:
    error = await fails(store.create(cm_target("x"), configmap("x", data={"k": 1}),
                                     WriteOptions()))
    assert error.code == 400
    assert error.message.startswith(
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: data.k: ')
    assert [c.field for c in error.causes] == ["data.k"]
    assert store.get_cached(cm_target("x")) is None


async def test_create_with_an_invalid_name_is_invalid(store: Store) -> None:
    error = await fails(store.create(cm_target("Bad"), configmap("Bad"), WriteOptions()))
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message.startswith(
        'ConfigMap "Bad" is invalid: metadata.name: Invalid value: "Bad": a lowercase RFC 1123 '
        "subdomain must consist of")
    assert [(c.reason, c.field) for c in error.causes] == [("FieldValueInvalid",
                                                            "metadata.name")]


async def test_field_validation_strict_names_every_unknown_field(store: Store) -> None:
    body = configmap("x", bogus=1, spec={"a": 1})
    error = await fails(store.create(cm_target("x"), body,
                                     WriteOptions(field_validation="Strict")))
    assert (error.code, error.message) == (
        400, 'strict decoding error: unknown field "bogus", unknown field "spec"')
    assert store.get_cached(cm_target("x")) is None


async def test_field_validation_warn_prunes_and_warns(store: Store) -> None:
    options = WriteOptions(field_validation="Warn")
    created = await store.create(cm_target("x"), configmap("x", bogus=1, data={"k": "v"}),
                                 options)
    assert options.warnings == ['unknown field "bogus"']
    assert "bogus" not in created
    assert "bogus" not in await stored(store, cm_target("x"))


async def test_field_validation_ignore_prunes_silently(store: Store) -> None:
    options = WriteOptions(field_validation="Ignore")
    await store.create(cm_target("x"), configmap("x", bogus=1), options)
    assert options.warnings == []
    assert "bogus" not in await stored(store, cm_target("x"))


async def test_dry_run_create_stores_nothing(store: Store) -> None:
    before = await store.backend.current_revision()
    created = await store.create(cm_target("x"), configmap("x"), WriteOptions(dry_run=True))
    assert created["metadata"]["name"] == "x"
    assert created["metadata"]["uid"]
    assert "resourceVersion" not in created["metadata"]
    assert await store.backend.current_revision() == before
    assert store.get_cached(cm_target("x")) is None


# Get and list ------------------------------------------------------------------------------


async def test_get_missing_is_not_found(store: Store) -> None:
    error = await fails(store.get(cm_target("nope")))
    assert (error.code, error.message, error.kind) == (404, 'configmaps "nope" not found',
                                                       "configmaps")


@pytest.mark.parametrize("resource_version", ["", "0"])
async def test_get_sees_the_latest_write(store: Store, resource_version: str) -> None:
    created = await create_cm(store, "a")
    cached = await store.get(cm_target("a"), resource_version=resource_version)
    assert cached.revision == int(created["metadata"]["resourceVersion"])


async def test_get_not_older_than_waits_for_a_write_in_flight(store: Store) -> None:
    created = await create_cm(store, "a")
    wanted = int(created["metadata"]["resourceVersion"]) + 1
    reader = asyncio.create_task(store.get(cm_target("a"), resource_version=str(wanted)))
    await asyncio.sleep(0.05)
    assert not reader.done()
    await create_cm(store, "b")
    assert (await asyncio.wait_for(reader, 2)).name == "a"


async def test_get_with_a_future_resource_version_times_out(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    original = store.cacher.wait_for_revision

    async def impatient(revision: int, *, timeout: float = 5.0) -> None:
        await original(revision, timeout=0.05)

    monkeypatch.setattr(store.cacher, "wait_for_revision", impatient)
    await create_cm(store, "a")
    current = store.cacher.revision
    error = await fails(store.get(cm_target("a"), resource_version="999"))
    assert (error.code, error.reason) == (504, "Timeout")
    assert error.message == f"Too large resource version: 999, current: {current}"
    assert error.headers == {"Retry-After": "1"}


async def test_get_with_a_malformed_resource_version_is_bad_request(store: Store) -> None:
    error = await fails(store.get(cm_target("a"), resource_version="abc"))
    assert (error.code, error.message) == (400, 'invalid resource version "abc"')


async def test_list_pages_in_key_order_with_remaining_counts(store: Store) -> None:
    for name in ["e", "b", "d", "a", "c"]:
        await create_cm(store, name)
    first = await store.list(cm_target(), ListOptions(limit=2))
    assert [o.name for o in first.items] == ["a", "b"]
    assert first.remaining == 3
    await create_cm(store, "bb")  # sorts between pages already served and still to come
    second = await store.list(cm_target(), ListOptions(limit=2,
                                                       continue_token=first.continue_token))
    assert [o.name for o in second.items] == ["bb", "c"]
    assert second.revision == first.revision
    assert second.remaining == 2
    third = await store.list(cm_target(), ListOptions(limit=3,
                                                      continue_token=second.continue_token))
    assert [o.name for o in third.items] == ["d", "e"]
    assert (third.continue_token, third.remaining) == ("", None)


async def test_list_without_limit_returns_everything_at_the_current_revision(
        store: Store) -> None:
    for name in ["b", "a"]:
        await create_cm(store, name)
    result = await store.list(cm_target(), ListOptions())
    assert [o.name for o in result.items] == ["a", "b"]
    assert result.revision == await store.backend.current_revision()
    assert (result.continue_token, result.remaining) == ("", None)


async def test_list_of_all_namespaces_stays_inside_the_cluster(store: Store) -> None:
    await create_cm(store, "a")
    await create_cm(store, "b", namespace="kube-system")
    await create_namespace(store, "default", cluster="other")
    await store.create(cm_target("z", cluster="other"), configmap("z"), WriteOptions())
    result = await store.list(Target(CM, ROOT, ""), ListOptions())
    assert [(o.namespace, o.name) for o in result.items] == [("default", "a"),
                                                             ("kube-system", "b")]
    other = await store.list(Target(CM, "other", "default"), ListOptions())
    assert [o.name for o in other.items] == ["z"]


async def test_list_filters_by_label_and_field_selectors(store: Store) -> None:
    await create_cm(store, "a", labels={"app": "web"})
    await create_cm(store, "b", labels={"app": "db"})
    await create_cm(store, "c", labels={"app": "web", "tier": "front"})
    by_label = await store.list(cm_target(), ListOptions(label_selector="app=web"))
    assert [o.name for o in by_label.items] == ["a", "c"]
    by_set = await store.list(cm_target(), ListOptions(label_selector="app in (db),!tier"))
    assert [o.name for o in by_set.items] == ["b"]
    by_field = await store.list(cm_target(), ListOptions(field_selector="metadata.name!=a"))
    assert [o.name for o in by_field.items] == ["b", "c"]
    both = await store.list(cm_target(), ListOptions(label_selector="app=web",
                                                     field_selector="metadata.name=c"))
    assert [o.name for o in both.items] == ["c"]


async def test_list_pages_a_filtered_list_without_a_remaining_count(store: Store) -> None:
    for name in ["a", "b", "c", "d"]:
        await create_cm(store, name, labels={"keep": "yes" if name != "b" else "no"})
    first = await store.list(cm_target(), ListOptions(limit=2, label_selector="keep=yes"))
    assert [o.name for o in first.items] == ["a", "c"]
    assert first.remaining is None
    rest = await store.list(cm_target(), ListOptions(limit=2, label_selector="keep=yes",
                                                     continue_token=first.continue_token))
    assert [o.name for o in rest.items] == ["d"]


async def test_list_with_an_unsupported_field_is_bad_request(store: Store) -> None:
    error = await fails(store.list(cm_target(), ListOptions(field_selector="data.k=v")))
    assert (error.code, error.message) == (400, "field label not supported: data.k")


async def test_list_selects_secrets_by_type(store: Store) -> None:
    target = Target(builtin.SECRETS, ROOT, "default", "")
    for name, kind in [("a", "Opaque"), ("b", "kubernetes.io/tls")]:
        body = {"metadata": {"name": name}, "type": kind}
        if kind == "kubernetes.io/tls":
            body["data"] = {"tls.crt": "", "tls.key": ""}
        await store.create(Target(builtin.SECRETS, ROOT, "default", name), body, WriteOptions())
    result = await store.list(target, ListOptions(field_selector="type=kubernetes.io/tls"))
    assert [o.name for o in result.items] == ["b"]


@pytest.mark.parametrize(("options", "message"), [
    (ListOptions(resource_version_match="NotOlderThan"),
     "resourceVersionMatch is forbidden unless resourceVersion is provided"),
    (ListOptions(resource_version="1", resource_version_match="Newest"),
     'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", '
     '"NotOlderThan"'),
    (ListOptions(resource_version="0", resource_version_match="Exact"),
     'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    (ListOptions(resource_version="3", continue_token="abc"),
     "specifying resource version is not allowed when using continue"),
    (ListOptions(continue_token="!!not-a-token!!"),
     "continue key is not valid: not a continue token"),
    (ListOptions(limit=-1), "limit: Invalid value: must be a non-negative integer"),
])
async def test_list_refuses_inconsistent_options(store: Store, options: ListOptions,
                                                 message: str) -> None:
    error = await fails(store.list(cm_target(), options))
    assert (error.code, error.reason, error.message) == (400, "BadRequest", message)


async def test_list_exact_with_an_old_resource_version_is_gone(store: Store) -> None:
    old = (await create_cm(store, "a"))["metadata"]["resourceVersion"]
    await create_cm(store, "b")
    current = store.cacher.revision
    for options in (ListOptions(resource_version=old, resource_version_match="Exact"),
                    ListOptions(resource_version=old, limit=10)):
        error = await fails(store.list(cm_target(), options))
        assert (error.code, error.reason) == (410, "Expired")
        assert error.message == f"too old resource version: {old} ({current})"


async def test_list_exact_with_the_current_resource_version_is_served(store: Store) -> None:
    await create_cm(store, "a")
    current = str(store.cacher.revision)
    result = await store.list(cm_target(), ListOptions(resource_version=current,
                                                       resource_version_match="Exact"))
    assert [o.name for o in result.items] == ["a"]


async def test_list_not_older_than_an_old_resource_version_is_served(store: Store) -> None:
    old = (await create_cm(store, "a"))["metadata"]["resourceVersion"]
    await create_cm(store, "b")
    result = await store.list(cm_target(), ListOptions(
        resource_version=old, resource_version_match="NotOlderThan", limit=10))
    assert [o.name for o in result.items] == ["a", "b"]
    assert result.revision == store.cacher.revision


# Update ------------------------------------------------------------------------------------


async def test_update_with_a_stale_resource_version_is_a_conflict(store: Store) -> None:
    created = await create_cm(store, "a", data={"k": "1"})
    await store.update(cm_target("a"), configmap("a", data={"k": "2"}), WriteOptions())
    stale = configmap("a", data={"k": "3"})
    stale["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    error = await fails(store.update(cm_target("a"), stale, WriteOptions()))
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.message == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
        "please apply your changes to the latest version and try again")
    assert (await stored(store, cm_target("a")))["data"] == {"k": "2"}


async def test_update_with_the_current_resource_version_is_written(store: Store) -> None:
    created = await create_cm(store, "a", data={"k": "1"})
    body = configmap("a", data={"k": "2"})
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    updated = await store.update(cm_target("a"), body, WriteOptions())
    assert int(updated["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"])
    assert await stored(store, cm_target("a")) == updated


async def test_update_keeps_immutable_metadata(store: Store) -> None:
    created = await create_cm(store, "a")
    body = configmap("a", data={"k": "2"})
    body["metadata"].update(uid="other", creationTimestamp="1999-01-01T00:00:00Z")
    updated = await store.update(cm_target("a"), body, WriteOptions())
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == NOW
    assert updated["metadata"]["annotations"] == {CLUSTER_ANNOTATION: ROOT}


async def test_update_with_another_name_is_bad_request(store: Store) -> None:
    await create_cm(store, "a")
    error = await fails(store.update(cm_target("a"), configmap("b"), WriteOptions()))
    assert (error.code, error.message) == (
        400, "the name of the object (b) does not match the name on the URL (a)")


async def test_update_with_another_namespace_is_bad_request(store: Store) -> None:
    await create_cm(store, "a")
    body = configmap("a")
    body["metadata"]["namespace"] = "kube-system"
    error = await fails(store.update(cm_target("a"), body, WriteOptions()))
    assert (error.code, error.message) == (
        400, "the namespace of the provided object does not match the namespace sent on the "
             "request")


async def test_update_of_a_missing_object_is_not_found(store: Store) -> None:
    error = await fails(store.update(cm_target("a"), configmap("a"), WriteOptions()))
    assert (error.code, error.message) == (404, 'configmaps "a" not found')


async def test_no_op_update_writes_nothing(store: Store) -> None:
    created = await create_cm(store, "a", data={"k": "v"})
    before = await store.backend.current_revision()
    again = await store.update(cm_target("a"), configmap("a", data={"k": "v"}),
                               WriteOptions(field_manager="t"))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert await store.backend.current_revision() == before


async def test_dry_run_update_stores_nothing(store: Store) -> None:
    await create_cm(store, "a", data={"k": "1"})
    result = await store.update(cm_target("a"), configmap("a", data={"k": "2"}),
                                WriteOptions(dry_run=True))
    assert result["data"] == {"k": "2"}
    assert (await stored(store, cm_target("a")))["data"] == {"k": "1"}


async def test_concurrent_updates_never_lose_a_write(store: Store) -> None:
    await create_cm(store, "counter", data={"n": "0"})

    def increment(obj: dict[str, Any]) -> dict[str, Any]:
        obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
        return obj

    await asyncio.gather(*(store.update_with(cm_target("counter"), increment, WriteOptions())
                           for _ in range(20)))
    assert (await stored(store, cm_target("counter")))["data"] == {"n": "20"}


# Patch -------------------------------------------------------------------------------------


async def test_merge_and_json_patches(store: Store) -> None:
    await create_cm(store, "a", data={"k": "v"})
    merged = await store.patch(cm_target("a"), MERGE_PATCH, {"data": {"x": "1", "k": None}},
                               WriteOptions())
    assert merged["data"] == {"x": "1"}
    patched = await store.patch(cm_target("a"), JSON_PATCH,
                                [{"op": "add", "path": "/data/y", "value": "2"}], WriteOptions())
    assert patched["data"] == {"x": "1", "y": "2"}
    assert await stored(store, cm_target("a")) == patched


async def test_failed_json_patch_test_is_unprocessable(store: Store) -> None:
    await create_cm(store, "a", data={"k": "v"})
    error = await fails(store.patch(cm_target("a"), JSON_PATCH,
                                    [{"op": "test", "path": "/data/k", "value": "w"}],
                                    WriteOptions()))
    assert error.code == 422


async def test_strategic_patch_merges_lists_by_their_merge_key(store: Store) -> None:
    target = Target(builtin.SERVICEACCOUNTS, ROOT, "default", "sa")
    await store.create(target, {"metadata": {"name": "sa"}, "secrets": [{"name": "a"}]},
                       WriteOptions())
    patch = {"secrets": [{"name": "b"}]}
    strategic = await store.patch(target, STRATEGIC_PATCH, patch, WriteOptions())
    assert strategic["secrets"] == [{"name": "b"}, {"name": "a"}]
    merged = await store.patch(target, MERGE_PATCH, patch, WriteOptions())
    assert merged["secrets"] == [{"name": "b"}]


async def test_strategic_patch_is_refused_for_types_without_it(store: Store) -> None:
    widgets = ResourceType(group="example.com", version="v1", resource="widgets", kind="Widget",
                           namespaced=True, supports_strategic_merge=False)
    target = Target(widgets, ROOT, "default", "w")
    await store.create(target, {"metadata": {"name": "w"}, "spec": {"size": 1}}, WriteOptions())
    error = await fails(store.patch(target, STRATEGIC_PATCH, {"spec": {"size": 2}},
                                    WriteOptions()))
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    assert error.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml, application/apply-patch+cbor")
    merged = await store.patch(target, MERGE_PATCH, {"spec": {"size": 2}}, WriteOptions())
    assert merged["spec"] == {"size": 2}


async def test_patch_with_a_stale_resource_version_is_a_conflict(store: Store) -> None:
    created = await create_cm(store, "a", data={"k": "1"})
    await store.patch(cm_target("a"), MERGE_PATCH, {"data": {"k": "2"}}, WriteOptions())
    patch = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
             "data": {"k": "3"}}
    error = await fails(store.patch(cm_target("a"), MERGE_PATCH, patch, WriteOptions()))
    assert (error.code, error.reason) == (409, "Conflict")
    assert "the object has been modified" in error.message
    assert (await stored(store, cm_target("a")))["data"] == {"k": "2"}


async def test_patch_of_a_missing_object_is_not_found(store: Store) -> None:
    error = await fails(store.patch(cm_target("a"), MERGE_PATCH, {"data": {}}, WriteOptions()))
    assert (error.code, error.message) == (404, 'configmaps "a" not found')


async def test_force_outside_apply_is_unprocessable(store: Store) -> None:
    await create_cm(store, "a")
    error = await fails(store.patch(cm_target("a"), MERGE_PATCH, {}, WriteOptions(),
                                    force=True))
    assert (error.code, error.message) == (
        422, "force: Forbidden: may not be specified for non-apply patch")


async def test_apply_creates_when_absent(store: Store) -> None:
    applied = await store.patch(cm_target("a"), APPLY_PATCH,
                                configmap("a", data={"k": "v"}),
                                WriteOptions(field_manager="m1"))
    assert applied["data"] == {"k": "v"}
    assert applied["metadata"]["annotations"] == {CLUSTER_ANNOTATION: ROOT}
    [entry] = applied["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("m1", "Apply")
    assert entry["fieldsV1"] == {"f:data": {"f:k": {}}}
    assert await stored(store, cm_target("a")) == applied


async def test_apply_needs_a_field_manager(store: Store) -> None:
    error = await fails(store.patch(cm_target("a"), APPLY_PATCH, configmap("a"),
                                    WriteOptions()))
    assert error.code == 422
    assert "fieldManager: Required value" in error.message


async def test_apply_conflicts_with_another_manager_unless_forced(store: Store) -> None:
    await store.patch(cm_target("a"), APPLY_PATCH, configmap("a", data={"k": "v"}),
                      WriteOptions(field_manager="m1"))
    error = await fails(store.patch(cm_target("a"), APPLY_PATCH,
                                    configmap("a", data={"k": "w"}),
                                    WriteOptions(field_manager="m2")))
    assert (error.code, error.reason) == (409, "Conflict")
    assert [(c.reason, c.message, c.field) for c in error.causes] == [
        ("FieldManagerConflict", 'conflict with "m1"', ".data.k")]
    forced = await store.patch(cm_target("a"), APPLY_PATCH, configmap("a", data={"k": "w"}),
                               WriteOptions(field_manager="m2"), force=True)
    assert forced["data"] == {"k": "w"}
    assert [e["manager"] for e in forced["metadata"]["managedFields"]] == ["m2"]


async def test_apply_with_a_stale_resource_version_conflicts(store: Store) -> None:
    first = await store.patch(cm_target("a"), APPLY_PATCH, configmap("a", data={"k": "v"}),
                              WriteOptions(field_manager="m1"))
    current = first["metadata"]["resourceVersion"]
    await store.patch(cm_target("a"), MERGE_PATCH, {"data": {"other": "x"}}, WriteOptions())
    stale = configmap("a", data={"k": "w"})
    stale["metadata"]["resourceVersion"] = current
    error = await fails(store.patch(cm_target("a"), APPLY_PATCH, stale,
                                    WriteOptions(field_manager="m1")))
    assert (error.code, error.reason) == (409, "Conflict")
    assert "the object has been modified" in error.message
    assert (await stored(store, cm_target("a")))["data"] == {"k": "v", "other": "x"}
    # With the current resourceVersion, the same configuration applies.
    stale["metadata"]["resourceVersion"] = (await stored(store, cm_target("a")))[
        "metadata"]["resourceVersion"]
    applied = await store.patch(cm_target("a"), APPLY_PATCH, stale,
                                WriteOptions(field_manager="m1"))
    assert applied["data"] == {"k": "w", "other": "x"}


# Delete ------------------------------------------------------------------------------------


async def test_delete_removes_the_object(store: Store) -> None:
    created = await create_cm(store, "a")
    obj, gone = await store.delete(cm_target("a"), DeleteOptions())
    assert gone is True
    assert obj["metadata"]["uid"] == created["metadata"]["uid"]
    assert store.get_cached(cm_target("a")) is None
    error = await fails(store.delete(cm_target("a"), DeleteOptions()))
    assert (error.code, error.message) == (404, 'configmaps "a" not found')


async def test_delete_preconditions(store: Store) -> None:
    created = await create_cm(store, "a")
    uid, rv = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    error = await fails(store.delete(cm_target("a"), DeleteOptions(uid="other")))
    assert (error.code, error.message) == (
        409, 'Operation cannot be fulfilled on configmaps "a": Precondition failed: UID in '
             f"precondition: other, UID in object meta: {uid}")
    error = await fails(store.delete(cm_target("a"), DeleteOptions(resource_version="1")))
    assert (error.code, error.message) == (
        409, 'Operation cannot be fulfilled on configmaps "a": Precondition failed: '
             f"ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}")
    assert store.get_cached(cm_target("a")) is not None
    _, gone = await store.delete(cm_target("a"), DeleteOptions(uid=uid, resource_version=rv))
    assert gone is True


async def test_dry_run_delete_keeps_the_object(store: Store) -> None:
    await create_cm(store, "a")
    _, gone = await store.delete(cm_target("a"), DeleteOptions(dry_run=True))
    assert gone is True
    assert store.get_cached(cm_target("a")) is not None


async def test_finalizers_keep_a_deleted_object_until_they_are_removed(store: Store) -> None:
    body = configmap("a")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await store.create(cm_target("a"), body, WriteOptions())
    obj, gone = await store.delete(cm_target("a"), DeleteOptions())
    assert gone is False
    assert obj["metadata"]["deletionTimestamp"] == NOW
    assert await stored(store, cm_target("a")) == obj

    again, gone = await store.delete(cm_target("a"), DeleteOptions())
    assert gone is False
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]

    error = await fails(store.patch(
        cm_target("a"), MERGE_PATCH,
        {"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}, WriteOptions()))
    assert error.code == 422
    assert "no new finalizers can be added if the object is being deleted" in error.message

    cleared = configmap("a")
    cleared["metadata"]["finalizers"] = []
    await store.update(cm_target("a"), cleared, WriteOptions())
    assert store.get_cached(cm_target("a")) is None


@pytest.mark.parametrize(("policy", "finalizer"), [("Foreground", "foregroundDeletion"),
                                                   ("Orphan", "orphan")])
async def test_delete_hands_dependents_to_the_garbage_collector_by_a_finalizer(
        store: Store, policy: str, finalizer: str) -> None:
    await create_cm(store, "a")
    obj, gone = await store.delete(cm_target("a"), DeleteOptions(propagation_policy=policy))
    assert gone is False
    assert obj["metadata"]["finalizers"] == [finalizer]
    assert obj["metadata"]["deletionTimestamp"] == NOW
    assert await stored(store, cm_target("a")) == obj


async def test_a_second_delete_may_change_the_propagation_policy(store: Store) -> None:
    body = configmap("a")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await store.create(cm_target("a"), body, WriteOptions())
    await store.delete(cm_target("a"), DeleteOptions(propagation_policy="Foreground"))
    # Without a policy the finalizer already there stands (and nothing is written).
    before = await stored(store, cm_target("a"))
    again, _ = await store.delete(cm_target("a"), DeleteOptions())
    assert again == before
    assert before["metadata"]["finalizers"] == ["example.com/hold", "foregroundDeletion"]
    orphaning, gone = await store.delete(cm_target("a"),
                                         DeleteOptions(propagation_policy="Orphan"))
    assert gone is False
    assert orphaning["metadata"]["finalizers"] == ["example.com/hold", "orphan"]
    assert orphaning["metadata"]["deletionTimestamp"] == before["metadata"]["deletionTimestamp"]
    background, gone = await store.delete(cm_target("a"),
                                          DeleteOptions(propagation_policy="Background"))
    assert gone is False
    assert background["metadata"]["finalizers"] == ["example.com/hold"]
    assert await stored(store, cm_target("a")) == background


async def test_a_background_delete_of_an_object_held_only_by_the_collector_deletes_it(
        store: Store) -> None:
    await create_cm(store, "a")
    await store.delete(cm_target("a"), DeleteOptions(propagation_policy="Foreground"))
    _, gone = await store.delete(cm_target("a"), DeleteOptions(propagation_policy="Background"))
    assert gone is True
    assert store.get_cached(cm_target("a")) is None


async def test_dry_run_foreground_delete_stores_nothing(store: Store) -> None:
    created = await create_cm(store, "a")
    obj, gone = await store.delete(cm_target("a"), DeleteOptions(
        propagation_policy="Foreground", dry_run=True))
    assert gone is False
    assert obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert await stored(store, cm_target("a")) == created


async def test_events_take_no_part_in_garbage_collection(store: Store) -> None:
    target = Target(builtin.EVENTS, ROOT, "default", "e")
    await store.create(target, {"metadata": {"name": "e"}, "involvedObject": {},
                                "reason": "Test"}, WriteOptions())
    _, gone = await store.delete(target, DeleteOptions(propagation_policy="Orphan"))
    assert gone is True


async def test_delete_collection_honours_selectors(store: Store) -> None:
    await create_cm(store, "a", labels={"app": "web"})
    await create_cm(store, "b", labels={"app": "db"})
    await create_cm(store, "c", labels={"app": "web"})
    deleted = await store.delete_collection(cm_target(), ListOptions(label_selector="app=web"),
                                            DeleteOptions())
    assert [d["metadata"]["name"] for d in deleted] == ["a", "c"]
    remaining = await store.list(cm_target(), ListOptions())
    assert [o.name for o in remaining.items] == ["b"]
    deleted = await store.delete_collection(cm_target(),
                                            ListOptions(field_selector="metadata.name=b"),
                                            DeleteOptions())
    assert [d["metadata"]["name"] for d in deleted] == ["b"]
    assert (await store.list(cm_target(), ListOptions())).items == []


async def test_deleting_a_namespace_marks_it_terminating(store: Store) -> None:
    target = Target(builtin.NAMESPACES, ROOT, "", "leaving")
    await create_namespace(store, "leaving")
    obj, gone = await store.delete(target, DeleteOptions())
    assert gone is False
    assert obj["status"] == {"phase": "Terminating"}
    assert obj["metadata"]["deletionTimestamp"] == NOW
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert await stored(store, target) == obj


# Watch -------------------------------------------------------------------------------------


async def next_events(watcher: CacheWatcher, count: int) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    for _ in range(count):
        event = await watcher.next_event(timeout=2.0)
        assert event is not None, f"only {events} arrived"
        events.append((event.type, event.obj.name))
    return events


async def no_more_events(watcher: CacheWatcher) -> None:
    assert await watcher.next_event(timeout=0.05) is None


@pytest.mark.parametrize("resource_version", ["", "0"])
async def test_watch_without_a_resource_version_starts_with_the_current_objects(
        store: Store, resource_version: str) -> None:
    await create_cm(store, "a")
    await create_cm(store, "b")
    start = await store.watch(cm_target(), ListOptions(resource_version=resource_version),
                              send_initial_events=None)
    try:
        assert [o.name for o in start.initial] == ["a", "b"]
        assert start.revision == store.cacher.revision
        await no_more_events(start.watcher)
        await create_cm(store, "c")
        assert await next_events(start.watcher, 1) == [(ADDED, "c")]
    finally:
        start.watcher.close()


async def test_watch_from_a_resource_version_replays_later_changes(store: Store) -> None:
    first = await create_cm(store, "a")
    await create_cm(store, "b")
    await store.patch(cm_target("a"), MERGE_PATCH, {"data": {"k": "v"}}, WriteOptions())
    await store.delete(cm_target("b"), DeleteOptions())
    await create_cm(store, "x", namespace="kube-system")
    start = await store.watch(
        cm_target(), ListOptions(resource_version=first["metadata"]["resourceVersion"]),
        send_initial_events=None)
    try:
        assert start.initial == []
        assert await next_events(start.watcher, 3) == [(ADDED, "b"), (MODIFIED, "a"),
                                                       (DELETED, "b")]
        await no_more_events(start.watcher)
    finally:
        start.watcher.close()


async def test_watch_with_a_label_selector_sees_objects_leave_it(store: Store) -> None:
    await create_cm(store, "a", labels={"app": "web"})
    start = await store.watch(cm_target(), ListOptions(label_selector="app=web"),
                              send_initial_events=None)
    try:
        assert [o.name for o in start.initial] == ["a"]
        await create_cm(store, "b", labels={"app": "db"})
        await store.patch(cm_target("a"), MERGE_PATCH, {"metadata": {"labels": {"app": "db"}}},
                          WriteOptions())
        assert await next_events(start.watcher, 1) == [(DELETED, "a")]
    finally:
        start.watcher.close()


async def test_watch_send_initial_events(store: Store) -> None:
    await create_cm(store, "a")
    start = await store.watch(
        cm_target(), ListOptions(resource_version_match="NotOlderThan"),
        send_initial_events=True)
    try:
        assert [o.name for o in start.initial] == ["a"]
    finally:
        start.watcher.close()
    quiet = await store.watch(
        cm_target(), ListOptions(resource_version_match="NotOlderThan"),
        send_initial_events=False)
    try:
        assert quiet.initial == []
        await create_cm(store, "b")
        assert await next_events(quiet.watcher, 1) == [(ADDED, "b")]
    finally:
        quiet.watcher.close()


async def test_watch_send_initial_events_needs_not_older_than(store: Store) -> None:
    error = await fails(store.watch(cm_target(), ListOptions(), send_initial_events=True))
    assert (error.code, error.reason, error.message) == (
        422, "Invalid",
        'sendInitialEvents is forbidden unless resourceVersionMatch is "NotOlderThan"')


async def test_watch_with_resource_version_match_alone_is_bad_request(store: Store) -> None:
    error = await fails(store.watch(cm_target(), ListOptions(
        resource_version="1", resource_version_match="NotOlderThan"), send_initial_events=None))
    assert (error.code, error.message) == (400, "resourceVersionMatch is forbidden for watch")


async def test_watch_from_a_compacted_resource_version_is_gone(tmp_path: pathlib.Path) -> None:
    async with running_store(tmp_path, history_limit=2) as small:
        first = await create_cm(small, "a")
        for name in ["b", "c", "d"]:
            await create_cm(small, name)
        old = first["metadata"]["resourceVersion"]
        error = await fails(small.watch(cm_target(), ListOptions(resource_version=old),
                                        send_initial_events=None))
        assert (error.code, error.reason) == (410, "Expired")
        assert error.message.startswith(f"too old resource version: {old} (")


# Continue tokens through the Store ----------------------------------------------------------


async def test_a_continue_token_cannot_leave_the_collection(store: Store) -> None:
    await create_cm(store, "a")
    revision = store.cacher.revision
    for start in ["../kube-system/x", "/registry/core/secrets/root/default/x"]:
        token = pagination.encode_continue(start_after=start, revision=revision)
        error = await fails(store.list(cm_target(), ListOptions(limit=1, continue_token=token)))
        assert (error.code, error.message) == (400, "continue key is not valid: invalid start "
                                                     "key")



async def test_a_continue_token_from_before_compaction_is_expired(
        tmp_path: pathlib.Path) -> None:
    async with running_store(tmp_path) as store:
        target = Target(builtin.CONFIGMAPS, "root", "default", "")
        for i in range(3):
            await store.create(Target(builtin.CONFIGMAPS, "root", "default", f"c{i}"),
                               {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": f"c{i}"}},
                               WriteOptions(field_manager="test"))
        first = await store.list(target, ListOptions(limit=1))
        assert first.continue_token
        await store.backend.compact(await store.backend.current_revision())
        with pytest.raises(StatusError) as expired:
            await store.list(target, ListOptions(limit=1, continue_token=first.continue_token))
        assert expired.value.code == 410
