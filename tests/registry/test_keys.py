"""Storage keys: one keyspace for every tenant, with prefixes that never over-match."""

from __future__ import annotations

import pytest

from kplane.registry import builtin
from kplane.registry.keys import (
    ParsedKey,
    cluster_prefix,
    collection_prefix,
    object_key,
    parse_key,
    resource_prefix,
)
from kplane.registry.resources import ResourceType


def test_core_group_is_spelled_core() -> None:
    assert resource_prefix(builtin.CONFIGMAPS) == "/registry/core/configmaps/"
    assert resource_prefix(builtin.ROLES) == "/registry/rbac.authorization.k8s.io/roles/"


def test_storage_location_overrides_the_served_one() -> None:
    moved = ResourceType(group="events.k8s.io", version="v1", resource="events", kind="Event",
                         namespaced=True, storage_group="", storage_resource="events")
    assert resource_prefix(moved) == "/registry/core/events/"


def test_namespaced_keys_and_prefixes() -> None:
    rt = builtin.CONFIGMAPS
    assert cluster_prefix(rt, "root:org") == "/registry/core/configmaps/root:org/"
    assert collection_prefix(rt, "root", "ns-a") == "/registry/core/configmaps/root/ns-a/"
    assert collection_prefix(rt, "root", "") == "/registry/core/configmaps/root/"
    assert object_key(rt, "root", "ns-a", "x") == "/registry/core/configmaps/root/ns-a/x"


def test_cluster_scoped_keys_ignore_the_namespace() -> None:
    rt = builtin.NAMESPACES
    assert collection_prefix(rt, "root", "ignored") == "/registry/core/namespaces/root/"
    assert object_key(rt, "root", "", "default") == "/registry/core/namespaces/root/default"


def test_a_namespace_prefix_does_not_match_a_longer_namespace() -> None:
    prefix = collection_prefix(builtin.CONFIGMAPS, "root", "ns-a")
    assert object_key(builtin.CONFIGMAPS, "root", "ns-a", "x").startswith(prefix)
    assert not object_key(builtin.CONFIGMAPS, "root", "ns-ab", "x").startswith(prefix)
    assert not object_key(builtin.CONFIGMAPS, "root2", "ns-a", "x").startswith(
        cluster_prefix(builtin.CONFIGMAPS, "root"))


@pytest.mark.parametrize(("rt", "namespace", "expected"), [
    (builtin.CONFIGMAPS, "default", ParsedKey("", "configmaps", "root", "default", "x")),
    (builtin.NAMESPACES, "", ParsedKey("", "namespaces", "root", "", "x")),
    (builtin.ROLES, "kube-system", ParsedKey("rbac.authorization.k8s.io", "roles", "root",
                                             "kube-system", "x")),
    (builtin.CLUSTERROLES, "", ParsedKey("rbac.authorization.k8s.io", "clusterroles", "root",
                                         "", "x")),
])
def test_parse_key_inverts_object_key(rt: ResourceType, namespace: str,
                                      expected: ParsedKey) -> None:
    assert parse_key(object_key(rt, "root", namespace, "x")) == expected


@pytest.mark.parametrize("key", [
    "/other/core/configmaps/root/default/x",
    "/registry/core/configmaps/root",
    "/registry/core/configmaps/root/default/x/extra",
    "registry/core/configmaps/root/x",
])
def test_parse_key_refuses_keys_outside_the_layout(key: str) -> None:
    assert parse_key(key) is None
