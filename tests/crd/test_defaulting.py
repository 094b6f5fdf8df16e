"""Tests for kplane.crd.defaulting: top-down defaults, null handling, pruning helper."""

from __future__ import annotations

from typing import Any

from kplane.apimachinery.fieldcheck import check_fields
from kplane.apimachinery.typeinfo import TypeNode
from kplane.crd.defaulting import apply_defaults, prune_to_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "auto"},
                "note": {"type": "string", "nullable": True, "default": "n"},
                "extra": {"type": "string"},
                "tls": {"type": "object", "default": {},
                        "properties": {"port": {"type": "integer", "default": 443}}},
                "opts": {"type": "object", "properties": {"x": {"type": "integer",
                                                                 "default": 7}}},
                "rules": {"type": "array", "items": {"type": "object", "properties": {
                    "weight": {"type": "integer", "default": 1}}}},
                "labels": {"type": "object", "additionalProperties": {
                    "type": "string", "default": "d"}},
            },
        },
    },
}


def test_defaults_fill_absent_fields_top_down() -> None:
    obj: dict[str, Any] = {"spec": {"rules": [{}, {"weight": 5}]}}
    apply_defaults(obj, SCHEMA)
    assert obj == {"spec": {"replicas": 1, "mode": "auto", "note": "n", "tls": {"port": 443},
                            "rules": [{"weight": 1}, {"weight": 5}]}}


def test_no_parent_no_default() -> None:
    obj: dict[str, Any] = {}
    apply_defaults(obj, SCHEMA)
    assert obj == {}


def test_null_handling() -> None:
    obj: dict[str, Any] = {"spec": {"replicas": None, "note": None, "extra": None,
                                    "labels": {"a": None}}}
    apply_defaults(obj, SCHEMA)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["note"] is None
    assert "extra" not in obj["spec"]
    assert obj["spec"]["labels"] == {"a": "d"}


def test_defaults_are_copied() -> None:
    first: dict[str, Any] = {"spec": {}}
    second: dict[str, Any] = {"spec": {}}
    apply_defaults(first, SCHEMA)
    apply_defaults(second, SCHEMA)
    first["spec"]["tls"]["port"] = 1
    assert second["spec"]["tls"]["port"] == 443


def test_prune_to_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"},
                                               "e": {"type": "object",
                                                     "x-kubernetes-embedded-resource": True,
                                                     "properties": {"spec": {"type": "object"}}},
                                               "p": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}}}
    value = {"a": "x", "b": 1, "e": {"kind": "K", "apiVersion": "v1", "spec": {}, "z": 1},
             "p": {"q": 1}}
    assert prune_to_schema(value, schema) == {
        "a": "x", "e": {"kind": "K", "apiVersion": "v1", "spec": {}}, "p": {"q": 1}}


def test_fieldcheck_prunes_crd_objects() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "a": {"type": "string"},
            "e": {"type": "object", "x-kubernetes-embedded-resource": True,
                  "properties": {"spec": {"type": "object"}}},
            "p": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
           "spec": {"a": "x", "b": 1,
                    "e": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m"},
                          "spec": {}, "z": 1},
                    "p": {"q": {"r": 1}}}}
    check_fields(obj, TypeNode(schema), prune=True)
    assert obj == {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
                   "spec": {"a": "x",
                            "e": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m"},
                                  "spec": {}},
                            "p": {"q": {"r": 1}}}}
