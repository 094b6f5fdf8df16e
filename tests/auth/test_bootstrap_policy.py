"""The built-in policy every logical cluster has."""

from __future__ import annotations

from kplane.auth import bootstrap_policy
from kplane.auth.rbac import decode_binding, decode_role
from kplane.registry import builtin
from kplane.registry.catalog import Catalog


def roles() -> dict[str, dict[str, object]]:
    return {role["metadata"]["name"]: role for role in bootstrap_policy.cluster_roles()}


def test_expected_cluster_roles_and_bindings_exist() -> None:
    assert set(roles()) == {
        "cluster-admin", "admin", "edit", "view", "system:kcp:workspace:access",
        "system:discovery", "system:public-info-viewer", "system:basic-user"}
    bindings = {b["metadata"]["name"]: decode_binding(b)
                for b in bootstrap_policy.cluster_role_bindings()}
    assert {name: (b.role_name, [s.name for s in b.subjects]) for name, b in bindings.items()} == {
        "cluster-admin": ("cluster-admin", ["system:masters"]),
        "system:discovery": ("system:discovery", ["system:authenticated"]),
        "system:basic-user": ("system:basic-user", ["system:authenticated"]),
        "system:public-info-viewer": ("system:public-info-viewer",
                                      ["system:authenticated", "system:unauthenticated"]),
    }


def test_every_binding_refers_to_a_built_in_role() -> None:
    names = set(roles())
    for binding in bootstrap_policy.cluster_role_bindings():
        assert binding["roleRef"]["name"] in names


def test_objects_are_valid_stored_objects_and_fresh_copies() -> None:
    catalog = Catalog()
    strategy = catalog.strategy(builtin.CLUSTERROLES)
    for role in bootstrap_policy.cluster_roles():
        assert strategy.validate(role) == []
    first = bootstrap_policy.cluster_roles()
    first[0]["rules"].clear()
    assert bootstrap_policy.cluster_roles()[0]["rules"]


def test_aggregation_labels_chain_view_into_edit_into_admin() -> None:
    decoded = {name: decode_role(raw) for name, raw in roles().items()}
    assert decoded["edit"].aggregates(decoded["view"])
    assert decoded["admin"].aggregates(decoded["edit"])
    assert not decoded["view"].aggregates(decoded["edit"])


def test_view_never_reads_secrets_and_workspace_access_is_only_access_on_root() -> None:
    view = decode_role(roles()["view"])
    assert not any(rule.allows_resource(verb="get", api_group="", resource="secrets",
                                        subresource="", name="") for rule in view.rules)
    access = decode_role(roles()["system:kcp:workspace:access"])
    assert [(r.verbs, r.non_resource_urls) for r in access.rules] == [(("access",), ("/",))]
