"""Strategies of roles, cluster roles and their bindings."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.registry import builtin
from kplane.registry.kinds import strategy_for
from kplane.registry.kinds.rbac import BindingStrategy, RoleStrategy
from kplane.registry.options import WriteOptions
from kplane.registry.store import Target
from tests.registry.test_store import running_store

RBAC = "rbac.authorization.k8s.io"
ROLE_REF = {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}


def causes(found: list[Any]) -> list[tuple[str, str, str]]:
    return [(c.reason, c.field, c.message) for c in found]


def test_rbac_kinds_get_rbac_strategies() -> None:
    assert type(strategy_for(builtin.ROLES)) is RoleStrategy
    assert type(strategy_for(builtin.CLUSTERROLES)) is RoleStrategy
    assert type(strategy_for(builtin.ROLEBINDINGS)) is BindingStrategy
    assert type(strategy_for(builtin.CLUSTERROLEBINDINGS)) is BindingStrategy


@pytest.mark.parametrize("rt", [builtin.ROLES, builtin.CLUSTERROLEBINDINGS])
def test_rbac_names_are_path_segments(rt: Any) -> None:
    validate = strategy_for(rt).name_validator
    assert validate("system:controller:job-controller") == []
    assert validate("UPPER_case") == []
    assert validate("a/b") == ["may not contain '/'"]
    assert validate("..") == ["may not be '..'"]


def test_rules_need_verbs_and_cannot_mix_urls_with_resources() -> None:
    strategy = RoleStrategy(builtin.CLUSTERROLES)
    ok = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                    {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}
    assert strategy.validate(ok) == []
    bad = {"rules": [{"apiGroups": [""], "resources": ["pods"]},
                     {"nonResourceURLs": ["/healthz"], "resources": ["pods"], "verbs": ["get"]}]}
    required, mixed = strategy.validate(bad)
    assert (required.reason, required.field, required.message) == (
        "FieldValueRequired", "rules[0].verbs", "verbs must contain at least one value")
    assert (mixed.reason, mixed.field) == ("FieldValueInvalid", "rules[1].nonResourceURLs")
    assert mixed.message.endswith(
        ": rules cannot apply to both regular resources and non-resource URLs")


def test_namespaced_roles_cannot_name_non_resource_urls() -> None:
    found = RoleStrategy(builtin.ROLES).validate(
        {"rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]})
    [cause] = found
    assert (cause.reason, cause.field) == ("FieldValueInvalid", "rules[0].nonResourceURLs")
    assert cause.message.endswith(": namespaced rules cannot apply to non-resource URLs")


def test_binding_role_ref_is_checked() -> None:
    namespaced = BindingStrategy(builtin.ROLEBINDINGS)
    cluster = BindingStrategy(builtin.CLUSTERROLEBINDINGS)
    assert namespaced.validate({"roleRef": {**ROLE_REF, "kind": "Role"}}) == []
    assert cluster.validate({"roleRef": ROLE_REF}) == []
    assert causes(namespaced.validate({})) == [("FieldValueRequired", "roleRef",
                                                "Required value")]
    assert causes(cluster.validate({"roleRef": {"apiGroup": "x", "kind": "Role"}})) == [
        ("FieldValueNotSupported", "roleRef.apiGroup",
         'Unsupported value: "x": supported values: "rbac.authorization.k8s.io"'),
        ("FieldValueNotSupported", "roleRef.kind",
         'Unsupported value: "Role": supported values: "ClusterRole"'),
        ("FieldValueRequired", "roleRef.name", "Required value"),
    ]


def test_binding_subjects_are_checked() -> None:
    cluster = BindingStrategy(builtin.CLUSTERROLEBINDINGS)
    subjects = [{"kind": "User", "name": "alice"},
                {"kind": "Robot", "name": "r2"},
                {"kind": "Group"},
                {"kind": "ServiceAccount", "name": "default"}]
    assert causes(cluster.validate({"roleRef": ROLE_REF, "subjects": subjects})) == [
        ("FieldValueNotSupported", "subjects[1].kind",
         'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"'),
        ("FieldValueRequired", "subjects[2].name", "Required value"),
        ("FieldValueRequired", "subjects[3].namespace", "Required value"),
    ]
    namespaced = BindingStrategy(builtin.ROLEBINDINGS)
    sa_only = {"roleRef": ROLE_REF, "subjects": [{"kind": "ServiceAccount", "name": "default"}]}
    assert namespaced.validate(sa_only) == []


def test_binding_role_ref_cannot_change() -> None:
    strategy = BindingStrategy(builtin.ROLEBINDINGS)
    old = {"roleRef": ROLE_REF}
    assert strategy.validate_update({"roleRef": ROLE_REF, "subjects": []}, old) == []
    other = {**ROLE_REF, "name": "edit"}
    [cause] = strategy.validate_update({"roleRef": other}, old)
    assert (cause.reason, cause.field) == ("FieldValueInvalid", "roleRef")
    assert cause.message.endswith(": cannot change roleRef")


async def test_rbac_objects_through_the_store(tmp_path: pathlib.Path) -> None:
    async with running_store(tmp_path) as store:
        role = Target(builtin.CLUSTERROLES, "root", "", "system:reader")
        created = await store.create(role, {"metadata": {"name": "system:reader"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
            WriteOptions())
        assert created["apiVersion"] == f"{RBAC}/v1"
        binding = Target(builtin.ROLEBINDINGS, "root", "default", "read")
        await store.create(binding, {"metadata": {"name": "read"}, "roleRef": ROLE_REF},
                           WriteOptions())
        with pytest.raises(StatusError) as info:
            await store.update(binding, {"metadata": {"name": "read"},
                                         "roleRef": {**ROLE_REF, "name": "edit"}},
                               WriteOptions())
        assert info.value.code == 422
        assert info.value.message.startswith(
            f'RoleBinding.{RBAC} "read" is invalid: roleRef: Invalid value: ')
        assert info.value.message.endswith("cannot change roleRef")
        with pytest.raises(StatusError) as info:
            await store.get(Target(builtin.ROLES, "root", "default", "nope"))
        assert info.value.message == f'roles.{RBAC} "nope" not found'
