"""Using a WorkspaceType needs verb ``use`` on it in its own workspace, under real RBAC; a
denial reads the same whether the type exists or not."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.auth.authn import AUTHENTICATED
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import OWNER_ANNOTATION
from kplane.registry.options import WriteOptions
from kplane.registry.store import Target
from kplane.tenancy.type_use import creator_of
from tests.tenancy.test_admission import (
    Tenancy,
    create_type,
    create_workspace,
    ready_child,
    refused,
    tenancy_stack,
)

OPTIONS = WriteOptions(field_manager="test")
RBAC = "rbac.authorization.k8s.io"


@pytest_asyncio.fixture
async def tenancy(tmp_path: pathlib.Path) -> AsyncIterator[Tenancy]:
    async with tenancy_stack(tmp_path, authorization=True) as stack:
        yield stack


def owner(user: str, *groups: str) -> dict[str, str]:
    """The annotation the HTTP layer records for a creator (system:masters gets none)."""
    return {OWNER_ANNOTATION: orjson.dumps({"username": user, "groups": list(groups)}).decode()}


async def as_user(tenancy: Tenancy, user: str, cluster: str, name: str,
                  type_ref: dict[str, str] | None = None, *groups: str) -> dict[str, Any]:
    return await create_workspace(tenancy.store, cluster, name, type_ref=type_ref,
                                  annotations=owner(user, *groups))


async def grant_use(tenancy: Tenancy, cluster: str, user: str,
                    names: list[str] | None = None) -> None:
    """A ClusterRole granting ``use`` on workspacetypes, bound to ``user`` in ``cluster``."""
    store = tenancy.store
    rule: dict[str, Any] = {"apiGroups": ["tenancy.kcp.io"], "resources": ["workspacetypes"],
                            "verbs": ["use"]}
    if names:
        rule["resourceNames"] = names
    role = f"{user}-uses-types"
    await store.create(Target(builtin.CLUSTERROLES, cluster, "", role),
                       {"metadata": {"name": role}, "rules": [rule]}, OPTIONS)
    created = await store.create(
        Target(builtin.CLUSTERROLEBINDINGS, cluster, "", role),
        {"metadata": {"name": role},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
         "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}]}, OPTIONS)
    assert tenancy.authorizer is not None
    await tenancy.authorizer.wait_for(int(created["metadata"]["resourceVersion"]))


@pytest_asyncio.fixture
async def prov(tenancy: Tenancy) -> str:
    """root:prov, holding a type ``private`` that alice has no rights on."""
    cluster = await ready_child(tenancy.store, "root", "root", "prov")
    await create_type(tenancy.store, cluster, "private", {})
    return cluster


async def test_a_type_in_another_workspace_needs_use(tenancy: Tenancy, prov: str) -> None:
    private = {"name": "private", "path": "root:prov"}
    error = await refused(as_user(tenancy, "alice", "root", "mine", private))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == (
        'workspaces.tenancy.kcp.io "mine" is forbidden: unable to use cluster workspace type '
        "root:prov:private: missing verb='use' permission on workspacetype")
    assert tenancy.store.get_cached(Target(builtin.WORKSPACES, "root", "", "mine")) is None
    # A grant in another workspace (root) does not count; one in root:prov does.
    await grant_use(tenancy, "root", "alice")
    assert (await refused(as_user(tenancy, "alice", "root", "mine", private))).code == 403
    await grant_use(tenancy, prov, "alice", ["private"])
    made = await as_user(tenancy, "alice", "root", "mine", private)
    assert made["spec"]["type"] == {"name": "private", "path": "root:prov"}
    # bob, without the grant, is still refused.
    assert (await refused(as_user(tenancy, "bob", "root", "his", private))).code == 403


@pytest.mark.parametrize("type_ref", [
    {"name": "missing", "path": "root:prov"},        # no such type
    {"name": "private", "path": "root:nowhere"},     # no such workspace
])
async def test_a_missing_type_looks_like_one_without_access(
        tenancy: Tenancy, prov: str, type_ref: dict[str, str]) -> None:
    existing = await refused(as_user(tenancy, "alice", "root", "w",
                                     {"name": "private", "path": "root:prov"}))
    missing = await refused(as_user(tenancy, "alice", "root", "w", type_ref))
    shown = f"{type_ref['path']}:{type_ref['name']}"
    assert (missing.code, missing.reason) == (existing.code, existing.reason)
    assert missing.message == existing.message.replace("root:prov:private", shown)
    assert "does not exist" not in missing.message


async def test_who_may_use_a_name_there_learns_it_does_not_exist(
        tenancy: Tenancy, prov: str) -> None:
    await grant_use(tenancy, prov, "carol")
    error = await refused(as_user(tenancy, "carol", "root", "w",
                                  {"name": "missing", "path": "root:prov"}))
    assert error.code == 403
    assert error.message == "workspace type root:prov:missing does not exist"


async def test_roots_builtin_types_are_usable_by_every_authenticated_user(
        tenancy: Tenancy) -> None:
    plain = await as_user(tenancy, "dave", "root", "plain", None, AUTHENTICATED)
    assert plain["spec"]["type"] == {"name": "universal", "path": "root"}
    org = await as_user(tenancy, "dave", "root", "org",
                        {"name": "organization", "path": "root"})
    assert org["spec"]["type"]["name"] == "organization"
    # The role names its types: a new type in root is not public.
    await create_type(tenancy.store, "root", "internal", {})
    error = await refused(as_user(tenancy, "dave", "root", "x",
                                  {"name": "internal", "path": "root"}))
    assert "unable to use cluster workspace type root:internal" in error.message


async def test_the_types_a_type_extends_need_use_too(tenancy: Tenancy, prov: str) -> None:
    await create_type(tenancy.store, "root", "derived",
                      {"extend": {"with": [{"name": "private", "path": "root:prov"}]}})
    await grant_use(tenancy, "root", "erin", ["derived"])
    error = await refused(as_user(tenancy, "erin", "root", "w",
                                  {"name": "derived", "path": "root"}))
    assert "unable to use cluster workspace type root:prov:private" in error.message
    await grant_use(tenancy, prov, "erin", ["private"])
    await as_user(tenancy, "erin", "root", "w", {"name": "derived", "path": "root"})


async def test_a_type_without_path_is_checked_where_it_is_found(
        tenancy: Tenancy, prov: str) -> None:
    # alice is admin of root:prov but has no grant in root.
    await grant_use(tenancy, prov, "alice")
    made = await as_user(tenancy, "alice", prov, "here", {"name": "private"})
    assert made["spec"]["type"] == {"name": "private", "path": "root:prov"}
    # Not found here, looked up in root: answered as for root:<name>.
    error = await refused(as_user(tenancy, "alice", prov, "there", {"name": "secret"}))
    assert "unable to use cluster workspace type root:secret" in error.message


async def test_masters_and_the_server_itself_are_not_checked(
        tenancy: Tenancy, prov: str) -> None:
    private = {"name": "private", "path": "root:prov"}
    await as_user(tenancy, "admin", "root", "by-master", private, "system:masters")
    # No owner annotation: a create by the server (or by system:masters over HTTP).
    await create_workspace(tenancy.store, "root", "by-server", type_ref=private)


@pytest.mark.parametrize("text", ["not json", '{"username": ""}', '["alice"]',
                                  '{"username": "alice", "groups": [1]}'])
def test_a_forged_owner_annotation_is_refused(text: str) -> None:
    with pytest.raises(StatusError) as info:
        creator_of({"metadata": {"annotations": {OWNER_ANNOTATION: text}}})
    assert (info.value.code, info.value.reason) == (403, "Forbidden")


def test_the_creator_is_an_authenticated_user() -> None:
    assert creator_of({"metadata": {}}) is None
    user = creator_of({"metadata": {"annotations": owner("alice", "dev")}})
    assert user is not None
    assert (user.name, user.groups) == ("alice", ("dev", AUTHENTICATED))
