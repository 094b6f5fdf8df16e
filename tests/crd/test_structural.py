"""Tests for kplane.crd.structural: real-world CRDs accepted, each violation named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kplane.crd.structural import check_crd_spec
from kplane.crd.validation import SchemaValidator

TESTDATA = Path("/work/shared/testdata/crds")
CRD_FILES = sorted([*TESTDATA.glob("gateway-api/crds/*.yaml"),
                    *TESTDATA.glob("cert-manager/*.yaml")])


def _load(path: Path) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d)


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_real_world_crds_are_accepted(path: Path) -> None:
    crd = _load(path)
    assert check_crd_spec(crd["spec"], name=crd["metadata"]["name"]) == []


def _crd(schema: dict[str, Any] | None = None, **version: Any) -> dict[str, Any]:
    spec_schema = schema or {"type": "object", "properties": {"spec": {"type": "object"}}}
    return {
        "group": "example.com",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                  "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": spec_schema}, **version}],
    }


def _fields(spec: dict[str, Any], name: str = "widgets.example.com") -> dict[str, str]:
    return {c.field: c.message for c in check_crd_spec(spec, name=name)}


def _with_spec(node: dict[str, Any]) -> dict[str, Any]:
    return _crd({"type": "object", "properties": {"spec": node}})


ROOT = "spec.versions[0].schema.openAPIV3Schema"


def test_patterns_must_compile_as_go_reads_them() -> None:
    fields = _fields(_with_spec({"type": "object", "properties": {
        "bad": {"type": "string", "pattern": "(["},
        "go": {"type": "string", "pattern": r"^\p{L}+\z"},
    }}))
    assert fields == {
        f"{ROOT}.properties[spec].properties[bad].pattern":
            'Invalid value: "([": must be a valid regular expression, but isn\'t: '
            "error parsing regexp: missing ]: [",
    }


@pytest.mark.parametrize(("field_path", "problem"), [
    (".size", None),
    (".labels['app.kubernetes.io/name']", None),
    (".nope", "fieldPath must be a valid path: does not refer to a valid field"),
    ("..a[", "fieldPath must be a valid path: does not refer to a valid field"),
    (".labels[0]", "fieldPath must be a valid path: expected single quoted string but got 0"),
    ("size", "fieldPath must be a valid path: expected [ or . but got: size"),
    ("  ", "fieldPath must be non-empty if specified"),
])
def test_a_rule_field_path_must_name_a_field(field_path: str, problem: str | None) -> None:
    spec = _with_spec({
        "type": "object",
        "properties": {"size": {"type": "integer"},
                       "labels": {"type": "object",
                                  "additionalProperties": {"type": "string"}}},
        "x-kubernetes-validations": [{"rule": "true", "fieldPath": field_path}]})
    where = f"{ROOT}.properties[spec].x-kubernetes-validations[0].fieldPath"
    fields = _fields(spec)
    if problem is None:
        assert fields == {}
    else:
        assert fields == {where: f'Invalid value: "{field_path}": {problem}'}


def test_minimal_crd_is_valid() -> None:
    assert check_crd_spec(_crd(), name="widgets.example.com") == []


def test_name_must_be_plural_dot_group() -> None:
    assert _fields(_crd(), name="gadgets.example.com") == {
        "metadata.name": 'Invalid value: "gadgets.example.com": '
                         'must be spec.names.plural+"."+spec.group'}


def test_scope_and_versions() -> None:
    spec = _crd()
    spec["scope"] = "Global"
    spec["versions"][0]["storage"] = False
    causes = _fields(spec)
    assert causes["spec.scope"].startswith('Unsupported value: "Global"')
    assert "exactly one version marked as storage" in causes["spec.versions"]


def test_schema_required() -> None:
    spec = _crd()
    del spec["versions"][0]["schema"]
    assert _fields(spec) == {f"{ROOT}": "Required value: schemas are required"}


@pytest.mark.parametrize(("node", "field", "fragment"), [
    ({"type": "object", "properties": {"x": {}}}, "properties[spec].properties[x].type",
     "must not be empty"),
    ({"type": "object", "$ref": "#/x"}, "properties[spec].$ref", "not supported"),
    ({"type": "object", "patternProperties": {}}, "properties[spec].patternProperties",
     "not supported"),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True},
     "properties[spec].uniqueItems", "uniqueItems cannot be set to true"),
    ({"type": "object", "additionalProperties": False},
     "properties[spec].additionalProperties", "cannot be set to false"),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "additionalProperties": {"type": "string"}},
     "properties[spec].additionalProperties", "mutual exclusive"),
    ({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object",
      "properties": {"name": {"type": "string"}}}},
     "properties[spec].x-kubernetes-list-map-keys", "must not be empty"),
    ({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
      "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
     "properties[spec].x-kubernetes-list-map-keys[0]", "must be required or have a default"),
    ({"type": "string", "x-kubernetes-validations": [{"rule": "nope(self)"}]},
     "properties[spec].x-kubernetes-validations[0].rule", "undeclared reference to 'nope'"),
    ({"type": "string", "default": 5}, "properties[spec].default", "must be of type string"),
    ({"type": "string", "maxLength": 2, "default": "abc"}, "properties[spec].default",
     "must have at most 2 bytes"),
])
def test_structural_violations_are_named(node: dict[str, Any], field: str, fragment: str) -> None:
    causes = _fields(_with_spec(node))
    assert f"{ROOT}.{field}" in causes, causes
    assert fragment in causes[f"{ROOT}.{field}"]


def test_transition_rule_under_atomic_list_is_refused() -> None:
    node = {"type": "array", "items": {"type": "string",
                                       "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}
    causes = _fields(_with_spec(node))
    assert "oldSelf cannot be used on the uncorrelatable portion" in causes[
        f"{ROOT}.properties[spec].items.x-kubernetes-validations[0].rule"]


def test_metadata_only_name_constraints() -> None:
    schema = {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 10}, "labels": {"type": "object"}}}}}
    causes = _fields(_crd(schema))
    assert list(causes) == [f"{ROOT}.properties[metadata].properties[labels]"]


def test_webhook_conversion_unsupported() -> None:
    spec = _crd()
    spec["conversion"] = {"strategy": "Webhook"}
    assert "spec.conversion.strategy" in _fields(spec)


def test_printer_columns_and_selectable_fields_and_scale() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                  "color": {"type": "string"},
                                                  "tags": {"type": "array",
                                                           "items": {"type": "string"}}}},
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}
    spec = _crd(copy.deepcopy(schema),
                additionalPrinterColumns=[{"name": "C", "type": "color",
                                           "jsonPath": ".spec.color"}],
                selectableFields=[{"jsonPath": ".spec.color"}, {"jsonPath": ".spec.tags"},
                                  {"jsonPath": ".spec.nope"}],
                subresources={"scale": {"specReplicasPath": ".spec.color",
                                        "statusReplicasPath": ".status.replicas"}})
    causes = _fields(spec)
    v = "spec.versions[0]"
    assert set(causes) == {
        f"{v}.additionalPrinterColumns[0].type", f"{v}.selectableFields[1].jsonPath",
        f"{v}.selectableFields[2].jsonPath", f"{v}.subresources.scale.specReplicasPath"}


# Parity with upstream's ValidateCustomResourceDefinition: what it refuses, and what it lets by.


def _causes(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c.reason, c.field, c.message)
            for c in check_crd_spec(spec, name="widgets.example.com")]


def test_negative_bounds_and_mistyped_enums_are_accepted_as_upstream_does() -> None:
    # Upstream's CRD validation has no check on the value of maxLength & co. or on an enum
    # member's type (apiextensions-apiserver validation.go, specStandardValidatorV3); the
    # schema is accepted and every object it applies to is refused instead.
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "s": {"type": "string", "maxLength": -1, "minLength": -1,
              "x-kubernetes-validations": [{"rule": "self.size() < 3"}]},
        "a": {"type": "array", "items": {"type": "string"}, "maxItems": -1, "minItems": -1},
        "o": {"type": "object", "additionalProperties": {"type": "string"},
              "maxProperties": -1, "minProperties": -1},
        "e": {"type": "string", "enum": ["a", 1]},
    }}}}
    assert _causes(_crd(schema)) == []
    problems = SchemaValidator(schema).validate(
        {"spec": {"s": "x", "a": ["x"], "o": {"k": "v"}, "e": "b"}})
    assert [(p.reason, p.field) for p in problems] == [
        ("FieldValueTooLong", "spec.s"), ("FieldValueTooMany", "spec.a"),
        ("FieldValueTooMany", "spec.o"), ("FieldValueNotSupported", "spec.e")]


@pytest.mark.parametrize("status", ["x", [], 1, True])
def test_a_status_subresource_must_be_an_object(status: Any) -> None:
    # Upstream cannot decode these into CustomResourceSubresourceStatus (a 400 there).
    shown = f'"{status}"' if isinstance(status, str | list) else str(status)
    assert _causes(_crd(subresources={"status": status})) == [
        ("FieldValueInvalid", "spec.versions[0].subresources.status",
         f"Invalid value: {shown}: must be an object")]


@pytest.mark.parametrize("status", [{}, None])
def test_an_empty_or_null_status_subresource_is_fine(status: Any) -> None:
    assert _causes(_crd(subresources={"status": status})) == []


SCALE_SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                "selector": {"type": "string"}}}}}
GOOD_SCALE = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
              "labelSelectorPath": ".status.selector"}


@pytest.mark.parametrize(("field", "value", "detail"), [
    ("specReplicasPath", "spec.replicas", "must be a simple json path starting with ."),
    ("specReplicasPath", ".status.replicas", "should be a json path under .spec"),
    ("specReplicasPath", ".spec", "should be a json path under .spec"),
    # kplane alone: upstream lets this through, and it then names no field.
    ("specReplicasPath", ".spec..replicas", "must be a json path in the dot notation"),
    ("statusReplicasPath", "status.replicas", "must be a simple json path starting with ."),
    ("statusReplicasPath", ".spec.replicas", "should be a json path under .status"),
    ("labelSelectorPath", "status.selector", "must be a simple json path starting with ."),
    ("labelSelectorPath", ".metadata.labels",
     "should be a json path under either .spec or .status"),
])
def test_scale_paths_are_checked_as_upstream_does(field: str, value: str, detail: str) -> None:
    scale = {**GOOD_SCALE, field: value}
    spec = _crd(copy.deepcopy(SCALE_SCHEMA), subresources={"scale": scale})
    assert _causes(spec) == [("FieldValueInvalid", f"spec.versions[0].subresources.scale.{field}",
                              f'Invalid value: "{value}": {detail}')]


def test_scale_paths_are_required_and_the_scale_an_object() -> None:
    where = "spec.versions[0].subresources"
    assert _causes(_crd(copy.deepcopy(SCALE_SCHEMA), subresources={"scale": {}})) == [
        ("FieldValueRequired", f"{where}.scale.specReplicasPath", "Required value"),
        ("FieldValueRequired", f"{where}.scale.statusReplicasPath", "Required value")]
    assert _causes(_crd(subresources={"scale": "x"})) == [
        ("FieldValueInvalid", f"{where}.scale", 'Invalid value: "x": must be an object')]
    assert _causes(_crd(copy.deepcopy(SCALE_SCHEMA),
                        subresources={"status": {}, "scale": GOOD_SCALE})) == []


@pytest.mark.parametrize(("node", "below", "reason", "message"), [
    ({"type": "string", "enum": ["a", "b"], "default": "c"}, "", "FieldValueNotSupported",
     'Unsupported value: "c": supported values: "a", "b"'),
    ({"type": "string", "default": 5}, "", "FieldValueTypeInvalid",
     'Invalid value: "integer": default in body must be of type string: "integer"'),
    ({"type": "string", "maxLength": 1, "default": "ab"}, "", "FieldValueTooLong",
     "Too long: must have at most 1 bytes"),
    ({"type": "object", "required": ["z"], "properties": {"z": {"type": "string"}},
      "default": {}}, ".z", "FieldValueRequired", "Required value"),
    ({"type": "object", "properties": {"b": {"type": "array", "maxItems": 1,
                                              "items": {"type": "integer"}}},
      "default": {"b": [1, 2]}}, ".b", "FieldValueTooMany",
     "Too many: 2: must have at most 1 items"),
])
def test_a_default_keeps_the_kind_of_its_problem(node: dict[str, Any], below: str, reason: str,
                                                  message: str) -> None:
    # As upstream's ValidateDefaults, which reports the schema validator's own errors
    # (Unsupported value, Too long...) under ``<schema path>.default``.
    assert _causes(_with_spec(node)) == [
        (reason, f"{ROOT}.properties[spec].default{below}", message)]
