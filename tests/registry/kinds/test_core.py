"""Strategies of the core kinds, alone and through the Store (status subresources)."""

from __future__ import annotations

import base64
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from kplane.apimachinery.errors import StatusError
from kplane.registry import builtin
from kplane.registry.kinds import strategy_for
from kplane.registry.kinds.core import (
    ConfigMapStrategy,
    EventStrategy,
    NamespaceStrategy,
    SecretStrategy,
)
from kplane.registry.options import WriteOptions
from kplane.registry.store import MERGE_PATCH, Store, Target
from tests.registry.test_store import running_store

KEY_RULE = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')")


@pytest_asyncio.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    async with running_store(tmp_path) as running:
        yield running


def causes(found: list[Any]) -> list[tuple[str, str, str]]:
    return [(c.reason, c.field, c.message) for c in found]


# Namespaces --------------------------------------------------------------------------------


def test_new_namespace_gets_its_finalizer_phase_and_name_label() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "team"}, "status": {"phase": "Terminating"}}
    NamespaceStrategy(builtin.NAMESPACES).prepare_for_create(obj)
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert obj["status"] == {"phase": "Active"}
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}


def test_new_namespace_keeps_finalizers_it_was_given() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "team"}, "spec": {"finalizers": ["x.io/y"]}}
    NamespaceStrategy(builtin.NAMESPACES).prepare_for_create(obj)
    assert obj["spec"] == {"finalizers": ["x.io/y"]}


def test_namespace_update_keeps_spec_status_and_name_label() -> None:
    old = {"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    new: dict[str, Any] = {"metadata": {"name": "team", "labels": {"a": "b"}},
                           "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}
    NamespaceStrategy(builtin.NAMESPACES).prepare_for_update(new, old)
    assert new["spec"] == {"finalizers": ["kubernetes"]}
    assert new["status"] == {"phase": "Active"}
    assert new["metadata"]["labels"] == {"a": "b", "kubernetes.io/metadata.name": "team"}


def test_namespace_names_are_dns_labels() -> None:
    strategy = NamespaceStrategy(builtin.NAMESPACES)
    assert strategy.name_validator("team-a") == []
    assert strategy.name_validator("team.a") != []


async def test_namespace_main_resource_ignores_status(store: Store) -> None:
    target = Target(builtin.NAMESPACES, "root", "", "default")
    updated = await store.update(target, {"metadata": {"name": "default", "labels": {"a": "b"}},
                                          "status": {"phase": "Terminating"}}, WriteOptions())
    assert updated["status"] == {"phase": "Active"}
    assert updated["spec"] == {"finalizers": ["kubernetes"]}
    assert updated["metadata"]["labels"] == {"a": "b", "kubernetes.io/metadata.name": "default"}


async def test_namespace_status_subresource_changes_only_status(store: Store) -> None:
    target = Target(builtin.NAMESPACES, "root", "", "default")
    before: dict[str, Any] = orjson.loads((await store.get(target)).raw)
    body = {"metadata": {"name": "default", "labels": {"a": "b"}},
            "spec": {"finalizers": []},
            "status": {"phase": "Active", "conditions": [
                {"type": "NamespaceDeletionDiscoveryFailure", "status": "False"}]}}
    updated = await store.update(target, body, WriteOptions(), subresource="status")
    assert updated["status"] == body["status"]
    assert updated["spec"] == before["spec"]
    assert updated["metadata"]["labels"] == before["metadata"]["labels"]


async def test_resource_quota_status_is_written_only_through_the_subresource(
        store: Store) -> None:
    target = Target(builtin.RESOURCEQUOTAS, "root", "default", "q")
    created = await store.create(target, {
        "metadata": {"name": "q"}, "spec": {"hard": {"pods": "5"}},
        "status": {"hard": {"pods": "9"}}}, WriteOptions())
    assert "status" not in created
    status = {"hard": {"pods": "5"}, "used": {"pods": "1"}}
    updated = await store.patch(target, MERGE_PATCH,
                                {"spec": {"hard": {"pods": "7"}}, "status": status},
                                WriteOptions(), subresource="status")
    assert (updated["spec"], updated["status"]) == ({"hard": {"pods": "5"}}, status)
    main = await store.patch(target, MERGE_PATCH,
                             {"spec": {"hard": {"pods": "7"}}, "status": {"used": {}}},
                             WriteOptions())
    assert (main["spec"], main["status"]) == ({"hard": {"pods": "7"}}, status)


# ConfigMaps --------------------------------------------------------------------------------


def test_config_map_keys_must_be_config_keys() -> None:
    strategy = ConfigMapStrategy(builtin.CONFIGMAPS)
    assert strategy.validate({"data": {"ok.key_1-A": "v"}, "binaryData": {"b": "AA=="}}) == []
    found = strategy.validate({"data": {"a b": "v"}, "binaryData": {"x" * 254: "AA=="}})
    assert causes(found) == [
        ("FieldValueInvalid", "data[a b]", f'Invalid value: "a b": {KEY_RULE}'),
        ("FieldValueInvalid", f"binaryData[{'x' * 254}]", f'Invalid value: "{"x" * 254}": '
                                                          f"{KEY_RULE}"),
    ]


def test_config_map_key_in_data_and_binary_data_is_a_duplicate() -> None:
    found = ConfigMapStrategy(builtin.CONFIGMAPS).validate(
        {"data": {"k": "v"}, "binaryData": {"k": "AA=="}})
    assert causes(found) == [("FieldValueInvalid", "data[k]",
                              'Invalid value: "k": duplicate of key present in binaryData')]


def test_immutable_config_map_refuses_changes() -> None:
    strategy = ConfigMapStrategy(builtin.CONFIGMAPS)
    old = {"immutable": True, "data": {"k": "v"}}
    assert strategy.validate_update({"immutable": True, "data": {"k": "v"}}, old) == []
    found = strategy.validate_update({"immutable": False, "data": {"k": "w"}}, old)
    assert causes(found) == [
        ("FieldValueForbidden", "immutable", "Forbidden: field is immutable when `immutable` "
                                             "is set"),
        ("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set"),
    ]
    assert strategy.validate_update({"data": {"k": "w"}}, {"data": {"k": "v"}}) == []


async def test_invalid_config_map_is_refused_by_the_store(store: Store) -> None:
    with pytest.raises(StatusError) as info:
        await store.create(Target(builtin.CONFIGMAPS, "root", "default", "c"),
                           {"metadata": {"name": "c"}, "data": {"a b": "v"}}, WriteOptions())
    assert (info.value.code, info.value.message) == (
        422, f'ConfigMap "c" is invalid: data[a b]: Invalid value: "a b": {KEY_RULE}')


# Secrets -----------------------------------------------------------------------------------


def test_secret_defaults_its_type_and_folds_string_data() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s"}, "data": {"a": "eA=="},
                           "stringData": {"b": "hello"}}
    SecretStrategy(builtin.SECRETS).prepare_for_create(obj)
    assert obj == {"metadata": {"name": "s"}, "type": "Opaque",
                   "data": {"a": "eA==", "b": base64.b64encode(b"hello").decode()}}


