"""Garbage collection with the real kubectl: ``kubectl delete`` with each ``--cascade``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.server import KplaneProcess

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

HOLD = "example.com/hold"


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def namespace(kplane: KplaneProcess, name: str) -> str:
    kplane.kubectl("create", "namespace", name)
    return name


def create_parent(kplane: KplaneProcess, ns: str, name: str = "parent") -> dict[str, Any]:
    kplane.kubectl("create", "configmap", name, "-n", ns, "--from-literal=role=parent")
    parent: dict[str, Any] = kplane.kubectl_json("get", "configmap", name, "-n", ns)
    return parent


def create_child(kplane: KplaneProcess, ns: str, name: str, parent: dict[str, Any], *,
                 block: bool = False, finalizers: list[str] | None = None) -> None:
    meta: dict[str, Any] = {
        "name": name, "namespace": ns,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                             "name": parent["metadata"]["name"],
                             "uid": parent["metadata"]["uid"],
                             "blockOwnerDeletion": block}]}
    if finalizers:
        meta["finalizers"] = finalizers
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": {"role": "child"}}
    kplane.kubectl("create", "-f", "-", input=json.dumps(manifest))


def get(kplane: KplaneProcess, ns: str, name: str) -> dict[str, Any] | None:
    result = kplane.kubectl("get", "configmap", name, "-n", ns, "-o", "json",
                            "--ignore-not-found")
    found: dict[str, Any] | None = json.loads(result.stdout) if result.stdout.strip() else None
    return found


def gone(kplane: KplaneProcess, ns: str, *names: str) -> Callable[[], bool]:
    return lambda: all(get(kplane, ns, name) is None for name in names)


def test_default_delete_collects_the_children_in_the_background(kplane: KplaneProcess) -> None:
    ns = namespace(kplane, "gc-background")
    parent = create_parent(kplane, ns)
    create_child(kplane, ns, "child-a", parent)
    create_child(kplane, ns, "child-b", parent, block=True)
    kplane.kubectl("create", "configmap", "unrelated", "-n", ns)
    out = kplane.kubectl("delete", "configmap", "parent", "-n", ns).stdout
    assert 'configmap "parent" deleted' in out
    wait_until(gone(kplane, ns, "child-a", "child-b"), what="the children are collected")
    assert get(kplane, ns, "unrelated") is not None


def test_foreground_keeps_the_parent_until_the_children_are_gone(
        kplane: KplaneProcess) -> None:
    ns = namespace(kplane, "gc-foreground")
    parent = create_parent(kplane, ns)
    create_child(kplane, ns, "held", parent, block=True, finalizers=[HOLD])
    create_child(kplane, ns, "free", parent)
    kplane.kubectl("delete", "configmap", "parent", "-n", ns, "--cascade=foreground",
                   "--wait=false")
    waiting = get(kplane, ns, "parent")
    assert waiting is not None
    assert waiting["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert waiting["metadata"]["deletionTimestamp"]

    def held_is_deleting() -> bool:
        held = get(kplane, ns, "held")
        return held is not None and bool(held["metadata"].get("deletionTimestamp"))

    wait_until(held_is_deleting, what="the blocking child is being deleted")
    wait_until(gone(kplane, ns, "free"), what="the other child is collected")
    still = get(kplane, ns, "parent")
    assert still is not None and still["metadata"]["finalizers"] == ["foregroundDeletion"]

    kplane.kubectl("patch", "configmap", "held", "-n", ns, "--type=merge",
                   "-p", '{"metadata":{"finalizers":null}}')
    wait_until(gone(kplane, ns, "held", "parent"), what="the child, then the parent, are gone")


def test_foreground_delete_returns_once_everything_is_gone(kplane: KplaneProcess) -> None:
    ns = namespace(kplane, "gc-foreground-wait")
    parent = create_parent(kplane, ns)
    create_child(kplane, ns, "child", parent, block=True)
    # kubectl waits until the parent is gone, which foreground deletion allows only once
    # the blocking child is.
    kplane.kubectl("delete", "configmap", "parent", "-n", ns, "--cascade=foreground",
                   "--timeout=30s")
    assert gone(kplane, ns, "parent", "child")()


def test_orphan_keeps_the_children_without_their_owner_reference(
        kplane: KplaneProcess) -> None:
    ns = namespace(kplane, "gc-orphan")
    parent = create_parent(kplane, ns)
    create_child(kplane, ns, "child-a", parent, block=True)
    create_child(kplane, ns, "child-b", parent)
    kplane.kubectl("delete", "configmap", "parent", "-n", ns, "--cascade=orphan",
                   "--timeout=30s")
    assert get(kplane, ns, "parent") is None
    for name in ("child-a", "child-b"):
        child = get(kplane, ns, name)
        assert child is not None, f"{name} was collected instead of orphaned"
        assert "ownerReferences" not in child["metadata"]
