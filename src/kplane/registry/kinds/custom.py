"""Strategies of CustomResourceDefinitions and of the custom resources they define.

A CRD is checked as a whole (structural schemas, names, versions, CEL rules compile) by
:mod:`kplane.crd.structural`. As upstream's CRD strategy, a new CRD gets the
``customresourcecleanup.apiextensions.k8s.io`` finalizer, and every write of its spec
records the storage version in ``status.storedVersions``; a version listed there may not
leave ``spec.versions`` (its objects would become unreadable) until a storage migration
takes it out of the list through the status subresource.

A custom resource is validated against its version's schema, defaulted, and keeps
``.status`` out of main-resource writes when the version has a status subresource;
``metadata.generation`` counts changes outside metadata and status. Objects are stored
with the storage version's apiVersion, first in the document, and served with the
requested version's (conversion strategy None rewrites nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from kplane.apimachinery.errors import Cause, field_invalid, field_required
from kplane.apimachinery.typeinfo import TypeNode
from kplane.crd.defaulting import apply_defaults
from kplane.crd.structural import check_crd_spec
from kplane.crd.validation import SchemaValidator
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy, lookup_field

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _apply_defaults(obj: dict[str, Any], schema: Mapping[str, Any]) -> None:
    apply_defaults(obj, schema)


def storage_version(spec: Mapping[str, Any]) -> str:
    """The name of the version marked ``storage`` ('' when none is)."""
    for version in spec.get("versions") or []:
        if isinstance(version, Mapping) and version.get("storage"):
            return str(version.get("name", ""))
    return ""


def _with_stored_version(status: Any, stored: str) -> dict[str, Any]:
    """``status`` (a copy) whose storedVersions include ``stored``."""
    current = dict(status) if isinstance(status, Mapping) else {}
    versions = current.get("storedVersions")
    versions = list(versions) if isinstance(versions, list) else []
    if stored not in versions:
        versions.append(stored)
    current["storedVersions"] = versions
    return current


def stored_versions_causes(crd: Mapping[str, Any]) -> list[Cause]:
    """Upstream's ValidateCustomResourceDefinitionStoredVersions: at least one stored
    version, the storage version among them, and each of them still in spec.versions."""
    path = "status.storedVersions"
    listed = (crd.get("status") or {}).get("storedVersions")
    stored = [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else []
    if not stored:
        return [Cause("FieldValueInvalid",
                      "Invalid value: []: must have at least one stored version", path)]
    causes: list[Cause] = []
    position = {name: index for index, name in enumerate(stored)}
    for version in (crd.get("spec") or {}).get("versions") or []:
        if not isinstance(version, Mapping):
            continue
        name = version.get("name")
        if version.get("storage") and name not in position:
            shown = orjson.dumps(stored).decode()
            causes.append(Cause("FieldValueInvalid",
                                f"Invalid value: {shown}: must have the storage version {name}",
                                path))
        position.pop(str(name), None)
    for name, index in sorted(position.items(), key=lambda item: item[1]):
        causes.append(field_invalid(
            f"{path}[{index}]", name,
            f"missing from spec.versions; {name} was previously a storage version, and must "
            f"remain in spec.versions until a storage migration ensures no data remains "
            f"persisted in {name} and removes {name} from status.storedVersions"))
    return causes


class CustomResourceDefinitionStrategy(Strategy):
    has_status_subresource = True

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        # Held until every object of the kind is gone (the CRD controller removes it).
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if CLEANUP_FINALIZER not in finalizers:
            obj["metadata"]["finalizers"] = [*finalizers, CLEANUP_FINALIZER]
        stored = storage_version(obj.get("spec") or {})
        obj["status"] = {"storedVersions": [stored]} if stored else {}

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        # The old status is shared with ``old``: build a new one rather than edit it.
        stored = storage_version(new.get("spec") or {})
        if stored:
            new["status"] = _with_stored_version(new.get("status"), stored)

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        name = str((obj.get("metadata") or {}).get("name", ""))
        return (check_crd_spec(obj.get("spec") or {}, name=name) + stored_versions_causes(obj)
                + api_approval_causes(obj))

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        # An unchanged spec is not checked again: metadata and status writes (removing the
        # cleanup finalizer, conditions, a storage migration's storedVersions) must work on
        # a CRD stored before a check existed, and upstream checks storedVersions only
        # with the spec.
        if new.get("spec") == old.get("spec"):
            if _approval(new) == _approval(old):
                return []
            return api_approval_causes(new)
        causes = check_crd_spec(new.get("spec") or {},
                                name=str((new.get("metadata") or {}).get("name", "")))
        causes += stored_versions_causes(new)
        # As upstream: an approval annotation that did not change is not judged again.
        if _approval(new) != _approval(old):
            causes += api_approval_causes(new)
        return causes


API_APPROVED_ANNOTATION = "api-approved.kubernetes.io"
_APPROVAL_RULE = 'protected groups must have approval annotation "api-approved.kubernetes.io"'
_APPROVAL_SEE = "see https://github.com/kubernetes/enhancements/pull/1111"


def _approval(crd: Mapping[str, Any]) -> Any:
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    return annotations.get(API_APPROVED_ANNOTATION) if isinstance(annotations, Mapping) else None


def _is_protected_group(group: str) -> bool:
    """The Kubernetes project's own API groups, whose new APIs need its approval."""
    return group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))


def api_approval_causes(crd: Mapping[str, Any]) -> list[Cause]:
    """Upstream's API approval rule: a CRD in a protected group names the approval (a URL)
    or says why it has none (a reason starting with "unapproved")."""
    group = (crd.get("spec") or {}).get("group")
    if not isinstance(group, str) or not _is_protected_group(group):
        return []
    field = f"metadata.annotations[{API_APPROVED_ANNOTATION}]"
    value = _approval(crd)
    if not value:
        return [field_required(field, f"Required value: {_APPROVAL_RULE}, {_APPROVAL_SEE}")]
    if not isinstance(value, str):
        return [field_invalid(field, value, f"{_APPROVAL_RULE}, {_APPROVAL_SEE}")]
    if value.startswith("unapproved"):
        return []
    parsed = urlsplit(value)
    if parsed.scheme and parsed.netloc:
        return []
    return [field_invalid(field, value, f'{_APPROVAL_RULE} with either a URL or a reason '
                                        f'starting with "unapproved", {_APPROVAL_SEE}')]


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
        # Stored documents start with their apiVersion (see storage_form), so one prefix
        # test tells whether cached bytes are already in this version.
        self._served_prefix = b'{"apiVersion":' + orjson.dumps(rt.api_version) + b","

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CustomResourceStrategy) and other.rt == self.rt
                and other._schema_dict == self._schema_dict
                and other.printer_columns == self.printer_columns
                and other.storage_api_version == self.storage_api_version)

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
        """Objects are stored under the storage version (conversion strategy None), with
        ``apiVersion`` as the document's first member."""
        if next(iter(obj), None) == "apiVersion" and obj["apiVersion"] == self.storage_api_version:
            return obj
        rest = {key: value for key, value in obj.items() if key != "apiVersion"}
        return {"apiVersion": self.storage_api_version, **rest}

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["apiVersion"] = self.rt.api_version
        return obj

    def read_bytes(self, raw: bytes) -> bytes:
        # Objects written under an earlier storage version, or by an earlier kplane that
        # did not put apiVersion first, take the slow path.
        if raw.startswith(self._served_prefix):
            return raw
        return orjson.dumps(self.reading_form(orjson.loads(raw)))
