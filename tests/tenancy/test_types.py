"""WorkspaceTypes: the built-ins, lookups, the nesting rules and the initializers."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.tenancy.types import BUILTIN_TYPES, WorkspaceType, parse_reference
from tests.tenancy.test_admission import Tenancy, create_type, ready_child, tenancy_stack


@pytest_asyncio.fixture
async def tenancy(tmp_path: pathlib.Path) -> AsyncIterator[Tenancy]:
    async with tenancy_stack(tmp_path) as stack:
        yield stack


def kind(name: str, spec: dict[str, Any], path: str = "root") -> WorkspaceType:
    return WorkspaceType(name, path, spec)


def builtin(tenancy: Tenancy, name: str) -> WorkspaceType:
    found = tenancy.types.get(name, "root")
    assert found is not None
    return found


def allowed(tenancy: Tenancy, parent: WorkspaceType, child: WorkspaceType) -> bool:
    try:
        tenancy.types.check_allowed(parent, child)
    except StatusError as error:
        assert (error.code, error.reason) == (403, "Forbidden")
        return False
    return True


def test_parse_reference() -> None:
    assert parse_reference("root:team") == ("root", "team")
    assert parse_reference("root:acme:gated") == ("root:acme", "gated")


async def test_the_builtin_types_are_bootstrapped_in_root(tenancy: Tenancy) -> None:
    names = [body["metadata"]["name"] for body in BUILTIN_TYPES]
    assert names == ["root", "organization", "team", "universal"]
    for name in names:
        found = builtin(tenancy, name)
        assert (found.name, found.path, found.reference) == (name, "root", f"root:{name}")
        assert found.as_reference() == {"name": name, "path": "root"}
    assert tenancy.types.type_of_cluster("root") == builtin(tenancy, "root")


@pytest.mark.parametrize(("parent", "child", "expected"), [
    ("root", "organization", True),
    ("root", "universal", True),
    ("root", "team", False),
    ("root", "root", False),
    ("organization", "team", True),
    ("organization", "universal", True),
    ("organization", "organization", False),
    ("team", "team", True),
    ("team", "universal", True),
    ("team", "organization", False),
    ("universal", "universal", True),
    ("universal", "team", False),
    ("universal", "organization", False),
])
async def test_builtin_nesting_rules(tenancy: Tenancy, parent: str, child: str,
                                     expected: bool) -> None:
    assert allowed(tenancy, builtin(tenancy, parent), builtin(tenancy, child)) is expected


async def test_every_builtin_type_defaults_children_to_universal(tenancy: Tenancy) -> None:
    for name in ("root", "organization", "team", "universal"):
        assert tenancy.types.default_child(builtin(tenancy, name)) == builtin(tenancy,
                                                                               "universal")


async def test_both_sides_must_agree(tenancy: Tenancy) -> None:
    parent = kind("p", {"limitAllowedChildren": {"types": [{"name": "c"}]}}, "root:x")
    child = kind("c", {"limitAllowedParents": {"types": [{"name": "q", "path": "root:x"}]}},
                 "root:x")
    # The parent names the child (path defaults to the parent's), the child refuses p.
    assert not allowed(tenancy, parent, child)
    friendly = kind("c", {"limitAllowedParents": {"types": [{"name": "p"}]}}, "root:x")
    assert allowed(tenancy, parent, friendly)
    # Same name, other path: not the same type.
    stranger = kind("c", {}, "root:y")
    assert not allowed(tenancy, parent, stranger)
    assert allowed(tenancy, kind("open", {}), stranger)
    assert not allowed(tenancy, kind("closed", {"limitAllowedChildren": {"none": True}}),
                       stranger)


async def test_find_prefers_the_current_workspace_then_root(tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    assert tenancy.types.find({"name": "team"}, current_path="root:acme") == builtin(
        tenancy, "team")
    await create_type(tenancy.store, org, "team", {"initializer": True})
    local = tenancy.types.find({"name": "team"}, current_path="root:acme")
    assert local is not None and local.reference == "root:acme:team"
    # A type referenced through the cluster name is reported by its canonical path.
    by_cluster = tenancy.types.get("team", org)
    assert by_cluster is not None and by_cluster.path == "root:acme"
    assert tenancy.types.find({"name": "team", "path": "root"},
                              current_path="root:acme") == builtin(tenancy, "team")
    assert tenancy.types.find({"name": "nope"}, current_path="root:acme") is None
    assert tenancy.types.get("team", "root:missing") is None


async def test_type_of_a_materialized_cluster(tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    assert tenancy.types.type_of_cluster(org) == builtin(tenancy, "organization")
    assert tenancy.types.type_of_cluster("abcdefghijklmnop") is None


async def test_default_child_type_errors(tenancy: Tenancy) -> None:
    with pytest.raises(StatusError) as unset:
        tenancy.types.default_child(kind("bare", {}))
    assert unset.value.code == 403
    assert "has no defaultChildWorkspaceType" in unset.value.message
    with pytest.raises(StatusError) as missing:
        tenancy.types.default_child(
            kind("bad", {"defaultChildWorkspaceType": {"name": "ghost"}}))
    assert "does not exist: root:ghost" in missing.value.message


async def test_initializers_follow_extends_once_each(tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    await create_type(tenancy.store, org, "base", {"initializer": True})
    await create_type(tenancy.store, org, "plain", {
        "extend": {"with": [{"name": "base"}, {"name": "universal", "path": "root"}]}})
    await create_type(tenancy.store, org, "derived", {
        "initializer": True,
        "extend": {"with": [{"name": "plain"}, {"name": "base"}]}})
    derived = tenancy.types.get("derived", "root:acme")
    plain = tenancy.types.get("plain", "root:acme")
    assert derived is not None and plain is not None
    assert tenancy.types.initializers(derived) == ["root:acme:derived", "root:acme:base"]
    assert tenancy.types.initializers(plain) == ["root:acme:base"]
    assert tenancy.types.initializers(builtin(tenancy, "universal")) == []


async def test_an_extend_cycle_terminates(tenancy: Tenancy) -> None:
    await create_type(tenancy.store, "root", "ping",
                      {"initializer": True, "extend": {"with": [{"name": "pong"}]}})
    await create_type(tenancy.store, "root", "pong",
                      {"initializer": True, "extend": {"with": [{"name": "ping"}]}})
    ping = tenancy.types.get("ping", "root")
    assert ping is not None
    assert tenancy.types.initializers(ping) == ["root:ping", "root:pong"]


async def test_aliases_are_the_type_and_everything_it_extends_once(tenancy: Tenancy) -> None:
    org = await ready_child(tenancy.store, "root", "root", "acme",
                            type_ref={"name": "organization", "path": "root"})
    await create_type(tenancy.store, org, "base", {})
    await create_type(tenancy.store, org, "derived", {
        "extend": {"with": [{"name": "base"}, {"name": "universal", "path": "root"},
                            {"name": "base"}, {"name": "ghost"}]}})
    derived = tenancy.types.get("derived", "root:acme")
    assert derived is not None
    aliases = tenancy.types.aliases(derived)
    assert [(a.reference, a.cluster) for a in aliases] == [
        ("root:acme:derived", org), ("root:acme:base", org), ("root:universal", "root")]
    await create_type(tenancy.store, "root", "ping", {"extend": {"with": [{"name": "pong"}]}})
    await create_type(tenancy.store, "root", "pong", {"extend": {"with": [{"name": "ping"}]}})
    ping = tenancy.types.get("ping", "root")
    assert ping is not None
    assert [a.name for a in tenancy.types.aliases(ping)] == ["ping", "pong"]
