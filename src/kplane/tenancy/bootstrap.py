"""What the root logical cluster holds from the first start: its LogicalCluster and the
built-in WorkspaceTypes. Idempotent: later starts find them and change nothing."""

from __future__ import annotations

import contextlib
from typing import Any

from kplane.apimachinery.errors import StatusError
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import LOGICAL_CLUSTER_NAME, PATH_ANNOTATION, TYPE_ANNOTATION
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.tenancy.names import ROOT
from kplane.tenancy.types import BUILTIN_TYPES

MANAGER = "kplane-bootstrap"


async def _create_missing(store: Store, target: Target, body: dict[str, Any]) -> None:
    if store.get_cached(target) is not None:
        return
    with contextlib.suppress(StatusError):
        await store.create(target, body, WriteOptions(field_manager=MANAGER))


async def bootstrap_root(store: Store, *, base_url: str) -> None:
    root_cluster = {
        "apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
        "metadata": {"name": LOGICAL_CLUSTER_NAME,
                     "annotations": {PATH_ANNOTATION: ROOT, TYPE_ANNOTATION: f"{ROOT}:root"}},
        "spec": {"initializers": []},
        "status": {"phase": "Ready", "URL": f"{base_url.rstrip('/')}/clusters/{ROOT}"},
    }
    await _create_missing(
        store, Target(builtin.LOGICAL_CLUSTERS, ROOT, "", LOGICAL_CLUSTER_NAME), root_cluster)
    for body in BUILTIN_TYPES:
        name = body["metadata"]["name"]
        await _create_missing(store, Target(builtin.WORKSPACE_TYPES, ROOT, "", name),
                              {**body, "metadata": dict(body["metadata"])})