def test_secret_update_keeps_the_old_type_when_none_is_given() -> None:
    new: dict[str, Any] = {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    SecretStrategy(builtin.SECRETS).prepare_for_update(new, {"type": "example.com/x"})
    assert new == {"metadata": {"name": "s"}, "type": "example.com/x", "data": {"k": "dg=="}}


def test_secret_validation() -> None:
    strategy = SecretStrategy(builtin.SECRETS)
    assert strategy.validate({"data": {"k": "dg=="}, "type": "Opaque"}) == []
    assert causes(strategy.validate({"data": {"k": "not base64!"}})) == [
        ("FieldValueInvalid", "data[k]",
         'Invalid value: "<secret contents redacted>": illegal base64 data')]
    token = {"type": "kubernetes.io/service-account-token", "metadata": {}}
    assert causes(strategy.validate(token)) == [
        ("FieldValueRequired", "metadata.annotations[kubernetes.io/service-account.name]",
         "Required value")]


def test_secret_type_and_immutable_data_cannot_change() -> None:
    strategy = SecretStrategy(builtin.SECRETS)
    found = strategy.validate_update({"type": "b", "data": {"k": "dw=="}},
                                     {"type": "a", "immutable": True, "data": {"k": "dg=="}})
    assert causes(found) == [
        ("FieldValueInvalid", "type", 'Invalid value: "b": field is immutable'),
        ("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set"),
    ]


async def test_secret_string_data_is_never_stored(store: Store) -> None:
    target = Target(builtin.SECRETS, "root", "default", "s")
    created = await store.create(target, {"metadata": {"name": "s"},
                                          "stringData": {"password": "hunter2"}}, WriteOptions())
    stored: dict[str, Any] = orjson.loads((await store.get(target)).raw)
    assert stored == created
    assert "stringData" not in stored
    assert stored["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert stored["type"] == "Opaque"


# Events ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rt", "field"), [(builtin.EVENTS, "involvedObject"),
                                           (builtin.EVENTS_V1, "regarding")])
def test_event_must_be_about_an_object_of_its_namespace(rt: Any, field: str) -> None:
    strategy = EventStrategy(rt)
    meta = {"name": "e", "namespace": "default"}
    assert strategy.validate({"metadata": meta, field: {"namespace": "default"}}) == []
    assert strategy.validate({"metadata": meta, field: {"kind": "Node"}}) == []
    assert causes(strategy.validate({"metadata": meta, field: {"namespace": "other"}})) == [
        ("FieldValueInvalid", f"{field}.namespace",
         'Invalid value: "other": does not match event.namespace')]


def test_event_fields_are_selectable() -> None:
    strategy = strategy_for(builtin.EVENTS)
    event = {"metadata": {"name": "e", "namespace": "default"}, "reason": "Started",
             "involvedObject": {"kind": "Pod", "name": "web"}, "type": "Normal"}
    fields = strategy.selectable_fields(event)
    assert fields["involvedObject.kind"] == "Pod"
    assert fields["involvedObject.name"] == "web"
    assert fields["involvedObject.uid"] == ""
    assert fields["reason"] == "Started"
    assert fields["metadata.namespace"] == "default"
    assert "involvedObject.kind" in strategy.supported_field_selectors
