"""Logical cluster names and workspace path syntax."""

from __future__ import annotations

import re

import pytest

from kplane.tenancy.names import is_valid_reference, join, new_cluster_name, parent_of


def test_new_cluster_names_are_16_base36_characters_and_fresh() -> None:
    names = {new_cluster_name() for _ in range(2000)}
    assert len(names) == 2000
    assert all(re.fullmatch(r"[0-9a-z]{16}", name) for name in names)
    # All 36 digits show up: the name is spread over the whole alphabet, not hex.
    assert set("".join(names)) == set("0123456789abcdefghijklmnopqrstuvwxyz")


def test_a_new_cluster_name_is_itself_a_valid_reference() -> None:
    assert is_valid_reference(new_cluster_name())


@pytest.mark.parametrize("reference", [
    "root", "root:acme", "root:acme:team-1", "system:admin", "system:shard-1",
    "k3x9abcd0011zzqq", "k3x9abcd0011zzqq:child", "a", "0-9",
])
def test_valid_references(reference: str) -> None:
    assert is_valid_reference(reference)


@pytest.mark.parametrize("reference", [
    "", ":", "root:", ":root", "root::acme", "Root", "root:Acme", "root:acme_1",
    "root:-acme", "root:acme-", "system:", "system:a:b", "root/acme", "root:acme.x",
    "*", "a" * 1025,
])
def test_invalid_references(reference: str) -> None:
    assert not is_valid_reference(reference)


def test_join_and_parent_of_are_inverse() -> None:
    assert join("root", "acme") == "root:acme"
    assert join("root:acme", "team-1") == "root:acme:team-1"
    assert parent_of("root:acme:team-1") == "root:acme"
    assert parent_of(join("root:acme", "x")) == "root:acme"
    assert parent_of("root") is None
