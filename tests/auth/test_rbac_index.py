"""The RBAC index: fed directly, and following a real cache over a real SQLite store."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import orjson

from kplane.auth.authn import UserInfo
from kplane.auth.rbac_index import IndexFollower, RbacIndex, rbac_prefix
from kplane.registry import builtin
from kplane.registry.options import WriteOptions
from kplane.registry.store import Target
from tests.registry.test_store import running_store

ALICE = UserInfo(name="alice", groups=("devs",))
RBAC = "/registry/rbac.authorization.k8s.io"


def crb(name: str, role: str, subjects: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"metadata": {"name": name},
                         "roleRef": {"kind": "ClusterRole", "name": role},
                         "subjects": subjects})


def names(index: RbacIndex, cluster: str, namespace: str = "") -> list[str]:
    return [b.name for b, _ in index.bindings_for(ALICE, cluster, namespace)]


def test_bindings_are_found_by_user_and_group_once_each() -> None:
    index = RbacIndex()
    index.put(f"{RBAC}/clusterrolebindings/c1/both",
              crb("both", "view", [{"kind": "User", "name": "alice"},
                                   {"kind": "Group", "name": "devs"}]))
    index.put(f"{RBAC}/clusterrolebindings/c1/other",
              crb("other", "view", [{"kind": "User", "name": "bob"}]))
    index.put(f"{RBAC}/rolebindings/c1/ns/rb", orjson.dumps({
        "metadata": {"name": "rb", "namespace": "ns"},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "Group", "name": "devs"}]}))
    assert names(index, "c1") == ["both"]
    assert names(index, "c1", "ns") == ["both", "rb"]
    assert names(index, "c2", "ns") == []


def test_replacing_and_removing_update_the_subject_index() -> None:
    index = RbacIndex()
    key = f"{RBAC}/clusterrolebindings/c1/b"
    index.put(key, crb("b", "view", [{"kind": "User", "name": "alice"}]))
    index.put(key, crb("b", "view", [{"kind": "User", "name": "bob"}]))
    assert names(index, "c1") == []
    index.put(key, crb("b", "view", [{"kind": "Group", "name": "devs"}]))
    assert names(index, "c1") == ["b"]
    index.remove(key)
    assert names(index, "c1") == []
    assert index.cluster_count == 0


def test_undecodable_objects_are_dropped() -> None:
    index = RbacIndex()
    key = f"{RBAC}/clusterrolebindings/c1/b"
    index.put(key, crb("b", "view", [{"kind": "User", "name": "alice"}]))
    index.put(key, b"{not json")
    assert names(index, "c1") == []
    index.put("/registry/core/configmaps/c1/ns/x", b"{}")
    assert index.cluster_count == 0


def test_built_in_bindings_apply_unless_overridden_by_name() -> None:
    index = RbacIndex()
    authenticated = UserInfo(name="x", groups=("system:authenticated",))
    builtin_names = [b.name for b, _ in index.bindings_for(authenticated, "c1", "")]
    assert builtin_names == ["system:discovery", "system:basic-user",
                             "system:public-info-viewer"]
    index.put(f"{RBAC}/clusterrolebindings/c1/system:discovery",
              crb("system:discovery", "system:discovery", [{"kind": "User", "name": "y"}]))
    assert [b.name for b, _ in index.bindings_for(authenticated, "c1", "")] == [
        "system:basic-user", "system:public-info-viewer"]


def test_aggregation_cycles_terminate() -> None:
    index = RbacIndex()
    for name, label, wants in [("a", "x", "y"), ("b", "y", "x")]:
        index.put(f"{RBAC}/clusterroles/c1/{name}", orjson.dumps({
            "metadata": {"name": name, "labels": {label: "1"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {wants: "1"}}]},
            "rules": [{"verbs": [name], "nonResourceURLs": ["/"]}]}))
    rules = index.cluster_role_rules("c1", "a")
    assert rules is not None
    assert [r.verbs for r in rules] == [("a",), ("b",)]


async def test_follower_loads_existing_objects_then_follows(tmp_path: pathlib.Path) -> None:
    async with running_store(tmp_path) as store:
        body: dict[str, Any] = {"metadata": {"name": "early"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}]}
        target = Target(builtin.CLUSTERROLEBINDINGS, "c1", "", "early")
        await store.create(target, body, WriteOptions(field_manager="t"))
        index = RbacIndex()
        follower = IndexFollower(store.cacher, index)
        await follower.start()
        try:
            assert names(index, "c1") == ["early"]
            body["metadata"]["name"] = "late"
            created = await store.create(Target(builtin.CLUSTERROLEBINDINGS, "c1", "", "late"),
                                         body, WriteOptions(field_manager="t"))
            revision = int(created["metadata"]["resourceVersion"])
            await follower.wait_for(revision, timeout=2)
            assert follower.revision >= revision
            assert sorted(names(index, "c1")) == ["early", "late"]
        finally:
            await follower.stop()


async def test_follower_reloads_when_its_watch_is_closed(tmp_path: pathlib.Path) -> None:
    async with running_store(tmp_path) as store:
        index = RbacIndex()
        follower = IndexFollower(store.cacher, index)
        await follower.start()
        try:
            # Closing every watch on the prefix is what a cache relist does to us.
            for watcher in list(store.cacher._watchers.get(
                    rbac_prefix("clusterrolebindings"), ())):
                watcher.close()
            await asyncio.sleep(0)
            body = {"metadata": {"name": "b"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "Group", "name": "devs"}]}
            created = await store.create(Target(builtin.CLUSTERROLEBINDINGS, "c1", "", "b"),
                                         body, WriteOptions(field_manager="t"))
            await follower.wait_for(int(created["metadata"]["resourceVersion"]), timeout=2)
            assert names(index, "c1") == ["b"]
        finally:
            await follower.stop()
