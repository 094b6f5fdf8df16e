"""Checking a CustomResourceDefinition spec before it is stored: names, versions, schemas.

kube-apiserver refuses a v1 CRD whose schema is not *structural* (every node typed, no
``$ref`` and friends), whose CEL rules do not compile, whose defaults do not validate, or
whose subresources, printer columns and selectable fields point nowhere. This module gives
the same answers as a list of causes with upstream's field paths
(``spec.versions[0].schema.openAPIV3Schema.properties[spec].type``), so the registry can
answer 422 with all of them at once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from kplane.apimachinery.errors import (
    Cause,
    field_forbidden,
    field_invalid,
    field_not_supported,
    field_required,
)
from kplane.apimachinery.regex import InvalidPatternError, compile_pattern
from kplane.crd.cel import CelProgram, compile_rule

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_FORBIDDEN_KEYWORDS = ("$ref", "definitions", "patternProperties", "dependencies",
                       "additionalItems", "$schema", "id")
_COLUMN_TYPES = ["integer", "number", "string", "boolean", "date"]
_SELECTABLE_TYPES = ("string", "integer", "boolean")
_JSON_PATH = re.compile(r"^(\.[^.\[\]]+|\[[^\]]+\])+$")


def check_crd_spec(spec: Mapping[str, Any], *, name: str) -> list[Cause]:
    """Every reason the CRD ``spec`` (with ``metadata.name`` = ``name``) is invalid."""
    causes: list[Cause] = []
    group = spec.get("group")
    if not group:
        causes.append(field_required("spec.group"))
    elif not isinstance(group, str) or not _DNS_SUBDOMAIN.match(group) or "." not in group:
        causes.append(field_invalid("spec.group", group, "should be a domain with at least "
                                                         "one dot"))
    raw_names = spec.get("names")
    names: Mapping[str, Any] = raw_names if isinstance(raw_names, Mapping) else {}
    causes += _check_names(names, name=name, group=str(group or ""))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(field_not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    causes += _check_versions(spec.get("versions"))
    causes += _check_conversion(spec.get("conversion"))
    return causes


def _check_names(names: Mapping[str, Any], *, name: str, group: str) -> list[Cause]:
    causes: list[Cause] = []
    plural = names.get("plural")
    if not plural:
        causes.append(field_required("spec.names.plural"))
    elif not _DNS_LABEL.match(str(plural)):
        causes.append(field_invalid("spec.names.plural", plural,
                                    "a lowercase RFC 1123 label must consist of lower case "
                                    "alphanumeric characters or '-'"))
    if plural and group and name != f"{plural}.{group}":
        causes.append(field_invalid("metadata.name", name,
                                    "must be spec.names.plural+\".\"+spec.group"))
    singular = names.get("singular")
    if singular and not _DNS_LABEL.match(str(singular)):
        causes.append(field_invalid("spec.names.singular", singular,
                                    "a lowercase RFC 1123 label must consist of lower case "
                                    "alphanumeric characters or '-'"))
    for field in ("kind", "listKind"):
        value = names.get(field)
        if field == "kind" and not value:
            causes.append(field_required("spec.names.kind"))
        elif value and not _KIND.match(str(value)):
            causes.append(field_invalid(f"spec.names.{field}", value,
                                        "may have mixed case, but should otherwise match: "
                                        "[a-z]([-a-z0-9]*[a-z0-9])?"))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        causes.append(field_invalid("spec.names.listKind", names.get("listKind"),
                                    "kind and listKind may not be the same"))
    for field in ("shortNames", "categories"):
        for i, entry in enumerate(names.get(field) or []):
            if not isinstance(entry, str) or not _DNS_LABEL.match(entry):
                causes.append(field_invalid(f"spec.names.{field}[{i}]", entry,
                                            "a lowercase RFC 1123 label must consist of lower "
                                            "case alphanumeric characters or '-'"))
    return causes


def _check_conversion(conversion: Any) -> list[Cause]:
    if not isinstance(conversion, Mapping):
        return []
    strategy = conversion.get("strategy", "None")
    if strategy == "Webhook":
        return [Cause("FieldValueNotSupported", 'Unsupported value: "Webhook": kplane supports '
                      'only conversion strategy "None"', "spec.conversion.strategy")]
    if strategy != "None":
        return [field_not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"])]
    return []


def _check_versions(versions: Any) -> list[Cause]:
    if not isinstance(versions, list) or not versions:
        return [field_invalid("spec.versions", versions if versions else "null",
                              "must have exactly one version marked as storage version")]
    causes: list[Cause] = []
    seen: set[str] = set()
    storage = 0
    for i, version in enumerate(versions):
        path = f"spec.versions[{i}]"
        if not isinstance(version, Mapping):
            causes.append(field_invalid(path, version, "must be an object"))
            continue
        version_name = str(version.get("name") or "")
        if not version_name:
            causes.append(field_required(f"{path}.name"))
        elif not _VERSION.match(version_name):
            causes.append(field_invalid(f"{path}.name", version_name,
                                        "a DNS-1035 label must consist of lower case "
                                        "alphanumeric characters or '-'"))
        elif version_name in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{version_name}"',
                                f"{path}.name"))
        seen.add(version_name)
        storage += bool(version.get("storage"))
        causes += _check_version(version, path)
    if storage != 1:
        causes.append(field_invalid("spec.versions", storage,
                                    "must have exactly one version marked as storage version"))
    if not any(isinstance(v, Mapping) and v.get("served") for v in versions):
        causes.append(field_invalid("spec.versions", "",
                                    "must have at least one version marked as served"))
    return causes


def _check_version(version: Mapping[str, Any], path: str) -> list[Cause]:
    schema_holder = version.get("schema")
    schema = schema_holder.get("openAPIV3Schema") if isinstance(schema_holder, Mapping) else None
    schema_path = f"{path}.schema.openAPIV3Schema"
    if not isinstance(schema, Mapping):
        return [field_required(schema_path, "Required value: schemas are required")]
    causes = check_structural_schema(schema, path=schema_path)
    if causes:
        return causes
    causes += _check_subresources(version.get("subresources"), schema, path)
    causes += _check_printer_columns(version.get("additionalPrinterColumns"), schema, path)
    causes += _check_selectable_fields(version.get("selectableFields"), schema, path)
    return causes


def check_structural_schema(schema: Mapping[str, Any], *, path: str) -> list[Cause]:
    """Structural-schema violations, CEL compile errors and invalid defaults of one schema."""
    causes: list[Cause] = []
    if schema.get("type") != "object":
        causes.append(field_required(f"{path}.type", "Required value: must be object at the "
                                                     "root"))
    _walk(schema, path, causes, root=True, correlatable=True)
    metadata = (schema.get("properties") or {}).get("metadata")
    if isinstance(metadata, Mapping):
        causes += _check_root_metadata(metadata, f"{path}.properties[metadata]")
    return causes


def _check_root_metadata(metadata: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if metadata.get("type") not in (None, "object"):
        causes.append(field_invalid(f"{path}.type", metadata.get("type"), "must be object"))
    for key in metadata:
        if key not in ("type", "properties", "description"):
            causes.append(field_forbidden(f"{path}.{key}", "must not be specified"))
    props = metadata.get("properties") or {}
    for prop in props:
        if prop not in ("name", "generateName"):
            causes.append(field_forbidden(f"{path}.properties[{prop}]",
                                          "must not be specified"))
    return causes


def _walk(schema: Mapping[str, Any], path: str, causes: list[Cause], *, root: bool = False,
          correlatable: bool, in_value_validation: bool = False) -> None:
    for keyword in _FORBIDDEN_KEYWORDS:
        if keyword in schema:
            causes.append(field_forbidden(f"{path}.{keyword}", f"{keyword} is not supported"))
    if schema.get("uniqueItems") is True:
        causes.append(field_forbidden(f"{path}.uniqueItems",
                                      "uniqueItems cannot be set to true since the runtime "
                                      "complexity becomes quadratic"))
    additional = schema.get("additionalProperties")
    if additional is False:
        causes.append(field_forbidden(f"{path}.additionalProperties",
                                      "additionalProperties cannot be set to false"))
    if isinstance(additional, Mapping) and "properties" in schema:
        causes.append(field_forbidden(f"{path}.additionalProperties",
                                      "additionalProperties and properties are mutual "
                                      "exclusive"))
    _check_type(schema, path, causes, in_value_validation=in_value_validation)
    _check_pattern(schema, path, causes)
    _check_list_type(schema, path, causes)
    _check_rules(schema, path, causes, correlatable=correlatable)
    if "default" in schema and not in_value_validation:
        _check_default(schema, path, causes)
    for name, child in (schema.get("properties") or {}).items():
        if isinstance(child, Mapping) and not (root and name == "metadata"):
            _walk(child, f"{path}.properties[{name}]", causes, correlatable=correlatable,
                  in_value_validation=in_value_validation)
    if isinstance(additional, Mapping):
        _walk(additional, f"{path}.additionalProperties", causes, correlatable=correlatable,
              in_value_validation=in_value_validation)
    items = schema.get("items")
    if isinstance(items, Mapping):
        item_correlatable = correlatable and schema.get("x-kubernetes-list-type") == "map"
        _walk(items, f"{path}.items", causes, correlatable=item_correlatable,
              in_value_validation=in_value_validation)
    elif isinstance(items, list):
        causes.append(field_forbidden(f"{path}.items", "items must be a schema object and not "
                                                       "an array"))
    elif schema.get("type") == "array" and not in_value_validation:
        causes.append(field_required(f"{path}.items", "Required value: must be specified"))
    for combinator in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(combinator) or []):
            if isinstance(sub, Mapping):
                _walk(sub, f"{path}.{combinator}[{i}]", causes, correlatable=False,
                      in_value_validation=True)
    if isinstance(schema.get("not"), Mapping):
        _walk(schema["not"], f"{path}.not", causes, correlatable=False, in_value_validation=True)


def _check_type(schema: Mapping[str, Any], path: str, causes: list[Cause], *,
                in_value_validation: bool) -> None:
    declared = schema.get("type")
    if in_value_validation:
        # Inside allOf/anyOf/oneOf/not, upstream forbids type-shaping keywords entirely.
        # ``type`` stays allowed: anyOf [{type: integer}, {type: string}] is the int-or-string
        # idiom generated CRDs use.
        for keyword in ("additionalProperties", "x-kubernetes-preserve-unknown-fields",
                        "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
                        "default", "nullable"):
            if keyword in schema:
                causes.append(field_forbidden(f"{path}.{keyword}",
                                              "must be undefined to be structural"))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if declared is not None:
            causes.append(field_forbidden(f"{path}.type", "must be empty for "
                                          "x-kubernetes-int-or-string"))
        return
    if declared is None:
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            causes.append(field_required(f"{path}.type", "Required value: must not be empty "
                                                         "for specified object fields"))
        return
    if declared not in _TYPES:
        causes.append(field_not_supported(f"{path}.type", declared, list(_TYPES)))
    if schema.get("x-kubernetes-embedded-resource") and declared != "object":
        causes.append(field_invalid(f"{path}.type", declared,
                                    "must be object if x-kubernetes-embedded-resource is true"))
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        causes.append(field_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False,
                                    "must be true or undefined"))


def _check_pattern(schema: Mapping[str, Any], path: str, causes: list[Cause]) -> None:
    pattern = schema.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        return
    try:
        compile_pattern(pattern)
    except InvalidPatternError as error:
        causes.append(field_invalid(f"{path}.pattern", pattern,
                                    f"must be a valid regular expression, but isn't: {error}"))


def _check_list_type(schema: Mapping[str, Any], path: str, causes: list[Cause]) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys")
    if list_type is None:
        if keys is not None:
            causes.append(field_required(f"{path}.x-kubernetes-list-type",
                                         "Required value: must be map if "
                                         "x-kubernetes-list-map-keys is non-empty"))
        return
    if list_type not in ("atomic", "set", "map"):
        causes.append(field_not_supported(f"{path}.x-kubernetes-list-type", list_type,
                                          ["atomic", "map", "set"]))
        return
    if schema.get("type") != "array":
        causes.append(field_invalid(f"{path}.type", schema.get("type"),
                                    "must be array if x-kubernetes-list-type is specified"))
        return
    raw_items = schema.get("items")
    items: Mapping[str, Any] = raw_items if isinstance(raw_items, Mapping) else {}
    if list_type == "map":
        _check_map_list(items, keys, path, causes)
    elif keys:
        causes.append(field_invalid(f"{path}.x-kubernetes-list-type", list_type,
                                    "must be map if x-kubernetes-list-map-keys is non-empty"))
    if list_type == "set" and items.get("type") in ("object", "array"):
        causes.append(field_invalid(f"{path}.items.type", items.get("type"),
                                    "must be a scalar type if x-kubernetes-list-type is set"))


def _check_map_list(items: Mapping[str, Any], keys: Any, path: str,
                    causes: list[Cause]) -> None:
    if not keys:
        causes.append(field_required(f"{path}.x-kubernetes-list-map-keys",
                                     "Required value: must not be empty if "
                                     "x-kubernetes-list-type is map"))
        return
    if items.get("type") != "object":
        causes.append(field_invalid(f"{path}.items.type", items.get("type"),
                                    "must be object if parent array's x-kubernetes-list-type "
                                    "is map"))
        return
    props = items.get("properties") or {}
    required = set(items.get("required") or [])
    for i, key in enumerate(keys):
        key_schema = props.get(key)
        if not isinstance(key_schema, Mapping):
            causes.append(field_required(f"{path}.items.properties[{key}]",
                                         "Required value: entries for all "
                                         "x-kubernetes-list-map-keys are required"))
            continue
        if key_schema.get("type") not in ("string", "integer", "number", "boolean") \
                and not key_schema.get("x-kubernetes-int-or-string"):
            causes.append(field_invalid(f"{path}.items.properties[{key}].type",
                                        key_schema.get("type"),
                                        "must be a scalar type if parent array's "
                                        "x-kubernetes-list-type is map"))
        if key not in required and "default" not in key_schema:
            causes.append(field_required(f"{path}.x-kubernetes-list-map-keys[{i}]",
                                         "Required value: all map keys must be required or "
                                         "have a default value"))


def _check_rules(schema: Mapping[str, Any], path: str, causes: list[Cause], *,
                 correlatable: bool) -> None:
    for i, entry in enumerate(schema.get("x-kubernetes-validations") or []):
        entry_path = f"{path}.x-kubernetes-validations[{i}]"
        if not isinstance(entry, Mapping):
            causes.append(field_invalid(entry_path, entry, "must be an object"))
            continue
        _check_rule_field_path(schema, entry.get("fieldPath"), f"{entry_path}.fieldPath", causes)
        compiled = compile_rule(entry, path=entry_path, correlatable=correlatable)
        if not isinstance(compiled, CelProgram):
            causes.extend(compiled)


def _check_rule_field_path(schema: Mapping[str, Any], field_path: Any, path: str,
                           causes: list[Cause]) -> None:
    """A rule's ``fieldPath`` must name a field below the rule's schema, as upstream checks
    it: ``.name`` and ``['name']`` steps through properties or map keys, nothing else."""
    if not isinstance(field_path, str) or not field_path:
        return
    if not field_path.strip():
        causes.append(field_invalid(path, field_path, "fieldPath must be non-empty if specified"))
        return
    if "\n" in field_path or "\r" in field_path:
        causes.append(field_invalid(path, field_path, "fieldPath must not contain line breaks"))
        return
    problem = _field_path_problem(schema, field_path)
    if problem:
        causes.append(field_invalid(path, field_path,
                                    f"fieldPath must be a valid path: {problem}"))


_FIELD_PATH_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|[.\[\]]|[^.\[\]']+|'")


def _field_path_problem(schema: Mapping[str, Any], field_path: str) -> str:
    """Why ``field_path`` does not walk ``schema`` ('' when it does)."""
    tokens = _FIELD_PATH_TOKEN.findall(field_path)
    node: Mapping[str, Any] = schema
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == ".":
            if position + 1 >= len(tokens):
                return "unexpected end of JSON path"
            name = tokens[position + 1]
            position += 2
        elif token == "[":
            if position + 1 >= len(tokens):
                return "unexpected end of JSON path"
            quoted = tokens[position + 1]
            if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'":
                return f"expected single quoted string but got {quoted}"
            name = re.sub(r"\\(.)", r"\1", quoted[1:-1])
            if position + 2 >= len(tokens):
                return "unexpected end of JSON path"
            if tokens[position + 2] != "]":
                return f"expected ] but got {tokens[position + 2]}"
            position += 3
        else:
            return f"expected [ or . but got: {token}"
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        if isinstance(properties, Mapping):
            child = properties.get(name)
            if not isinstance(child, Mapping):
                return "does not refer to a valid field"
            node = child
        elif isinstance(additional, Mapping):
            node = additional
        else:
            return "does not refer to a valid field"
    return ""


def _check_default(schema: Mapping[str, Any], path: str, causes: list[Cause]) -> None:
    from kplane.crd.defaulting import apply_defaults, prune_to_schema
    from kplane.crd.validation import SchemaValidator

    default = schema["default"]
    if default is None and not schema.get("nullable"):
        causes.append(field_invalid(f"{path}.default", None, "must not be null for "
                                                             "non-nullable schema"))
        return
    # The default is validated as the field ``default`` of a wrapper object, so each problem's
    # path reads ``default.<below>`` and is re-rooted under the schema's path.
    wrapper = {"type": "object", "properties": {"default": schema}}
    value = {"default": copy.deepcopy(default)}
    apply_defaults(value, wrapper)
    pruned = prune_to_schema(copy.deepcopy(value["default"]), schema)
    if pruned != value["default"]:
        causes.append(field_invalid(f"{path}.default", default,
                                    "must not have unknown fields"))
    try:
        problems = SchemaValidator(wrapper).validate(value)
    except (ValueError, TypeError):
        return
    # As upstream's ValidateDefaults: each problem keeps its own kind (Unsupported value,
    # Too long, Required value, wrong type) rather than becoming a generic Invalid value.
    causes.extend(Cause(problem.reason, problem.message, f"{path}.{problem.field}")
                  for problem in problems)


def _schema_at(schema: Mapping[str, Any], json_path: str) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for part in re.findall(r"\.([^.\[\]]+)|\[([^\]]+)\]", json_path):
        name = part[0] or part[1].strip("'\"")
        if node is None:
            return None
        props = node.get("properties")
        if isinstance(props, Mapping) and name in props:
            node = props[name]
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        elif node.get("x-kubernetes-preserve-unknown-fields"):
            return {}
        else:
            return None
    return node


# (field, required, prefixes it must start with, how upstream names them in the message)
_SCALE_PATHS = (("specReplicasPath", True, (".spec.",), ".spec"),
                ("statusReplicasPath", True, (".status.",), ".status"),
                ("labelSelectorPath", False, (".spec.", ".status."), "either .spec or .status"))


def _check_subresources(subresources: Any, schema: Mapping[str, Any], path: str) -> list[Cause]:
    """Upstream's ValidateCustomResourceDefinitionSubresources, plus the shapes its decoder
    enforces: ``status`` and ``scale`` are objects when present (null means absent)."""
    if subresources is None:
        return []
    sub_path = f"{path}.subresources"
    if not isinstance(subresources, Mapping):
        return [field_invalid(sub_path, subresources, "must be an object")]
    causes: list[Cause] = []
    status = subresources.get("status")
    if status is not None and not isinstance(status, Mapping):
        # Upstream cannot decode it (400); a string here would otherwise turn the status
        # subresource on, since only the key's presence is looked at.
        causes.append(field_invalid(f"{sub_path}.status", status, "must be an object"))
    scale = subresources.get("scale")
    if scale is None:
        return causes
    if not isinstance(scale, Mapping):
        causes.append(field_invalid(f"{sub_path}.scale", scale, "must be an object"))
        return causes
    return causes + _check_scale(scale, schema, f"{sub_path}.scale")


def _check_scale(scale: Mapping[str, Any], schema: Mapping[str, Any],
                 scale_path: str) -> list[Cause]:
    causes: list[Cause] = []
    for field, required, prefixes, under in _SCALE_PATHS:
        value = scale.get(field)
        field_path = f"{scale_path}.{field}"
        if not value:
            if required:
                causes.append(field_required(field_path))
            continue
        text = str(value)
        if not text.startswith("."):
            causes.append(field_invalid(field_path, value,
                                        "must be a simple json path starting with ."))
            continue
        if not text.startswith(prefixes):
            causes.append(field_invalid(field_path, value, f"should be a json path under {under}"))
            continue
        if not _JSON_PATH.match(text):
            # Stricter than upstream, which lets ".spec..x" through to name no field at all.
            causes.append(field_invalid(field_path, value,
                                        "must be a json path in the dot notation"))
            continue
        target = _schema_at(schema, text)
        if field == "specReplicasPath" and (target is None or (
                target and target.get("type") != "integer")):
            causes.append(field_invalid(field_path, value,
                                        "should be a json path to an integer field"))
    return causes


def _check_printer_columns(columns: Any, schema: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, column in enumerate(columns or []):
        column_path = f"{path}.additionalPrinterColumns[{i}]"
        if not isinstance(column, Mapping):
            causes.append(field_invalid(column_path, column, "must be an object"))
            continue
        if not column.get("name"):
            causes.append(field_required(f"{column_path}.name"))
        if column.get("type") not in _COLUMN_TYPES:
            causes.append(field_not_supported(f"{column_path}.type", column.get("type"),
                                              _COLUMN_TYPES))
        json_path = column.get("jsonPath")
        if not json_path:
            causes.append(field_required(f"{column_path}.jsonPath"))
        elif not _valid_column_path(str(json_path)):
            causes.append(field_invalid(f"{column_path}.jsonPath", json_path,
                                        "must be a simple json path"))
    return causes


def _valid_column_path(json_path: str) -> bool:
    body = json_path.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    return body.startswith(".") and body.count("(") == body.count(")") and \
        body.count("[") == body.count("]")


def _check_selectable_fields(fields: Any, schema: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, entry in enumerate(fields or []):
        entry_path = f"{path}.selectableFields[{i}].jsonPath"
        json_path = entry.get("jsonPath") if isinstance(entry, Mapping) else None
        if not json_path:
            causes.append(field_required(entry_path))
            continue
        if not _JSON_PATH.match(str(json_path)) or str(json_path).startswith(".metadata"):
            causes.append(field_invalid(entry_path, json_path, "must be a simple json path "
                                        "outside metadata"))
            continue
        target = _schema_at(schema, str(json_path))
        if target is None:
            causes.append(field_invalid(entry_path, json_path, "is an invalid path: does not "
                                                               "refer to a field"))
        elif target.get("type") not in _SELECTABLE_TYPES:
            causes.append(field_invalid(entry_path, json_path,
                                        "must point to a field of type string, boolean or "
                                        "integer"))
        if json_path in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{json_path}"',
                                entry_path))
        seen.add(str(json_path))
    return causes
