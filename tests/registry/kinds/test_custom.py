"""The CRD strategy's storedVersions rules and the custom resource strategy's versions."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from kplane.registry import builtin
from kplane.registry.custom_types import resource_types_for
from kplane.registry.kinds.custom import (
    CLEANUP_FINALIZER,
    CustomResourceDefinitionStrategy,
    CustomResourceStrategy,
)

GROUP = "example.kplane.io"
SCHEMA = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def crd(*versions: str, storage: str, stored: list[str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": v, "served": True, "storage": v == storage,
                               "schema": SCHEMA} for v in versions]},
    }
    if stored is not None:
        obj["status"] = {"storedVersions": stored}
    return obj


def messages(causes: Any) -> set[tuple[str, str]]:
    return {(c.field, c.message) for c in causes}


STRATEGY = CustomResourceDefinitionStrategy(builtin.CUSTOM_RESOURCE_DEFINITIONS)


def test_a_new_crd_stores_its_storage_version_and_gets_the_cleanup_finalizer() -> None:
    new = crd("v1", "v2", storage="v2", stored=["v9"])
    STRATEGY.prepare_for_create(new)
    assert new["status"] == {"storedVersions": ["v2"]}
    assert new["metadata"]["finalizers"] == [CLEANUP_FINALIZER]
    assert STRATEGY.validate(new) == []


def test_a_new_storage_version_is_added_to_stored_versions() -> None:
    old = crd("v1", "v2", storage="v1", stored=["v1"])
    new = crd("v1", "v2", storage="v2", stored=[])
    untouched = copy.deepcopy(old)
    STRATEGY.prepare_for_update(new, old)
    assert new["status"]["storedVersions"] == ["v1", "v2"]
    assert old == untouched, "the old object's status must not change"
    assert STRATEGY.validate_update(new, old) == []


def test_a_stored_version_cannot_leave_spec_versions() -> None:
    old = crd("v1", "v2", storage="v2", stored=["v1", "v2"])
    new = crd("v2", "v3", storage="v2")
    STRATEGY.prepare_for_update(new, old)
    assert messages(STRATEGY.validate_update(new, old)) == {(
        "status.storedVersions[0]",
        'Invalid value: "v1": missing from spec.versions; v1 was previously a storage '
        "version, and must remain in spec.versions until a storage migration ensures no "
        "data remains persisted in v1 and removes v1 from status.storedVersions")}


def test_stored_versions_must_name_the_storage_version_and_not_be_empty() -> None:
    empty = crd("v1", storage="v1", stored=[])
    assert messages(STRATEGY.validate(empty)) == {
        ("status.storedVersions", "Invalid value: []: must have at least one stored version")}
    missing = crd("v1", "v2", storage="v2", stored=["v1"])
    assert messages(STRATEGY.validate(missing)) == {
        ("status.storedVersions", 'Invalid value: ["v1"]: must have the storage version v2')}


def test_an_unchanged_spec_is_not_checked_again() -> None:
    # Status and metadata writes (a storage migration, the cleanup finalizer coming off)
    # must work whatever the stored spec and storedVersions look like, as upstream.
    old = crd("v1", storage="v1", stored=["v0"])
    old["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": {"properties": {}}}
    new = copy.deepcopy(old)
    new["status"] = {"storedVersions": []}
    assert STRATEGY.validate_update(new, old) == []


def strategies(storage: str) -> dict[str, CustomResourceStrategy]:
    spec = crd("v1", "v2", storage=storage)
    return {rt.version: strategy for rt, strategy in resource_types_for(spec, "c1")}


def test_objects_are_stored_with_the_storage_version_first() -> None:
    v1 = strategies("v2")["v1"]
    body = {"kind": "Widget", "metadata": {"name": "w"}, "apiVersion": f"{GROUP}/v1"}
    stored = v1.storage_form(body)
    assert list(stored) == ["apiVersion", "kind", "metadata"]
    assert stored["apiVersion"] == f"{GROUP}/v2"
    assert body["apiVersion"] == f"{GROUP}/v1", "the caller's object is left alone"


def test_every_read_carries_the_requested_version() -> None:
    served = strategies("v2")
    as_v1 = orjson.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                          "metadata": {"name": "old"},
                          "spec": {"template": {"apiVersion": f"{GROUP}/v2"}}})
    as_v2 = orjson.dumps(served["v1"].storage_form(orjson.loads(as_v1)))
    # Bytes already in the requested version are handed out as they are.
    assert served["v2"].read_bytes(as_v2) is as_v2
    assert served["v1"].read_bytes(as_v1) is as_v1
    for version, strategy in served.items():
        for raw in (as_v1, as_v2):
            obj = orjson.loads(strategy.read_bytes(raw))
            assert obj["apiVersion"] == f"{GROUP}/{version}"
            assert obj["spec"]["template"]["apiVersion"] == f"{GROUP}/v2"
    # An earlier kplane did not always put apiVersion first.
    unordered = orjson.dumps({"kind": "Widget", "apiVersion": f"{GROUP}/v2",
                              "metadata": {"name": "x"}})
    assert orjson.loads(served["v2"].read_bytes(unordered))["apiVersion"] == f"{GROUP}/v2"
    assert orjson.loads(served["v1"].read_bytes(unordered))["apiVersion"] == f"{GROUP}/v1"


def test_a_storage_version_change_changes_the_strategy() -> None:
    assert strategies("v1")["v1"] != strategies("v2")["v1"]
    assert strategies("v1")["v1"] == strategies("v1")["v1"]


def protected(annotation: str | None, group: str = "widgets.sigs.k8s.io") -> dict[str, Any]:
    obj = crd("v1", storage="v1", stored=["v1"])
    obj["spec"]["group"] = group
    obj["metadata"]["name"] = f"widgets.{group}"
    if annotation is not None:
        obj["metadata"]["annotations"] = {"api-approved.kubernetes.io": annotation}
    return obj


APPROVAL = "metadata.annotations[api-approved.kubernetes.io]"
RULE = 'protected groups must have approval annotation "api-approved.kubernetes.io"'
SEE = "see https://github.com/kubernetes/enhancements/pull/1111"


def test_protected_groups_need_the_api_approval_annotation() -> None:
    assert messages(STRATEGY.validate(protected(None))) == {
        (APPROVAL, f"Required value: {RULE}, {SEE}")}
    assert messages(STRATEGY.validate(protected("later"))) == {
        (APPROVAL, f'Invalid value: "later": {RULE} with either a URL or a reason starting '
                   f'with "unapproved", {SEE}')}
    for fine in ("https://github.com/kubernetes/enhancements/pull/1111",
                 "unapproved, experimental"):
        assert STRATEGY.validate(protected(fine)) == []
    # Other groups need nothing (x-k8s.io is the experimental space); k8s.io is protected.
    assert STRATEGY.validate(protected(None, group="example.io")) == []
    assert STRATEGY.validate(protected(None, group="gateway.networking.x-k8s.io")) == []
    assert STRATEGY.validate(protected(None, group="k8s.io")) != []


def test_an_unchanged_approval_is_not_judged_again() -> None:
    # As upstream: a CRD stored with a bad value keeps working until the value changes.
    old = protected("later")
    new = copy.deepcopy(old)
    new["spec"]["names"]["shortNames"] = ["wd"]
    assert STRATEGY.validate_update(new, old) == []
    new["metadata"]["annotations"]["api-approved.kubernetes.io"] = "still later"
    assert [c.field for c in STRATEGY.validate_update(new, old)] == [APPROVAL]
