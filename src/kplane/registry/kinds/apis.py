"""Strategies of kcp's ``apis.kcp.io`` kinds: APIResourceSchema, APIExport, APIBinding and
APIExportEndpointSlice.

A strategy gives its kind's schema, published definition, printer columns and defaults, and
applies the rules that look at one object alone (names that must match the spec, required
references, immutable fields, well-formed permission claims); the rules themselves are in
:mod:`kplane.registry.kinds.apis_validation`. What needs other objects (does the export
exist, may the user bind it, do names collide) belongs to the controllers and admission.

APIExport and APIBinding are stored in their ``v1alpha2`` form and also served as
``v1alpha1``: the ``v1alpha1`` strategies convert on the way in and out with
:mod:`kplane.registry.kinds.apis_conversion`, and check a ``v1alpha1`` write both as sent
and as it will be stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from kplane.apimachinery.errors import Cause, field_forbidden, field_not_supported, field_required
from kplane.apimachinery.typeinfo import TypeNode
from kplane.registry.kinds.apis_conversion import (
    ACCEPTABLE_CLAIMS_ANNOTATION,
    PERMISSION_CLAIMS_ANNOTATION,
    RESOURCE_SCHEMAS_ANNOTATION,
    V1ALPHA1,
    V1ALPHA2,
    binding_to_v1alpha1,
    binding_to_v1alpha2,
    export_to_v1alpha1,
    export_to_v1alpha2,
)
from kplane.registry.kinds.apis_schemas import (
    API_BINDING_SCHEMA,
    API_BINDING_V1ALPHA1_SCHEMA,
    API_EXPORT_ENDPOINT_SLICE_SCHEMA,
    API_EXPORT_SCHEMA,
    API_EXPORT_V1ALPHA1_SCHEMA,
    API_RESOURCE_SCHEMA_SCHEMA,
)
from kplane.registry.kinds.apis_validation import (
    NAME_VALIDATIONS,
    check_binding_claims,
    check_claims,
    check_export_reference,
    check_identity_hash_kept,
    check_latest_schemas,
    check_like_a_crd,
    check_phase_kept,
    check_resources,
    check_schema_group,
    check_schema_name,
    check_selectors_kept,
    check_stash,
    immutable,
    list_at,
    spec_of,
)
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _ready_column(condition: str) -> dict[str, Any]:
    return {"name": "Ready", "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{condition}")].status'}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class _APIsStrategy(Strategy):
    """A kind of apis.kcp.io: its schema, its /openapi/v3 definition and its columns."""

    kind_schema: Mapping[str, Any] = {}
    definition_name = ""
    columns: tuple[Mapping[str, Any], ...] = (_AGE,)

    def __init__(self, rt: ResourceType) -> None:
        super().__init__(rt, TypeNode(self.kind_schema))

    def published_schema(self) -> tuple[str, Mapping[str, Any]] | None:
        return self.definition_name, self.kind_schema

    def printer_columns_for_table(self) -> list[Mapping[str, Any]] | None:
        return list(self.columns)


# --- APIResourceSchema ---------------------------------------------------------------------


class APIResourceSchemaStrategy(_APIsStrategy):
    """An APIResourceSchema: a CRD-like spec, named ``<prefix>.<plural>.<group>``,
    immutable once created."""

    kind_schema = API_RESOURCE_SCHEMA_SCHEMA
    definition_name = "io.kcp.apis.v1alpha1.APIResourceSchema"

    def _default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("nameValidation", "DNS1123Subdomain")
        for version in spec.get("versions") or []:
            if isinstance(version, dict):
                version.setdefault("served", True)

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self._default(obj)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        # The same defaults as on create, so a PUT of the original manifest is no change.
        self._default(new)

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        spec = spec_of(obj, causes, required=True)
        if causes:
            return causes
        name = str(_mapping(obj.get("metadata")).get("name") or "")
        causes += check_schema_name(name, spec)
        causes += check_schema_group(spec.get("group"))
        names = _mapping(spec.get("names"))
        for field in ("singular", "listKind"):
            if not names.get(field):
                causes.append(field_required(f"spec.names.{field}"))
        validation = spec.get("nameValidation")
        if validation is not None and validation not in NAME_VALIDATIONS:
            causes.append(field_not_supported("spec.nameValidation", validation,
                                              NAME_VALIDATIONS))
        return causes + check_like_a_crd(spec)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + immutable(new, old, "spec")


# --- APIExport -----------------------------------------------------------------------------


class APIExportStrategy(_APIsStrategy):
    """APIExport v1alpha2, the stored form."""

    kind_schema = API_EXPORT_SCHEMA
    definition_name = "io.kcp.apis.v1alpha2.APIExport"
    has_status_subresource = True

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self._default(obj)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        self._default(new)

    def _default(self, obj: dict[str, Any]) -> None:
        # kcp's CRD defaults: a claim's group and identity hash are "", storage is a CRD.
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for claim in spec.get("permissionClaims") or []:
            if isinstance(claim, dict):
                claim.setdefault("group", "")
                claim.setdefault("identityHash", "")
        for resource in spec.get("resources") or []:
            if isinstance(resource, dict):
                resource.setdefault("storage", {"crd": {}})

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        spec = spec_of(obj, causes, required=False)
        causes += check_resources(list_at(spec, "resources", "spec.resources", causes),
                                  "spec.resources")
        claims = list_at(spec, "permissionClaims", "spec.permissionClaims", causes)
        causes += check_claims(claims, "spec.permissionClaims", version="v1alpha2",
                               keys=("group", "resource"))
        for i, claim in enumerate(claims):
            resource = claim.get("resource") if isinstance(claim, Mapping) else None
            if isinstance(resource, str) and "/" in resource and claim.get("defaultSelector"):
                causes.append(field_forbidden(f"spec.permissionClaims[{i}].defaultSelector",
                                              "defaultSelector is not allowed on subresource "
                                              "claims"))
        return causes

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + check_identity_hash_kept(new, old)


class _ServedAsV1Alpha1:
    """A v1alpha1 strategy of a kind stored as v1alpha2: converted on the way in and out
    with ``to_stored`` and ``to_served``."""

    to_stored: Callable[[Mapping[str, Any]], dict[str, Any]]
    to_served: Callable[[Mapping[str, Any]], dict[str, Any]]

    def storage_form(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        return obj if obj.get("apiVersion") == V1ALPHA2 else self.to_stored(obj)

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj if obj.get("apiVersion") == V1ALPHA1 else self.to_served(obj)

    def read_bytes(self, raw: bytes) -> bytes:
        return orjson.dumps(self.reading_form(orjson.loads(raw)))


class APIExportV1Alpha1Strategy(_ServedAsV1Alpha1, APIExportStrategy):
    """APIExport v1alpha1: served, converted to v1alpha2 for storage."""

    kind_schema = API_EXPORT_V1ALPHA1_SCHEMA
    definition_name = "io.kcp.apis.v1alpha1.APIExport"
    columns = (_AGE, _ready_column("VirtualWorkspaceURLsReady"))

    def _default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for claim in spec.get("permissionClaims") or []:
            if isinstance(claim, dict):
                claim.setdefault("group", "")

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        spec = spec_of(obj, causes, required=False)
        causes += check_latest_schemas(
            list_at(spec, "latestResourceSchemas", "spec.latestResourceSchemas", causes),
            "spec.latestResourceSchemas")
        causes += check_claims(
            list_at(spec, "permissionClaims", "spec.permissionClaims", causes),
            "spec.permissionClaims", version="v1alpha1", keys=("group", "resource"))
        meta = _mapping(obj.get("metadata"))
        causes += check_stash(meta, RESOURCE_SCHEMAS_ANNOTATION)
        causes += check_stash(meta, PERMISSION_CLAIMS_ANNOTATION)
        if causes:
            return causes
        # What came back from the annotations is checked in the form it is stored in.
        return super().validate(export_to_v1alpha2(obj))

    to_stored = staticmethod(export_to_v1alpha2)
    to_served = staticmethod(export_to_v1alpha1)


# --- APIBinding ----------------------------------------------------------------------------


class APIBindingStrategy(_APIsStrategy):
    """APIBinding v1alpha2, the stored form."""

    kind_schema = API_BINDING_SCHEMA
    definition_name = "io.kcp.apis.v1alpha2.APIBinding"
    has_status_subresource = True
    columns = (_AGE, _ready_column("Ready"))
    claims_version = "v1alpha2"

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        spec = spec_of(obj, causes, required=True)
        if causes:
            return causes
        reference = spec.get("reference")
        if not isinstance(reference, Mapping):
            causes.append(field_required("spec.reference"))
        else:
            causes += check_export_reference(reference.get("export"), "spec.reference.export")
        claims = list_at(spec, "permissionClaims", "spec.permissionClaims", causes)
        return causes + check_binding_claims(claims, version=self.claims_version)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return (self.validate(new) + immutable(new, old, "spec.reference")
                + check_selectors_kept(new, old) + check_phase_kept(new, old))


class APIBindingV1Alpha1Strategy(_ServedAsV1Alpha1, APIBindingStrategy):
    """APIBinding v1alpha1: served, converted to v1alpha2 for storage."""

    kind_schema = API_BINDING_V1ALPHA1_SCHEMA
    definition_name = "io.kcp.apis.v1alpha1.APIBinding"
    claims_version = "v1alpha1"

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes = super().validate(obj)
        causes += check_stash(_mapping(obj.get("metadata")), ACCEPTABLE_CLAIMS_ANNOTATION)
        if causes:
            return causes
        # Selectors restored from the annotation are checked as they will be stored.
        stored = binding_to_v1alpha2(obj)
        return check_binding_claims(
            list(_mapping(stored.get("spec")).get("permissionClaims") or []),
            version="v1alpha2")

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        causes = super().validate_update(new, old)
        # Selectors live in the annotation here; they are as immutable as in v1alpha2.
        return causes + check_selectors_kept(binding_to_v1alpha2(new), binding_to_v1alpha2(old))

    to_stored = staticmethod(binding_to_v1alpha2)
    to_served = staticmethod(binding_to_v1alpha1)


# --- APIExportEndpointSlice ----------------------------------------------------------------


class APIExportEndpointSliceStrategy(_APIsStrategy):
    kind_schema = API_EXPORT_ENDPOINT_SLICE_SCHEMA
    definition_name = "io.kcp.apis.v1alpha1.APIExportEndpointSlice"
    has_status_subresource = True
    columns = (
        {"name": "Export", "type": "string", "jsonPath": ".spec.export.name"},
        {"name": "Partition", "type": "string", "jsonPath": ".spec.partition"},
        _AGE,
    )

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        spec = spec_of(obj, causes, required=True)
        if causes:
            return causes
        return check_export_reference(spec.get("export"), "spec.export")

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + immutable(new, old, "spec.export")
