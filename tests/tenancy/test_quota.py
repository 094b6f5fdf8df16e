"""The object-count quota: creates beyond core.kcp.io/max-total-objects are refused."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import LOGICAL_CLUSTER_NAME
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.tenancy.quota import MAX_OBJECTS_ANNOTATION, ObjectCountQuota
from tests.tenancy.test_admission import ready_child, tenancy_stack

OPTIONS = WriteOptions(field_manager="test")


def _configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def _limit(store: Store, cluster: str, value: str) -> None:
    target = Target(builtin.LOGICAL_CLUSTERS, cluster, "", LOGICAL_CLUSTER_NAME)

    def annotate(current: dict[str, Any]) -> dict[str, Any]:
        current["metadata"].setdefault("annotations", {})[MAX_OBJECTS_ANNOTATION] = value
        return current

    await store.update_with(target, annotate, OPTIONS)


async def test_creates_beyond_the_limit_are_refused_and_nothing_else_is(
        tmp_path: pathlib.Path) -> None:
    async with tenancy_stack(tmp_path) as tenancy:
        store = tenancy.store
        quota = ObjectCountQuota(cacher=store.cacher, catalog=store.catalog,
                                 resolver=tenancy.resolver)
        store.admission.append(quota)
        cluster = await ready_child(store, "root", "root", "capped")
        other = await ready_child(store, "root", "root", "free")
        await store.create(Target(builtin.NAMESPACES, cluster, "", "default"),
                           {"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "default"}}, OPTIONS)
        assert quota.count(cluster) == 2  # the LogicalCluster and the namespace
        await _limit(store, cluster, "3")
        assert quota.limit(cluster) == 3
        await store.create(Target(builtin.CONFIGMAPS, cluster, "default", "one"),
                           _configmap("one"), OPTIONS)
        with pytest.raises(StatusError) as refused:
            await store.create(Target(builtin.CONFIGMAPS, cluster, "default", "two"),
                               _configmap("two"), OPTIONS)
        assert refused.value.code == 403
        assert "exceeded quota" in refused.value.message
        assert MAX_OBJECTS_ANNOTATION in refused.value.message
        assert "root:capped" in refused.value.message
        # Updates and deletes still work; other workspaces are not limited.
        await store.update_with(Target(builtin.CONFIGMAPS, cluster, "default", "one"),
                                lambda cm: {**cm, "data": {"k": "v"}}, OPTIONS)
        assert quota.count(cluster) == 3
        assert quota.limit(other) is None
        await store.create(Target(builtin.NAMESPACES, other, "", "default"),
                           {"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "default"}}, OPTIONS)
        for i in range(5):
            await store.create(Target(builtin.CONFIGMAPS, other, "default", f"c{i}"),
                               _configmap(f"c{i}"), OPTIONS)


async def test_a_malformed_limit_is_ignored(tmp_path: pathlib.Path) -> None:
    async with tenancy_stack(tmp_path) as tenancy:
        quota = ObjectCountQuota(cacher=tenancy.store.cacher, catalog=tenancy.store.catalog,
                                 resolver=tenancy.resolver)
        cluster = await ready_child(tenancy.store, "root", "root", "odd")
        await _limit(tenancy.store, cluster, "lots")
        assert quota.limit(cluster) is None
