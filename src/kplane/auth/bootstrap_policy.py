"""The default RBAC policy every logical cluster has, defined in code and never stored.

Upstream kube-apiserver writes its bootstrap ClusterRoles and ClusterRoleBindings into
etcd. kplane cannot: a workspace must cost kilobytes, and a million workspaces times a
few dozen default roles would not. So the defaults live here, once, and the index
consults them for any cluster that has no stored object of the same name. A stored object
with one of these names overrides the built-in one in its own cluster only.

The roles cover the kinds kplane serves (see ``kplane.registry.builtin``), approximating
upstream's lists; differences are listed in ``docs/security.md``.
"""

from __future__ import annotations

from typing import Any

from kplane.auth.authn import AUTHENTICATED, SYSTEM_MASTERS, UNAUTHENTICATED

RBAC_GROUP = "rbac.authorization.k8s.io"
AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"
WORKSPACE_ACCESS_ROLE = "system:kcp:workspace:access"
ACCESS_VERB = "access"

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_READ_WRITE = [*_READ, *_WRITE]
_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}

_DISCOVERY_URLS = [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
    "/readyz", "/version", "/version/",
]
_PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _rule(verbs: list[str], groups: list[str], resources: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _url_rule(verbs: list[str], urls: list[str]) -> dict[str, Any]:
    return {"nonResourceURLs": urls, "verbs": verbs}


_VIEW_RULES = [
    _rule(_READ, [""], ["configmaps", "serviceaccounts"]),
    _rule(_READ, [""], ["events", "limitranges", "namespaces/status", "resourcequotas",
                        "resourcequotas/status"]),
    _rule(_READ, [""], ["namespaces"]),
    _rule(_READ, ["events.k8s.io"], ["events"]),
    _rule(_READ, ["coordination.k8s.io"], ["leases"]),
]
_EDIT_RULES = [
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(_READ_WRITE, [""], ["configmaps", "secrets", "serviceaccounts"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(_READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]
_ADMIN_RULES = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(_READ_WRITE, [RBAC_GROUP], ["rolebindings", "roles"]),
]


def _cluster_role(name: str, rules: list[dict[str, Any]], *,
                  labels: dict[str, str] | None = None,
                  aggregate_from: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**_BOOTSTRAP_LABELS, **(labels or {})},
                            "annotations": dict(_AUTOUPDATE)}
    role: dict[str, Any] = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
                            "metadata": meta, "rules": rules}
    if aggregate_from is not None:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]}
    return role


def _cluster_role_binding(name: str, role: str, groups: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(_BOOTSTRAP_LABELS),
                     "annotations": dict(_AUTOUPDATE)},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


def cluster_roles() -> list[dict[str, Any]]:
    """The built-in ClusterRoles, as the JSON objects a stored copy would be (fresh copies).

    ``admin``, ``edit`` and ``view`` are aggregated as upstream: ``view`` carries the
    aggregate-to-edit label and ``edit`` the aggregate-to-admin one, so ``admin`` holds
    edit's and view's rules too, and a stored ClusterRole with one of those labels extends
    them in its cluster."""
    return [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _url_rule(["*"], ["*"])]),
        _cluster_role("admin", _ADMIN_RULES, aggregate_from=AGGREGATE_TO_ADMIN),
        _cluster_role("edit", _EDIT_RULES, aggregate_from=AGGREGATE_TO_EDIT,
                      labels={AGGREGATE_TO_ADMIN: "true"}),
        _cluster_role("view", _VIEW_RULES, aggregate_from=AGGREGATE_TO_VIEW,
                      labels={AGGREGATE_TO_EDIT: "true"}),
        _cluster_role(WORKSPACE_ACCESS_ROLE, [_url_rule([ACCESS_VERB], ["/"])]),
        _cluster_role("system:discovery", [_url_rule(["get"], _DISCOVERY_URLS)]),
        _cluster_role("system:public-info-viewer", [_url_rule(["get"], _PUBLIC_INFO_URLS)]),
        _cluster_role("system:basic-user", [
            _rule(["create"], ["authorization.k8s.io"],
                  ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
    ]


def cluster_role_bindings() -> list[dict[str, Any]]:
    """The built-in ClusterRoleBindings (fresh copies).

    ``cluster-admin`` to ``system:masters`` is upstream's; it grants nothing new (masters
    bypass RBAC) but makes SelfSubjectRulesReview report their rights as upstream does."""
    return [
        _cluster_role_binding("cluster-admin", "cluster-admin", [SYSTEM_MASTERS]),
        _cluster_role_binding("system:discovery", "system:discovery", [AUTHENTICATED]),
        _cluster_role_binding("system:basic-user", "system:basic-user", [AUTHENTICATED]),
        _cluster_role_binding("system:public-info-viewer", "system:public-info-viewer",
                              [AUTHENTICATED, UNAUTHENTICATED]),
    ]
