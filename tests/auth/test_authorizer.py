"""The Authorizer over a real store: decisions, isolation, defaults, overrides, gates."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from kplane.auth.authn import ANONYMOUS, UserInfo
from kplane.auth.authorizer import Attributes, Authorizer, Decision
from kplane.auth.serviceaccounts import SA_CLUSTER_EXTRA
from kplane.registry import builtin
from kplane.registry.options import DeleteOptions, WriteOptions
from kplane.registry.resources import ResourceType
from kplane.registry.store import Store, Target
from tests.registry.test_store import create_namespace, running_store

A, B = "root", "clusterb"
ALICE = UserInfo(name="alice", groups=("system:authenticated",))
DEVS = UserInfo(name="bob", groups=("devs", "system:authenticated"))
MASTER = UserInfo(name="admin", groups=("system:masters",))
RBAC = "rbac.authorization.k8s.io"


@pytest_asyncio.fixture
async def env(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Store, Authorizer]]:
    async with running_store(tmp_path) as store:
        await create_namespace(store, "default", B)
        authorizer = Authorizer(store.cacher)
        await authorizer.start()
        try:
            yield store, authorizer
        finally:
            await authorizer.stop()


async def put(store: Store, authorizer: Authorizer, rt: ResourceType, cluster: str,
              body: dict[str, Any], namespace: str = "") -> None:
    name = body["metadata"]["name"]
    created = await store.create(Target(rt, cluster, namespace, name), body,
                                 WriteOptions(field_manager="t"))
    await authorizer.wait_for(int(created["metadata"]["resourceVersion"]))


async def delete(store: Store, authorizer: Authorizer, rt: ResourceType, cluster: str,
                 name: str, namespace: str = "") -> None:
    await store.delete(Target(rt, cluster, namespace, name), DeleteOptions())
    await authorizer.wait_for(store.cacher.revision)


def role(name: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **extra.pop("meta", {})}, "rules": rules, **extra}


def binding(name: str, kind: str, role_name: str, subjects: list[dict[str, Any]]
            ) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role_name},
            "subjects": subjects}


def user(name: str) -> list[dict[str, Any]]:
    return [{"kind": "User", "apiGroup": RBAC, "name": name}]


def can(authorizer: Authorizer, who: UserInfo, verb: str, resource: str, *,
        cluster: str = A, namespace: str = "default", name: str = "", group: str = "",
        subresource: str = "") -> bool:
    return authorizer.authorize(Attributes(
        user=who, verb=verb, cluster=cluster, namespace=namespace, api_group=group,
        resource=resource, subresource=subresource, name=name)).allowed


def can_get_path(authorizer: Authorizer, who: UserInfo, path: str, cluster: str = A) -> bool:
    return authorizer.authorize(Attributes(user=who, verb="get", cluster=cluster, path=path,
                                           resource_request=False)).allowed


CM_READER = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]


async def test_masters_may_do_anything_anywhere(env: tuple[Store, Authorizer]) -> None:
    _, authorizer = env
    assert can(authorizer, MASTER, "delete", "anything", cluster="nowhere", group="x")
    assert can_get_path(authorizer, MASTER, "/whatever")
    assert authorizer.can_enter(MASTER, "nowhere").allowed


async def test_role_binding_grants_in_its_namespace_only(env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await create_namespace(store, "other")
    assert not can(authorizer, ALICE, "get", "configmaps")
    await put(store, authorizer, builtin.ROLES, A, role("r", CM_READER), "default")
    await put(store, authorizer, builtin.ROLEBINDINGS, A,
              binding("rb", "Role", "r", user("alice")), "default")
    decision = authorizer.authorize(Attributes(user=ALICE, verb="get", cluster=A,
                                               namespace="default", resource="configmaps"))
    assert decision == Decision(
        True, 'RBAC: allowed by RoleBinding "rb/default" of Role "r" to User "alice"')
    assert can(authorizer, ALICE, "list", "configmaps")
    assert not can(authorizer, ALICE, "delete", "configmaps")
    assert not can(authorizer, ALICE, "get", "configmaps", namespace="other")
    assert not can(authorizer, ALICE, "get", "configmaps", namespace="")
    assert not can(authorizer, DEVS, "get", "configmaps")


async def test_a_binding_in_one_cluster_gives_nothing_in_another(
        env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await put(store, authorizer, builtin.CLUSTERROLEBINDINGS, A,
              binding("admins", "ClusterRole", "cluster-admin", user("alice")))
    assert can(authorizer, ALICE, "delete", "secrets")
    assert authorizer.can_enter(ALICE, A).allowed
    assert not can(authorizer, ALICE, "get", "secrets", cluster=B)
    assert not authorizer.can_enter(ALICE, B).allowed
    assert authorizer.index.has_cluster(A)
    assert not authorizer.index.has_cluster(B)


async def test_deleting_the_binding_revokes(env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await put(store, authorizer, builtin.CLUSTERROLEBINDINGS, A,
              binding("v", "ClusterRole", "view", [{"kind": "Group", "name": "devs"}]))
    assert can(authorizer, DEVS, "watch", "configmaps", namespace="x")
    await delete(store, authorizer, builtin.CLUSTERROLEBINDINGS, A, "v")
    assert not can(authorizer, DEVS, "watch", "configmaps", namespace="x")
    assert not authorizer.index.has_cluster(A)


async def test_role_binding_can_use_a_cluster_role_and_a_service_account(
        env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await put(store, authorizer, builtin.ROLEBINDINGS, A,
              binding("edit", "ClusterRole", "edit",
                      [{"kind": "ServiceAccount", "name": "bot"}]), "default")
    bot = UserInfo(name="system:serviceaccount:default:bot",
                   groups=("system:serviceaccounts", "system:authenticated"))
    assert can(authorizer, bot, "create", "secrets")
    assert can(authorizer, bot, "get", "namespaces", namespace="default", name="default")
    other = UserInfo(name="system:serviceaccount:kube-system:bot")
    assert not can(authorizer, other, "create", "secrets")


async def test_resource_names_and_subresources(env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"],
              "resourceNames": ["one"]},
             {"apiGroups": [""], "resources": ["resourcequotas/status"], "verbs": ["update"]}]
    await put(store, authorizer, builtin.CLUSTERROLES, A, role("named", rules))
    await put(store, authorizer, builtin.CLUSTERROLEBINDINGS, A,
              binding("named", "ClusterRole", "named", user("alice")))
    assert can(authorizer, ALICE, "get", "configmaps", name="one")
    assert not can(authorizer, ALICE, "get", "configmaps", name="two")
    assert not can(authorizer, ALICE, "list", "configmaps")
    assert can(authorizer, ALICE, "update", "resourcequotas", subresource="status", name="q")
    assert not can(authorizer, ALICE, "update", "resourcequotas", name="q")


async def test_aggregated_cluster_role_follows_labelled_roles(
        env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    aggregated = role("agg", [], aggregationRule={
        "clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]})
    await put(store, authorizer, builtin.CLUSTERROLES, A, aggregated)
    await put(store, authorizer, builtin.CLUSTERROLEBINDINGS, A,
              binding("agg", "ClusterRole", "agg", user("alice")))
    assert not can(authorizer, ALICE, "get", "configmaps")
    await put(store, authorizer, builtin.CLUSTERROLES, A,
              role("part", CM_READER, meta={"labels": {"team": "a"}}))
    assert can(authorizer, ALICE, "get", "configmaps")
    await put(store, authorizer, builtin.CLUSTERROLES, B,
              role("part2", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
                   meta={"labels": {"team": "a"}}))
    assert not can(authorizer, ALICE, "get", "secrets")
    await delete(store, authorizer, builtin.CLUSTERROLES, A, "part")
    assert not can(authorizer, ALICE, "get", "configmaps")


async def test_built_in_admin_aggregates_edit_view_and_custom_roles(
        env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await put(store, authorizer, builtin.ROLEBINDINGS, A,
              binding("adm", "ClusterRole", "admin", user("alice")), "default")
    assert can(authorizer, ALICE, "create", "rolebindings", group=RBAC)
    assert can(authorizer, ALICE, "delete", "secrets")
    assert can(authorizer, ALICE, "list", "limitranges")
    assert not can(authorizer, ALICE, "list", "widgets", group="example.com")
    await put(store, authorizer, builtin.CLUSTERROLES, A, role(
        "widgets-view", [{"apiGroups": ["example.com"], "resources": ["widgets"],
                          "verbs": ["list"]}],
        meta={"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}))
    assert can(authorizer, ALICE, "list", "widgets", group="example.com")


async def test_default_policy_for_authenticated_and_anonymous(
        env: tuple[Store, Authorizer]) -> None:
    _, authorizer = env
    for cluster in (A, B, "never-seen"):
        assert can_get_path(authorizer, ALICE, "/apis/apps/v1", cluster)
        assert can_get_path(authorizer, ALICE, "/version", cluster)
        assert can(authorizer, ALICE, "create", "selfsubjectaccessreviews",
                   group="authorization.k8s.io", namespace="", cluster=cluster)
        assert not can(authorizer, ALICE, "get", "configmaps", cluster=cluster)
        assert can_get_path(authorizer, ANONYMOUS, "/healthz", cluster)
        assert not can_get_path(authorizer, ANONYMOUS, "/api", cluster)
    assert authorizer.index.cluster_count == 0


async def test_stored_object_overrides_the_built_in_one_in_its_cluster_only(
        env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await put(store, authorizer, builtin.CLUSTERROLES, A,
              role("system:discovery", [{"nonResourceURLs": ["/version"], "verbs": ["get"]}]))
    assert can_get_path(authorizer, ALICE, "/version")
    assert not can_get_path(authorizer, ALICE, "/api")
    assert can_get_path(authorizer, ALICE, "/api", B)
    await put(store, authorizer, builtin.CLUSTERROLEBINDINGS, A,
              binding("system:basic-user", "ClusterRole", "system:basic-user", user("x")))
    assert not can(authorizer, ALICE, "create", "selfsubjectrulesreviews",
                   group="authorization.k8s.io", namespace="")
    assert can(authorizer, ALICE, "create", "selfsubjectrulesreviews",
               group="authorization.k8s.io", namespace="", cluster=B)


async def test_can_enter(env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    sa = UserInfo(name="system:serviceaccount:default:bot", extra={SA_CLUSTER_EXTRA: (B,)})
    assert authorizer.can_enter(sa, B).allowed
    assert not authorizer.can_enter(sa, A).allowed
    denied = authorizer.can_enter(ALICE, A)
    assert denied == Decision(False, "workspace access not permitted")
    await put(store, authorizer, builtin.CLUSTERROLEBINDINGS, A,
              binding("enter", "ClusterRole", "system:kcp:workspace:access", user("alice")))
    assert authorizer.can_enter(ALICE, A).allowed
    assert not authorizer.can_enter(ALICE, B).allowed
    assert not can(authorizer, ALICE, "get", "configmaps")


async def test_rules_for(env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    await put(store, authorizer, builtin.ROLES, A, role("r", CM_READER), "default")
    await put(store, authorizer, builtin.ROLEBINDINGS, A,
              binding("rb", "Role", "r", user("alice")), "default")
    review = authorizer.rules_for(ALICE, A, "default")
    assert {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]} \
        in review.resource_rules
    assert {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"]} in review.resource_rules
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version",
                                                  "/version/"]} in review.non_resource_rules
    assert (review.incomplete, review.evaluation_error) == (False, "")
    elsewhere = authorizer.rules_for(ALICE, A, "kube-system")
    assert all("configmaps" not in r.get("resources", []) for r in elsewhere.resource_rules)
    await put(store, authorizer, builtin.ROLEBINDINGS, A,
              binding("dangling", "Role", "missing", user("alice")), "default")
    broken = authorizer.rules_for(ALICE, A, "default")
    assert broken.incomplete
    assert broken.evaluation_error == 'role.rbac.authorization.k8s.io "missing" not found'
    master = authorizer.rules_for(MASTER, B, "")
    assert {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]} in master.resource_rules


async def test_revision_tracks_the_cache(env: tuple[Store, Authorizer]) -> None:
    store, authorizer = env
    assert authorizer.revision == store.cacher.revision
    await create_namespace(store, "more")
    await authorizer.wait_for(store.cacher.revision)
    assert authorizer.revision == store.cacher.revision
