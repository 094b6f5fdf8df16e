"""Tests for kplane.crd.validation: keywords, list uniqueness, CEL rules, real examples."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kplane.crd.defaulting import apply_defaults
from kplane.crd.validation import SchemaValidator

TESTDATA = Path("/work/shared/testdata/crds/gateway-api")


def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in TESTDATA.glob("crds/*.yaml"):
        crd = next(d for d in yaml.safe_load_all(path.read_text()) if d)
        out[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    return out


CRDS = _crds()


def _schema(group: str, kind: str, version: str) -> dict[str, Any]:
    crd = CRDS[(group, kind)]
    return next(v for v in crd["spec"]["versions"]
                if v["name"] == version)["schema"]["openAPIV3Schema"]


def _examples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(TESTDATA.glob("examples/**/*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and (obj["apiVersion"].rpartition("/")[0], obj["kind"]) in CRDS:
                out.append((f"{path.name}:{obj['kind']}:{obj['metadata']['name']}", obj))
    return out


EXAMPLES = _examples()
_VALIDATORS: dict[tuple[str, str, str], SchemaValidator] = {}


def _validator(group: str, kind: str, version: str) -> SchemaValidator:
    key = (group, kind, version)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = SchemaValidator(_schema(group, kind, version))
    return _VALIDATORS[key]


@pytest.mark.parametrize("obj", [e[1] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES])
def test_gateway_examples_validate(obj: dict[str, Any]) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    obj = copy.deepcopy(obj)
    apply_defaults(obj, _schema(group, obj["kind"], version))
    assert _validator(group, obj["kind"], version).validate(obj) == []


def test_examples_exist() -> None:
    assert len(EXAMPLES) > 30


def _route(path_value: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix",
                                                      "value": path_value}}]}]}}


def _http_route_errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    schema = _schema("gateway.networking.k8s.io", "HTTPRoute", "v1")
    apply_defaults(obj, schema)
    errors = _validator("gateway.networking.k8s.io", "HTTPRoute", "v1").validate(obj)
    return [(c.field, c.message) for c in errors]


def test_httproute_path_rules_use_their_messages() -> None:
    errors = _http_route_errors(_route("foo//bar"))
    field = "spec.rules[0].matches[0].path"
    assert (field, 'Invalid value: "object": value must be an absolute path and start with '
                   "'/' when type one of ['Exact', 'PathPrefix']") in errors
    assert (field, 'Invalid value: "object": must not contain \'//\' when type one of '
                   "['Exact', 'PathPrefix']") in errors


def test_httproute_filter_rule() -> None:
    obj = _route("/")
    obj["spec"]["rules"][0]["filters"] = [{"type": "RequestRedirect"}]
    errors = _http_route_errors(obj)
    assert ("spec.rules[0].filters[0]",
            'Invalid value: "object": filter.requestRedirect must be specified for '
            "RequestRedirect filter.type") in errors


def test_gateway_listener_rules() -> None:
    listener = {"name": "a", "port": 80, "protocol": "HTTP"}
    obj = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": "g"},
           "spec": {"gatewayClassName": "c",
                    "listeners": [listener, {**listener, "name": "b"},
                                  {"name": "a", "port": 81, "protocol": "TCP"}]}}
    errors = _validator("gateway.networking.k8s.io", "Gateway", "v1").validate(obj)
    by_field = [(c.field, c.reason, c.message) for c in errors]
    assert ("spec.listeners[2]", "FieldValueDuplicate",
            "Duplicate value: map[string]interface {}{\"name\":\"a\"}") in by_field
    assert ("spec.listeners", "FieldValueInvalid",
            'Invalid value: "array": Combination of port, protocol and hostname must be '
            "unique for each listener") in by_field


SMALL = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10, "format": "int32"},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "name": {"type": "string", "maxLength": 5, "minLength": 2, "pattern": "^[a-z]+$"},
                "when": {"type": "string", "format": "date-time"},
                "addr": {"type": "string", "format": "ipv4"},
                "ports": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set",
                          "items": {"type": "integer"}},
                "labels": {"type": "object", "maxProperties": 1,
                           "additionalProperties": {"type": "string", "minLength": 1}},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "replicas": {"type": "integer",
                             "x-kubernetes-validations": [
                                 {"rule": "self >= oldSelf", "message": "cannot shrink",
                                  "reason": "FieldValueForbidden"}]},
                "tmpl": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-validations": [
                {"rule": "!has(self.color) || self.color != 'blue' || self.size > 2",
                 "messageExpression": "'blue needs size > 2, got ' + string(self.size)",
                 "fieldPath": ".size"},
            ],
        },
    },
}


def _errors(spec: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    validator = SchemaValidator(SMALL)
    old_obj = {"spec": old} if old is not None else None
    return [(c.reason, c.field, c.message)
            for c in validator.validate({"spec": spec}, old=old_obj)]


def test_valid_object() -> None:
    assert _errors({"size": 3, "color": "blue", "name": "abc", "port": "http", "note": None,
                    "when": "2024-01-02T03:04:05Z", "addr": "10.0.0.1", "ports": [1, 2],
                    "tmpl": {"apiVersion": "v1", "kind": "Pod"}}) == []


def test_every_error_is_reported() -> None:
    errors = _errors({"size": 11, "color": "green", "name": "ABCDEFG", "when": "yesterday",
                      "addr": "1.2.3", "ports": [1, 1, 2], "labels": {"a": "", "b": "x"},
                      "port": 1.5, "tmpl": {"kind": "Pod"}})
    assert errors == [
        ("FieldValueInvalid", "spec.size",
         "Invalid value: 11: spec.size in body should be less than or equal to 10"),
        ("FieldValueNotSupported", "spec.color",
         'Unsupported value: "green": supported values: "red", "blue"'),
        ("FieldValueTooLong", "spec.name", "Too long: must have at most 5 bytes"),
        ("FieldValueInvalid", "spec.name",
         "Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'"),
        ("FieldValueInvalid", "spec.when",
         'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"'),
        ("FieldValueInvalid", "spec.addr",
         'Invalid value: "1.2.3": spec.addr in body must be of type ipv4: "1.2.3"'),
        ("FieldValueTooMany", "spec.ports", "Too many: 3: must have at most 2 items"),
        ("FieldValueDuplicate", "spec.ports[1]", "Duplicate value: 1"),
        ("FieldValueTooMany", "spec.labels", "Too many: 2: must have at most 1 items"),
        ("FieldValueInvalid", "spec.labels[a]",
         'Invalid value: "": spec.labels[a] in body should be at least 1 chars long'),
        ("FieldValueTypeInvalid", "spec.port",
         'Invalid value: "number": spec.port in body must be of type integer,string: "number"'),
        ("FieldValueRequired", "spec.tmpl.apiVersion", "Required value: must not be empty"),
    ]


def test_required_type_and_null() -> None:
    assert _errors({"name": 5, "color": None}) == [
        ("FieldValueRequired", "spec.size", "Required value"),
        ("FieldValueTypeInvalid", "spec.name",
         'Invalid value: "integer": spec.name in body must be of type string: "integer"'),
        ("FieldValueInvalid", "spec.color",
         'Invalid value: null: spec.color in body must be of type string: "null"'),
    ]


def test_message_expression_and_field_path() -> None:
    assert _errors({"size": 2, "color": "blue"}) == [
        ("FieldValueInvalid", "spec.size", 'Invalid value: "object": blue needs size > 2, got 2')]


def test_transition_rule_only_with_old_value() -> None:
    assert _errors({"size": 1, "replicas": 1}) == []
    assert _errors({"size": 1, "replicas": 1}, old={"size": 1}) == []
    assert _errors({"size": 1, "replicas": 1}, old={"size": 1, "replicas": 3}) == [
        ("FieldValueForbidden", "spec.replicas", "Forbidden: cannot shrink")]


def test_list_map_duplicates_and_correlation() -> None:
    schema = {"type": "object", "properties": {"items": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
        "items": {"type": "object", "required": ["k"], "properties": {
            "k": {"type": "string"},
            "v": {"type": "integer",
                  "x-kubernetes-validations": [{"rule": "self == oldSelf",
                                                "message": "immutable"}]}}}}}}
    validator = SchemaValidator(schema)
    new = {"items": [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 3}]}
    old = {"items": [{"k": "b", "v": 1}]}
    errors = [(c.field, c.message) for c in validator.validate(new, old=old)]
    assert errors == [
        ("items[2]", 'Duplicate value: map[string]interface {}{"k":"a"}'),
        ("items[1].v", 'Invalid value: "integer": immutable'),
    ]


def test_default_message_and_evaluation_error() -> None:
    validator = SchemaValidator({"type": "object", "properties": {"s": {
        "type": "object", "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.a == 'x'"}]}}})
    assert [(c.field, c.message) for c in validator.validate({"s": {"a": "y"}})] == [
        ("s", "Invalid value: \"object\": failed rule: self.a == 'x'")]
    assert [(c.field, c.message) for c in validator.validate({"s": {}})] == [
        ("s", "Invalid value: \"object\": no such key: a evaluating rule: self.a == 'x'")]


def test_small_cr_is_fast() -> None:
    validator = SchemaValidator(SMALL)
    obj = {"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "n"},
           "spec": {"size": 3, "color": "blue", "name": "abc", "replicas": 2}}
    old = copy.deepcopy(obj)
    runs = 2000
    start = time.perf_counter()
    for _ in range(runs):
        validator.validate(obj, old=old)
    per_call = (time.perf_counter() - start) / runs
    assert per_call < 100e-6, per_call


def test_a_stored_schema_with_an_invalid_pattern_fails_its_values_not_the_server() -> None:
    # Schemas are checked when written; one stored before that check must not crash
    # whoever loads it.
    validator = SchemaValidator({"type": "object", "properties": {
        "a": {"type": "string", "pattern": "(["}}})
    [cause] = validator.validate({"a": "x"})
    assert cause.field == "a"
    assert "the schema's pattern '([' is invalid (error parsing regexp: missing ]: [)" \
        in cause.message


def test_patterns_use_go_syntax_and_linear_time() -> None:
    validator = SchemaValidator({"type": "object", "properties": {
        "word": {"type": "string", "pattern": r"^\p{L}+$"},
        "as": {"type": "string", "pattern": "^(a+)+$"}}})
    assert validator.validate({"word": "héllo", "as": "aaaa"}) == []
    causes = validator.validate({"word": "h3llo", "as": "a" * 60 + "!"})
    assert sorted(c.field for c in causes) == ["as", "word"]


def _costly_rule_schema() -> dict[str, Any]:
    # A rule whose cost grows with the cube of each inner list, on every item of an
    # unbounded outer list: the shape that let one create hold the server for minutes.
    return {"type": "object", "properties": {"groups": {
        "type": "array", "items": {
            "type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{
                "rule": "self.all(a, self.all(b, self.all(c, "
                        "a.size() + b.size() + c.size() >= 0)))"}]}}}}


def test_one_write_has_one_budget_for_all_its_rules() -> None:
    validator = SchemaValidator(_costly_rule_schema())
    inner = [f"item-{i}" for i in range(20)]
    causes = validator.validate({"groups": [inner] * 5000})
    assert [(c.reason, c.message) for c in causes] == [
        ("FieldValueInvalid", 'Invalid value: "array": validation failed due to running out '
                              "of cost budget, no further validation rules will be run")]
    # Cheap rules on the same number of items stay well inside it.
    cheap = SchemaValidator({"type": "object", "properties": {"groups": {
        "type": "array", "items": {"type": "array", "items": {"type": "string"},
                                   "x-kubernetes-validations": [{"rule": "self.size() < 50"}]}}}})
    assert cheap.validate({"groups": [inner] * 5000}) == []
    # And the budget is per write: the next one starts afresh.
    assert validator.validate({"groups": [inner] * 2}) == []
