"""Strategies of CustomResourceDefinitions and of the custom resources they define.

A CRD is checked as a whole (structural schemas, names, versions, CEL rules compile) by
:mod:`kplane.crd.structural`. A custom resource is validated against its version's
schema, defaulted, and keeps ``.status`` out of main-resource writes when the version has
a status subresource; ``metadata.generation`` counts changes outside metadata and status.
Objects are stored with the storage version's apiVersion and served with the requested
version's (conversion strategy None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from kplane.apimachinery.errors import Cause
from kplane.apimachinery.typeinfo import TypeNode
from kplane.crd.defaulting import apply_defaults
from kplane.crd.structural import check_crd_spec
from kplane.crd.validation import SchemaValidator
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy, lookup_field

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _apply_defaults(obj: dict[str, Any], schema: Mapping[str, Any]) -> None:
    apply_defaults(obj, schema)


class CustomResourceDefinitionStrategy(Strategy):
    has_status_subresource = True

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        # Held until every object of the kind is gone (the CRD controller removes it).
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if CLEANUP_FINALIZER not in finalizers:
            obj["metadata"]["finalizers"] = [*finalizers, CLEANUP_FINALIZER]

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        name = str((obj.get("metadata") or {}).get("name", ""))
        return check_crd_spec(obj.get("spec") or {}, name=name)


DEFAULT_PRINTER_COLUMNS: list[Mapping[str, Any]] = [{
    "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
    "description": "CreationTimestamp is a timestamp representing the server time when this "
                   "object was created.",
}]


class CustomResourceStrategy(Strategy):
    tracks_generation = True
    # The schema validator reports wrong types as 422 causes, as upstream does for CRs.
    type_errors_are_bad_requests = False

    def __init__(self, rt: ResourceType, *, version: Mapping[str, Any],
                 storage_version: str) -> None:
        schema = ((version.get("schema") or {}).get("openAPIV3Schema")
                  or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        super().__init__(rt, TypeNode(schema))
        self._schema_dict: Mapping[str, Any] = schema
        self._validator = SchemaValidator(schema)
        self.has_status_subresource = "status" in (version.get("subresources") or {})
        scale = (version.get("subresources") or {}).get("scale")
        self.scale_paths: Mapping[str, str] | None = scale if isinstance(scale, Mapping) else None
        self.printer_columns: list[Mapping[str, Any]] = list(
            version.get("additionalPrinterColumns") or [])
        self.storage_api_version = (f"{rt.group}/{storage_version}"
                                    if storage_version else rt.api_version)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CustomResourceStrategy) and other.rt == self.rt
                and other._schema_dict == self._schema_dict
                and other.printer_columns == self.printer_columns)

    def __hash__(self) -> int:
        return hash(self.rt)

    def printer_columns_for_table(self) -> list[Mapping[str, Any]] | None:
        # As upstream serves a version without columns: Name, then Age.
        return self.printer_columns or DEFAULT_PRINTER_COLUMNS

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        _apply_defaults(obj, self._schema_dict)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        _apply_defaults(new, self._schema_dict)

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        return self._validator.validate(obj)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self._validator.validate(new, old=old)

    def selectable_fields(self, obj: Mapping[str, Any]) -> dict[str, str]:
        fields = super().selectable_fields(obj)
        for path in self.rt.selectable_fields:
            fields[path] = lookup_field(obj, path)
        return fields

    def published_schema(self) -> tuple[str, Mapping[str, Any]] | None:
        group = ".".join(reversed(self.rt.group.split(".")))
        return f"{group}.{self.rt.version}.{self.rt.kind}", self._schema_dict

    def storage_form(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        """Objects are stored under the storage version (conversion strategy None)."""
        if obj.get("apiVersion") == self.storage_api_version:
            return obj
        return {**obj, "apiVersion": self.storage_api_version}

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["apiVersion"] = self.rt.api_version
        return obj

    def read_bytes(self, raw: bytes) -> bytes:
        if self.rt.api_version == self.storage_api_version:
            return raw
        return orjson.dumps(self.reading_form(orjson.loads(raw)))
