"""What the root logical cluster holds from the first start: its LogicalCluster, the
built-in WorkspaceTypes, and (as kcp's root has) a ClusterRole and binding that let every
authenticated user ``use`` the types ``universal``, ``organization`` and ``team``.
Idempotent: later starts create what is missing (so a data directory from before the
``use`` check gets the role) and change nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.users import AUTHENTICATED
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import LOGICAL_CLUSTER_NAME, PATH_ANNOTATION, TYPE_ANNOTATION
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.tenancy.names import ROOT
from kplane.tenancy.types import BUILTIN_TYPES

MANAGER = "kplane-bootstrap"
# kcp's names (config/root in kcp-dev/kcp).
TYPE_USE_ROLE = "system:kcp:universal-workspacetype-use"
TYPE_USE_BINDING = "system:kcp:authenticated:universal-workspacetype-use"
PUBLIC_TYPES = ("universal", "organization", "team")
_RBAC = "rbac.authorization.k8s.io"


def type_use_objects() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ClusterRole granting ``use`` on root's public types, and its binding to every
    authenticated user (fresh copies)."""
    role = {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRole",
            "metadata": {"name": TYPE_USE_ROLE},
            "rules": [{"apiGroups": [builtin.WORKSPACE_TYPES.group],
                       "resources": [builtin.WORKSPACE_TYPES.resource],
                       "resourceNames": list(PUBLIC_TYPES), "verbs": ["use"]}]}
    binding = {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": TYPE_USE_BINDING},
               "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": TYPE_USE_ROLE},
               "subjects": [{"apiGroup": _RBAC, "kind": "Group", "name": AUTHENTICATED}]}
    return role, binding


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
    role, binding = type_use_objects()
    await _create_missing(store, Target(builtin.CLUSTERROLES, ROOT, "", TYPE_USE_ROLE), role)
    await _create_missing(store, Target(builtin.CLUSTERROLEBINDINGS, ROOT, "", TYPE_USE_BINDING),
                          binding)
