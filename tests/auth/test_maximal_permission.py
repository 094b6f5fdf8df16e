"""APIExport maximal permission policies over a real store: which bound resources an export's
policy governs, and the provider-side RBAC check with ``apis.kcp.io:binding:`` subjects."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from kplane.auth.authn import UserInfo
from kplane.auth.authorizer import Attributes, Authorizer
from kplane.auth.maximal_permission import (
    BINDING_SUBJECT_PREFIX,
    MaximalPermissionPolicies,
    binding_user,
    export_has_policy,
)
from kplane.auth.serviceaccounts import SA_CLUSTER_EXTRA
from kplane.registry import builtin
from kplane.registry.bound_types import ExportRef
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.store import Store, Target
from tests.auth.test_authorizer import binding, put, role, user
from tests.registry.test_store import create_namespace, running_store

PROVIDER, OPEN_PROVIDER, CONSUMER, OTHER = "prov", "openprov", "cons", "elsewhere"
GROUP = "example.io"
ERIN = UserInfo(name="erin", groups=("team-x", "system:authenticated"))
WIDGETS_ALL = [{"apiGroups": [GROUP], "resources": ["widgets"], "verbs": ["*"]}]
OPTIONS = WriteOptions(field_manager="t")


@dataclass
class Env:
    store: Store
    authorizer: Authorizer
    policies: MaximalPermissionPolicies


@pytest_asyncio.fixture
async def env(tmp_path: pathlib.Path) -> AsyncIterator[Env]:
    async with running_store(tmp_path) as store:
        for cluster in (PROVIDER, CONSUMER):
            await create_namespace(store, "default", cluster)
        authorizer = Authorizer(store.cacher)
        await authorizer.start()
        policies = MaximalPermissionPolicies(authorizer)
        await policies.start(store.cacher)
        try:
            yield Env(store, authorizer, policies)
        finally:
            await policies.stop()
            await authorizer.stop()


async def caught_up(env: Env, written: dict[str, Any] | None = None) -> None:
    """Wait until the policies reflect ``written`` (or, after a delete, the whole cache)."""
    revision = (int(written["metadata"]["resourceVersion"]) if written is not None
                else env.store.cacher.revision)
    async with asyncio.timeout(5):
        while env.policies.revision < revision:
            await asyncio.sleep(0.01)


def export(name: str, *, policy: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"resources": [{"group": GROUP, "name": name,
                                           "schema": f"v1.{name}.{GROUP}",
                                           "storage": {"crd": {}}}]}
    if policy:
        spec["maximalPermissionPolicy"] = {"local": {}}
    return {"apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport",
            "metadata": {"name": name}, "spec": spec}


async def create_export(env: Env, cluster: str, name: str, *, policy: bool) -> None:
    created = await env.store.create(Target(builtin.API_EXPORTS, cluster, "", name),
                                     export(name, policy=policy), OPTIONS)
    await caught_up(env, created)


async def bind(env: Env, cluster: str, export_cluster: str, name: str) -> None:
    """An APIBinding as the binding controller leaves it: Bound, listing the resource."""
    target = Target(builtin.API_BINDINGS, cluster, "", name)
    await env.store.create(target, {
        "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding", "metadata": {"name": name},
        "spec": {"reference": {"export": {"path": export_cluster, "name": name}}}}, OPTIONS)

    def bound(current: dict[str, Any]) -> dict[str, Any]:
        current["status"] = {
            "phase": "Bound", "apiExportClusterName": export_cluster,
            "boundResources": [{"group": GROUP, "resource": name,
                                "schema": {"name": f"v1.{name}.{GROUP}", "UID": "u",
                                           "identityHash": "h"},
                                "storageVersions": ["v1"]}]}
        return current

    await caught_up(env, await env.store.update_with(target, bound, OPTIONS,
                                                     subresource="status"))


def allowed(env: Env, who: UserInfo, verb: str, *, resource: str = "widgets",
            namespace: str = "default", subresource: str = "", name: str = "") -> bool:
    return env.policies.authorize(Attributes(
        user=who, verb=verb, cluster=CONSUMER, namespace=namespace, api_group=GROUP,
        api_version="v1", resource=resource, subresource=subresource, name=name)).allowed


async def grant(env: Env, name: str, subjects: list[dict[str, Any]],
                rules: list[dict[str, Any]] = WIDGETS_ALL) -> None:
    await put(env.store, env.authorizer, builtin.CLUSTERROLES, PROVIDER, role(name, rules))
    await put(env.store, env.authorizer, builtin.CLUSTERROLEBINDINGS, PROVIDER,
              binding(name, "ClusterRole", name, subjects))


def test_the_user_and_every_group_are_prefixed() -> None:
    prefixed = binding_user(UserInfo(name="erin", groups=("team-x", "system:authenticated"),
                                     uid="42"))
    assert prefixed == UserInfo(
        name="apis.kcp.io:binding:erin",
        groups=("apis.kcp.io:binding:team-x", "apis.kcp.io:binding:system:authenticated"),
        uid="42")
    assert BINDING_SUBJECT_PREFIX == "apis.kcp.io:binding:"


def test_a_service_account_is_named_with_its_workspace() -> None:
    robot = UserInfo(name="system:serviceaccount:default:robot",
                     groups=("system:serviceaccounts", "system:authenticated"),
                     extra={SA_CLUSTER_EXTRA: ("cons",)})
    prefixed = binding_user(robot)
    assert prefixed.name == "apis.kcp.io:binding:system:kcp:serviceaccount:cons:default:robot"
    assert "apis.kcp.io:binding:system:serviceaccounts" in prefixed.groups
    # Without its workspace (impersonated), a ServiceAccount is only someone authenticated.
    stray = binding_user(UserInfo(name="system:serviceaccount:default:robot",
                                  groups=("system:authenticated",)))
    assert stray == UserInfo(name="apis.kcp.io:binding:system:anonymous",
                             groups=("apis.kcp.io:binding:system:authenticated",))


def test_only_a_local_policy_counts() -> None:
    assert export_has_policy({"spec": {"maximalPermissionPolicy": {"local": {}}}})
    assert not export_has_policy({"spec": {"maximalPermissionPolicy": {}}})
    assert not export_has_policy({"spec": {"maximalPermissionPolicy": {"local": None}}})
    assert not export_has_policy({"spec": {}})
    assert not export_has_policy({})


async def test_only_resources_bound_from_a_policy_export_are_governed(env: Env) -> None:
    await create_export(env, PROVIDER, "widgets", policy=True)
    await create_export(env, OPEN_PROVIDER, "gadgets", policy=False)
    await bind(env, CONSUMER, PROVIDER, "widgets")
    await bind(env, CONSUMER, OPEN_PROVIDER, "gadgets")
    assert env.policies.governing(CONSUMER, GROUP, "widgets") == ExportRef(PROVIDER, "widgets")
    assert env.policies.governing(CONSUMER, GROUP, "gadgets") is None
    assert env.policies.governing(OTHER, GROUP, "widgets") is None
    assert env.policies.governing(PROVIDER, GROUP, "widgets") is None
    assert not allowed(env, ERIN, "create")
    assert allowed(env, ERIN, "create", resource="gadgets")
    assert allowed(env, ERIN, "create", resource="sprockets")


async def test_the_provider_grants_the_prefixed_user(env: Env) -> None:
    await create_export(env, PROVIDER, "widgets", policy=True)
    await bind(env, CONSUMER, PROVIDER, "widgets")
    # Grants to the plain name are the provider's own business, not a ceiling.
    await grant(env, "plain", user("erin"))
    assert not allowed(env, ERIN, "get")
    await grant(env, "ceiling", user("apis.kcp.io:binding:erin"),
                [{"apiGroups": [GROUP], "resources": ["widgets"], "verbs": ["get", "list"]}])
    decision = env.policies.authorize(Attributes(
        user=ERIN, verb="get", cluster=CONSUMER, namespace="default", api_group=GROUP,
        resource="widgets", name="w"))
    assert decision.allowed
    assert decision.reason == (
        'API export "prov"|"widgets" policy: RBAC: allowed by ClusterRoleBinding "ceiling" '
        'of ClusterRole "ceiling" to User "apis.kcp.io:binding:erin"')
    assert allowed(env, ERIN, "list", namespace="")
    assert not allowed(env, ERIN, "delete", name="w")
    someone_else = UserInfo(name="frank", groups=("system:authenticated",))
    assert not allowed(env, someone_else, "get")


async def test_a_group_grant_and_subresources(env: Env) -> None:
    await create_export(env, PROVIDER, "widgets", policy=True)
    await bind(env, CONSUMER, PROVIDER, "widgets")
    await grant(env, "team", [{"kind": "Group", "name": "apis.kcp.io:binding:team-x"}])
    assert allowed(env, ERIN, "create")
    # "widgets" does not cover "widgets/status", as in any RBAC rule.
    assert not allowed(env, ERIN, "update", subresource="status", name="w")


async def test_a_provider_role_binding_grants_in_that_namespace_only(env: Env) -> None:
    await create_export(env, PROVIDER, "widgets", policy=True)
    await bind(env, CONSUMER, PROVIDER, "widgets")
    await put(env.store, env.authorizer, builtin.CLUSTERROLES, PROVIDER,
              role("widgets", WIDGETS_ALL))
    await put(env.store, env.authorizer, builtin.ROLEBINDINGS, PROVIDER,
              binding("erin", "ClusterRole", "widgets", user("apis.kcp.io:binding:erin")),
              "default")
    assert allowed(env, ERIN, "create", namespace="default")
    assert not allowed(env, ERIN, "create", namespace="team")


async def test_dropping_the_policy_the_export_or_the_binding_ends_it(env: Env) -> None:
    await create_export(env, PROVIDER, "widgets", policy=True)
    await bind(env, CONSUMER, PROVIDER, "widgets")
    target = Target(builtin.API_EXPORTS, PROVIDER, "", "widgets")

    def without_policy(current: dict[str, Any]) -> dict[str, Any]:
        current["spec"].pop("maximalPermissionPolicy")
        return current

    await caught_up(env, await env.store.update_with(target, without_policy, OPTIONS))
    assert env.policies.governing(CONSUMER, GROUP, "widgets") is None
    assert allowed(env, ERIN, "create")

    def with_policy(current: dict[str, Any]) -> dict[str, Any]:
        current["spec"]["maximalPermissionPolicy"] = {"local": {}}
        return current

    await caught_up(env, await env.store.update_with(target, with_policy, OPTIONS))
    assert not allowed(env, ERIN, "create")

    await env.store.delete(target, DeleteOptions())
    await caught_up(env)
    # As kcp: an export that is gone imposes nothing.
    assert allowed(env, ERIN, "create")

    await create_export(env, PROVIDER, "widgets", policy=True)
    assert not allowed(env, ERIN, "create")
    await env.store.delete(Target(builtin.API_BINDINGS, CONSUMER, "", "widgets"),
                           DeleteOptions())
    await caught_up(env)
    assert env.policies.governing(CONSUMER, GROUP, "widgets") is None


async def test_policies_present_at_start_are_loaded(env: Env) -> None:
    await create_export(env, PROVIDER, "widgets", policy=True)
    await bind(env, CONSUMER, PROVIDER, "widgets")
    fresh = MaximalPermissionPolicies(env.authorizer)
    await fresh.start(env.store.cacher)
    try:
        assert fresh.governing(CONSUMER, GROUP, "widgets") == ExportRef(PROVIDER, "widgets")
    finally:
        await fresh.stop()
