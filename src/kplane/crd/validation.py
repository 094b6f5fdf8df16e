"""Validating a custom resource against its version's structural schema, CEL rules included.

Runs on every custom-resource write, after pruning and defaulting, so the schema is compiled
once into a tree of :class:`_Node` (regexes compiled, enums frozen, CEL rules compiled) and
the walk only does the checks a node actually declares. A hand-written walker rather than
a JSON-schema library: upstream's error wording (``spec.x in body should match '...'``,
``Unsupported value``, ``Duplicate value``) and its field paths (``spec.rules[0].name``,
``spec.labels[key]``) come out directly, and every error is reported, not the first.

``metadata`` of the resource itself is left to the Store; embedded resources
(``x-kubernetes-embedded-resource``) get their ``apiVersion``/``kind`` checked here.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from kplane.apimachinery.errors import (
    Cause,
    field_invalid,
    field_not_supported,
    field_required,
    field_too_long,
)
from kplane.apimachinery.regex import InvalidPatternError, Pattern, compile_pattern
from kplane.crd.cel import (
    BUDGET_EXHAUSTED,
    CelProgram,
    Converter,
    RuleOutcome,
    compile_rule,
    converter_for,
)

_JSON_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object"}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w))+$|^0$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
                       r"(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_RGB = re.compile(r"^#[0-9A-Fa-f]{6}$")
_ISBN = re.compile(r"^(\d{9}[\dXx]|\d{13})$")
_SSN = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$")


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _is_byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.match(value) is not None


# The string formats upstream's OpenAPI checker knows; unknown formats are not checked.
_FORMATS: dict[str, Callable[[str], bool]] = {
    "byte": _is_byte, "date": _matches(_DATE), "date-time": _matches(_DATE_TIME),
    "datetime": _matches(_DATE_TIME), "duration": _matches(_DURATION),
    "email": _matches(_EMAIL), "hostname": _matches(_HOSTNAME),
    "ipv4": lambda v: _is_ip(v, 4), "ipv6": lambda v: _is_ip(v, 6), "cidr": _is_cidr,
    "uri": _matches(_URI), "uuid": _is_uuid, "uuid3": _is_uuid, "uuid4": _is_uuid,
    "uuid5": _is_uuid, "mac": _matches(_MAC), "hexcolor": _matches(_RGB),
    "isbn": _matches(_ISBN), "isbn10": _matches(_ISBN), "isbn13": _matches(_ISBN),
    "ssn": _matches(_SSN),
}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), "unknown")


def _in_body(path: str) -> str:
    return path or "body"


def _go_value(value: Any) -> str:
    """A value printed roughly as Go's %#v does in ``Duplicate value`` messages."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f'"{k}":{_go_value(v)}' for k, v in value.items())
        return f"map[string]interface {{}}{{{inner}}}"
    if value is None:
        return "<nil>"
    return str(value)


