"""Applying a structural schema's ``default`` values to a custom resource, in place.

Upstream semantics: a default fills a field that is absent, or ``null`` when the field is
not nullable, and only where the parent object exists (defaults never create parents unless
the parent's own default does). The walk goes top-down, so a default that creates an object
gets its nested defaults applied too. A ``null`` in a non-nullable field without a default
is dropped, as kube-apiserver does before validation.

Also here: :func:`prune_to_schema`, the small pruning helper the CRD checks use to verify
that a default survives pruning unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def apply_defaults(obj: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Fill ``obj`` with the defaults of ``schema`` (a version's ``openAPIV3Schema``)."""
    _default_value(obj, schema)


def _default_value(value: Any, schema: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        _default_object(value, schema)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for item in value:
                _default_value(item, items)


def _default_object(value: dict[str, Any], schema: Mapping[str, Any]) -> None:
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, child in props.items():
            if not isinstance(child, Mapping):
                continue
            present = name in value
            if present and value[name] is None and not child.get("nullable"):
                if "default" in child:
                    value[name] = copy.deepcopy(child["default"])
                else:
                    del value[name]
                    continue
            elif not present and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default_value(value[name], child)
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        for key in list(value):
            if value[key] is None and not additional.get("nullable"):
                if "default" in additional:
                    value[key] = copy.deepcopy(additional["default"])
                else:
                    del value[key]
                    continue
            _default_value(value[key], additional)


def prune_to_schema(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` without the fields ``schema`` does not declare (kept where it preserves)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        if isinstance(props, Mapping):
            keep_resource_fields = bool(schema.get("x-kubernetes-embedded-resource"))
            return {k: prune_to_schema(v, props[k]) if k in props else v
                    for k, v in value.items()
                    if k in props or (keep_resource_fields
                                      and k in ("apiVersion", "kind", "metadata"))}
        if isinstance(additional, Mapping):
            return {k: prune_to_schema(v, additional) for k, v in value.items()}
        return {} if schema.get("type") == "object" else value
    if isinstance(value, list):
        items = schema.get("items")
        return [prune_to_schema(v, items) for v in value] if isinstance(items, Mapping) \
            else value
    return value
