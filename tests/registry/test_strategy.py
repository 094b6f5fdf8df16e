"""The default Strategy: what every kind does unless its own strategy says otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.apimachinery.typeinfo import ANY
from kplane.registry import builtin
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy, lookup_field

WIDGETS = ResourceType(group="example.com", version="v1", resource="widgets", kind="Widget",
                       namespaced=True, selectable_fields=("spec.color", "spec.ready"))


class WithStatus(Strategy):
    has_status_subresource = True


@pytest.mark.parametrize(("path", "value"), [
    ("spec.color", "red"),
    ("spec.size", "3"),
    ("spec.ready", "true"),
    ("spec.off", "false"),
    ("spec.missing", ""),
    ("spec.color.deeper", ""),
    ("spec.none", ""),
    ("nothing.at.all", ""),
])
def test_lookup_field_stringifies_like_field_selectors(path: str, value: str) -> None:
    obj = {"spec": {"color": "red", "size": 3, "ready": True, "off": False, "none": None}}
    assert lookup_field(obj, path) == value


def test_schema_comes_from_upstream_or_accepts_anything() -> None:
    assert Strategy(builtin.CONFIGMAPS).schema.field("data") is not None
    assert Strategy(WIDGETS).schema is ANY


def test_selectable_fields_of_namespaced_and_cluster_kinds() -> None:
    widget = {"metadata": {"name": "w", "namespace": "ns"}, "spec": {"color": "red"}}
    assert Strategy(WIDGETS).selectable_fields(widget) == {
        "metadata.name": "w", "metadata.namespace": "ns", "spec.color": "red",
        "spec.ready": ""}
    assert Strategy(builtin.CLUSTERROLES).selectable_fields({"metadata": {"name": "r"}}) == {
        "metadata.name": "r"}
    assert Strategy(WIDGETS).supported_field_selectors == {
        "metadata.name", "metadata.namespace", "spec.color", "spec.ready"}


def test_status_is_kept_without_a_status_subresource() -> None:
    obj: dict[str, Any] = {"status": {"a": 1}}
    Strategy(WIDGETS).prepare_for_create(obj)
    assert obj == {"status": {"a": 1}}
    new: dict[str, Any] = {"status": {"a": 2}}
    Strategy(WIDGETS).prepare_for_update(new, {"status": {"a": 1}})
    assert new == {"status": {"a": 2}}


def test_status_subresource_keeps_status_out_of_main_writes() -> None:
    strategy = WithStatus(WIDGETS)
    obj: dict[str, Any] = {"spec": {}, "status": {"a": 1}}
    strategy.prepare_for_create(obj)
    assert obj == {"spec": {}}
    new: dict[str, Any] = {"status": {"a": 2}}
    strategy.prepare_for_update(new, {"status": {"a": 1}})
    assert new == {"status": {"a": 1}}
    new = {"status": {"a": 2}}
    strategy.prepare_for_update(new, {})
    assert new == {}


def test_default_name_rule_is_a_dns_subdomain() -> None:
    validate = Strategy(WIDGETS).name_validator
    assert validate("a.b-c") == []
    assert validate("A") != []
    assert Strategy(WIDGETS).validate({"anything": 1}) == []