class _Node:
    """One compiled schema node: the checks it declares and its children."""

    __slots__ = (
        "additional",
        "all_of",
        "any_of",
        "converter",
        "embedded",
        "enum",
        "enum_shown",
        "exclusive_maximum",
        "exclusive_minimum",
        "format_check",
        "format_name",
        "int_or_string",
        "items",
        "list_type",
        "map_keys",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "one_of",
        "pattern",
        "pattern_error",
        "pattern_source",
        "properties",
        "required",
        "rules",
        "type",
        "type_name",
    )

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.type = schema.get("type") if isinstance(schema.get("type"), str) else None
        self.type_name = self.type or ""
        self.nullable = bool(schema.get("nullable"))
        self.int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
        self.embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        enum = schema.get("enum")
        self.enum = list(enum) if isinstance(enum, list) else None
        self.enum_shown = [str(v) for v in self.enum] if self.enum is not None else []
        self.format_name = str(schema.get("format") or "")
        self.format_check = _FORMATS.get(self.format_name)
        self.pattern_source = schema.get("pattern")
        self.pattern: Pattern | None = None
        self.pattern_error = ""
        if isinstance(self.pattern_source, str) and self.pattern_source:
            try:
                self.pattern = compile_pattern(self.pattern_source)
            except InvalidPatternError as error:
                # Schema validation refuses such a pattern; one stored before it did must
                # fail the values it guards, not the server.
                self.pattern_error = str(error)
        self.min_length = schema.get("minLength")
        self.max_length = schema.get("maxLength")
        self.minimum = schema.get("minimum")
        self.maximum = schema.get("maximum")
        self.exclusive_minimum = bool(schema.get("exclusiveMinimum"))
        self.exclusive_maximum = bool(schema.get("exclusiveMaximum"))
        self.multiple_of = schema.get("multipleOf")
        self.min_items = schema.get("minItems")
        self.max_items = schema.get("maxItems")
        self.min_properties = schema.get("minProperties")
        self.max_properties = schema.get("maxProperties")
        self.required = list(schema.get("required") or [])
        props = schema.get("properties")
        self.properties = ({k: _Node(v) for k, v in props.items() if isinstance(v, Mapping)}
                           if isinstance(props, Mapping) else {})
        additional = schema.get("additionalProperties")
        self.additional = _Node(additional) if isinstance(additional, Mapping) else None
        items = schema.get("items")
        self.items = _Node(items) if isinstance(items, Mapping) else None
        self.list_type = schema.get("x-kubernetes-list-type")
        self.map_keys = list(schema.get("x-kubernetes-list-map-keys") or [])
        self.all_of = [_Node(s) for s in schema.get("allOf") or [] if isinstance(s, Mapping)]
        self.any_of = [_Node(s) for s in schema.get("anyOf") or [] if isinstance(s, Mapping)]
        self.one_of = [_Node(s) for s in schema.get("oneOf") or [] if isinstance(s, Mapping)]
        not_schema = schema.get("not")
        self.not_ = _Node(not_schema) if isinstance(not_schema, Mapping) else None
        self.rules = _compile_rules(schema)
        self.converter: Converter | None = converter_for(schema) if self.rules else None

    # The walk.

    def validate(self, value: Any, path: str, old: Any, has_old: bool,
                 errors: list[Cause]) -> None:
        if value is None:
            if not self.nullable and self.type is not None:
                errors.append(Cause("FieldValueInvalid",
                                    f"Invalid value: null: {_in_body(path)} in body must be of "
                                    f"type {self.type}: \"null\"", path))
            return
        if not self._type_ok(value, path, errors):
            return
        self._value_checks(value, path, errors)
        if isinstance(value, dict):
            self._object(value, path, old if has_old and isinstance(old, dict) else None,
                         errors)
        elif isinstance(value, list):
            self._array(value, path, old if has_old and isinstance(old, list) else None,
                        errors)
        if self.rules:
            self._run_rules(value, path, old, has_old, errors)

    def _type_ok(self, value: Any, path: str, errors: list[Cause]) -> bool:
        found = _json_type(value)
        if self.int_or_string:
            ok = found in ("integer", "string")
            expected = "integer,string"
        elif self.type is None:
            return True
        else:
            expected = self.type
            ok = found == expected or (expected == "number" and found == "integer")
        if not ok:
            errors.append(Cause("FieldValueTypeInvalid",
                                f"Invalid value: \"{found}\": {_in_body(path)} in body must be "
                                f"of type {expected}: \"{found}\"", path))
        return ok

    def _value_checks(self, value: Any, path: str, errors: list[Cause]) -> None:
        if self.enum is not None and value not in self.enum:
            errors.append(field_not_supported(path, value, self.enum_shown))
        if isinstance(value, str):
            self._string(value, path, errors)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, path, errors)
        if self.all_of or self.any_of or self.one_of or self.not_:
            self._combinators(value, path, errors)

    def _string(self, value: str, path: str, errors: list[Cause]) -> None:
        where = _in_body(path)
        if self.max_length is not None and len(value) > self.max_length:
            errors.append(field_too_long(path, self.max_length))
        if self.min_length is not None and len(value) < self.min_length:
            errors.append(field_invalid(path, value, f"{where} in body should be at least "
                                                     f"{self.min_length} chars long"))
        if self.pattern is not None and self.pattern.search(value) is None:
            errors.append(field_invalid(path, value, f"{where} in body should match "
                                                     f"'{self.pattern_source}'"))
        elif self.pattern_error:
            errors.append(field_invalid(path, value, f"{where} cannot be checked: the "
                                                     f"schema's pattern '{self.pattern_source}'"
                                                     f" is invalid ({self.pattern_error})"))
        if self.format_check is not None and not self.format_check(value):
            errors.append(field_invalid(path, value, f"{where} in body must be of type "
                                                     f"{self.format_name}: \"{value}\""))

    def _number(self, value: float, path: str, errors: list[Cause]) -> None:
        where = _in_body(path)
        bounds = _INT_RANGES.get(self.format_name)
        if bounds is not None and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
            errors.append(field_invalid(path, value, f"{where} in body must be of type "
                                                     f"{self.format_name}: \"{value}\""))
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                errors.append(field_invalid(path, value, f"{where} in body should be greater "
                                                         f"than {self.minimum}"))
            elif value < self.minimum:
                errors.append(field_invalid(path, value, f"{where} in body should be greater "
                                                         f"than or equal to {self.minimum}"))
        if self.maximum is not None:
            if self.exclusive_maximum and value >= self.maximum:
                errors.append(field_invalid(path, value, f"{where} in body should be less "
                                                         f"than {self.maximum}"))
            elif value > self.maximum:
                errors.append(field_invalid(path, value, f"{where} in body should be less "
                                                         f"than or equal to {self.maximum}"))
        if self.multiple_of and (value / self.multiple_of) % 1:
            errors.append(field_invalid(path, value, f"{where} in body should be a multiple "
                                                     f"of {self.multiple_of}"))

    def _combinators(self, value: Any, path: str, errors: list[Cause]) -> None:
        for sub in self.all_of:
            sub.validate(value, path, None, False, errors)
        if self.any_of and not any(_passes(sub, value, path) for sub in self.any_of):
            errors.append(field_invalid(path, value, "must validate at least one schema "
                                                     "(anyOf)"))
        if self.one_of and sum(_passes(sub, value, path) for sub in self.one_of) != 1:
            errors.append(field_invalid(path, value, "must validate one and only one schema "
                                                     "(oneOf)"))
        if self.not_ is not None and _passes(self.not_, value, path):
            errors.append(field_invalid(path, value, "must not validate the schema (not)"))

    def _object(self, value: dict[str, Any], path: str, old: dict[str, Any] | None,
                errors: list[Cause]) -> None:
        prefix = f"{path}." if path else ""
        for name in self.required:
            if name not in value:
                errors.append(field_required(prefix + name))
        if self.embedded:
            _embedded_resource(value, prefix, errors)
        count = len(value)
        if self.max_properties is not None and count > self.max_properties:
            errors.append(Cause("FieldValueTooMany", f"Too many: {count}: must have at most "
                                                     f"{self.max_properties} items", path))
        if self.min_properties is not None and count < self.min_properties:
            errors.append(field_invalid(path, count, f"{_in_body(path)} in body should have "
                                                     f"at least {self.min_properties} "
                                                     "properties"))
        properties = self.properties
        for key, child_value in value.items():
            child = properties.get(key)
            if child is not None:
                child_path = prefix + key
            elif self.additional is not None:
                child = self.additional
                child_path = f"{path}[{key}]"
            else:
                continue
            if old is not None and key in old:
                child.validate(child_value, child_path, old[key], True, errors)
            else:
                child.validate(child_value, child_path, None, False, errors)

    def _array(self, value: list[Any], path: str, old: list[Any] | None,
               errors: list[Cause]) -> None:
        count = len(value)
        if self.max_items is not None and count > self.max_items:
            errors.append(Cause("FieldValueTooMany", f"Too many: {count}: must have at most "
                                                     f"{self.max_items} items", path))
        if self.min_items is not None and count < self.min_items:
            errors.append(field_invalid(path, count, f"{_in_body(path)} in body should have "
                                                     f"at least {self.min_items} items"))
        if self.list_type == "set":
            _check_set(value, path, errors)
        elif self.list_type == "map" and self.map_keys:
            _check_map_keys(value, self.map_keys, path, errors)
        items = self.items
        if items is None:
            return
        old_by_key = _old_items_by_key(old, self.map_keys) if (
            old is not None and self.list_type == "map" and self.map_keys) else None
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if old_by_key is not None and isinstance(item, dict):
                key = _map_key(item, self.map_keys)
                if key in old_by_key:
                    items.validate(item, item_path, old_by_key[key], True, errors)
                    continue
            items.validate(item, item_path, None, False, errors)

    def _run_rules(self, value: Any, path: str, old: Any, has_old: bool,
                   errors: list[Cause]) -> None:
        budget = _CEL_BUDGET.get()
        if budget is not None and budget.exhausted:
            return
        convert = self.converter
        cel_value = convert(value) if convert else value
        cel_old = (convert(old) if convert else old) if has_old else None
        for program in self.rules:
            if program.transition and not has_old and not program.optional_old_self:
                continue
            if budget is not None and time.monotonic() > budget.deadline:
                budget.exhausted = True
                errors.append(field_invalid(path, self.type_name, BUDGET_EXHAUSTED))
                return
            outcome = program.evaluate(cel_value, cel_old, has_old=has_old)
            if not outcome.passed:
                errors.append(self._rule_cause(outcome, path))

    def _rule_cause(self, outcome: RuleOutcome, path: str) -> Cause:
        if outcome.evaluation_error:
            return field_invalid(path, self.type_name, outcome.message)
        target = path + outcome.field_path if outcome.field_path else path
        if target.startswith("."):
            target = target[1:]
        reason = outcome.reason
        if reason == "FieldValueForbidden":
            return Cause(reason, f"Forbidden: {outcome.message}", target)
        if reason == "FieldValueRequired":
            return Cause(reason, f"Required value: {outcome.message}", target)
        if reason == "FieldValueDuplicate":
            return Cause(reason, f'Duplicate value: "{self.type_name}"', target)
        return field_invalid(target, self.type_name, outcome.message)


def _compile_rules(schema: Mapping[str, Any]) -> list[CelProgram]:
    programs: list[CelProgram] = []
    for entry in schema.get("x-kubernetes-validations") or []:
        compiled = compile_rule(entry, path="x-kubernetes-validations")
        if isinstance(compiled, CelProgram):
            programs.append(compiled)
        else:
            raise ValueError("; ".join(c.message for c in compiled))
    return programs


def _passes(node: _Node, value: Any, path: str) -> bool:
    scratch: list[Cause] = []
    node.validate(value, path, None, False, scratch)
    return not scratch


def _embedded_resource(value: Mapping[str, Any], prefix: str, errors: list[Cause]) -> None:
    for name in ("apiVersion", "kind"):
        if not value.get(name):
            errors.append(field_required(prefix + name, "Required value: must not be empty"))
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(Cause("FieldValueTypeInvalid",
                            f"Invalid value: \"{_json_type(metadata)}\": {prefix}metadata in "
                            "body must be of type object", prefix + "metadata"))


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return ("d", tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("l", tuple(_hashable(v) for v in value))
    return (type(value).__name__, value)


def _check_set(value: list[Any], path: str, errors: list[Cause]) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(value):
        key = _hashable(item)
        if key in seen:
            errors.append(Cause("FieldValueDuplicate", f"Duplicate value: {_go_value(item)}",
                                f"{path}[{i}]"))
        seen.add(key)


def _map_key(item: Mapping[str, Any], keys: list[str]) -> Any:
    return tuple(_hashable(item.get(k)) for k in keys)


def _check_map_keys(value: list[Any], keys: list[str], path: str, errors: list[Cause]) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        key = _map_key(item, keys)
        if key in seen:
            shown = {k: item[k] for k in keys if k in item}
            errors.append(Cause("FieldValueDuplicate", f"Duplicate value: {_go_value(shown)}",
                                f"{path}[{i}]"))
        seen.add(key)


def _old_items_by_key(old: list[Any], keys: list[str]) -> dict[Any, Any]:
    return {_map_key(item, keys): item for item in old if isinstance(item, dict)}


class SchemaValidator:
    """A version's ``openAPIV3Schema``, compiled once, checking objects on every write."""

    __slots__ = ("_root",)

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._root = _Node(_without_metadata(schema))

    def validate(self, obj: Mapping[str, Any], *,
                 old: Mapping[str, Any] | None = None) -> list[Cause]:
        """Every violation of the schema by ``obj`` (``old`` enables transition rules)."""
        errors: list[Cause] = []
        token = _CEL_BUDGET.set(_CelBudget(time.monotonic() + CEL_BUDGET_SECONDS))
        try:
            self._root.validate(obj if isinstance(obj, dict) else dict(obj), "",
                                old, old is not None, errors)
        finally:
            _CEL_BUDGET.reset(token)
        return errors


# One write's validation rules, all together, may run this long. Upstream budgets the CEL
# cost of a request (10 million units, which it reckons at about a second); one object
# with a costly rule on every item of a long list must not hold the one event loop every
# tenant shares for minutes. Past it, no further rule runs and the write is refused.
CEL_BUDGET_SECONDS = 1.0


class _CelBudget:
    __slots__ = ("deadline", "exhausted")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.exhausted = False


_CEL_BUDGET: ContextVar[_CelBudget | None] = ContextVar("kplane_cel_budget", default=None)


def _without_metadata(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    # The resource's own metadata belongs to the Store; only its schema node is dropped.
    props = schema.get("properties")
    if isinstance(props, Mapping) and "metadata" in props:
        return {**schema, "properties": {k: v for k, v in props.items() if k != "metadata"}}
    return schema
