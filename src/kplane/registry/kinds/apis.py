"""Strategies of kcp's ``apis.kcp.io`` kinds: APIResourceSchema, APIExport, APIBinding and
APIExportEndpointSlice.

These strategies hold the rules that look at one object alone: names that must match the
spec, required references, immutable fields, well-formed permission claims. What needs
other objects (does the export exist, may the user bind it, do names collide) belongs to
the controllers and admission.

APIExport and APIBinding are stored in their ``v1alpha2`` form and also served as
``v1alpha1``, converted on the way in and out as kcp converts them. What ``v1alpha1``
cannot say (a claim's verbs other than ``*``, a binding claim's label selector, a resource
not stored as a CRD) travels in kcp's annotations
(``apis.v1alpha2.kcp.io/permission-claims`` and friends) so that a ``v1alpha1`` client
reading and writing an object back does not lose it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from kplane.apimachinery import names as k8s_names
from kplane.apimachinery.errors import (
    Cause,
    field_forbidden,
    field_invalid,
    field_not_supported,
    field_required,
)
from kplane.apimachinery.typeinfo import TypeNode
from kplane.crd.structural import check_crd_spec
from kplane.registry.kinds.apis_schemas import (
    API_BINDING_SCHEMA,
    API_BINDING_V1ALPHA1_SCHEMA,
    API_EXPORT_ENDPOINT_SLICE_SCHEMA,
    API_EXPORT_SCHEMA,
    API_EXPORT_V1ALPHA1_SCHEMA,
    API_RESOURCE_SCHEMA_SCHEMA,
    CLAIM_RESOURCE_PATTERN,
    CLUSTER_PATH_PATTERN,
    GROUP_PATTERN,
)
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy

V1ALPHA1 = "apis.kcp.io/v1alpha1"
V1ALPHA2 = "apis.kcp.io/v1alpha2"
# kcp's annotations for what v1alpha1 cannot express (sdk/apis/apis/v1alpha2 conversion).
RESOURCE_SCHEMAS_ANNOTATION = "apis.v1alpha2.kcp.io/resource-schemas"
PERMISSION_CLAIMS_ANNOTATION = "apis.v1alpha2.kcp.io/permission-claims"
ACCEPTABLE_CLAIMS_ANNOTATION = "apis.v1alpha2.kcp.io/acceptable-permission-claims"

ALL_VERBS = ("*",)
_CLAIM_KEYS = ("group", "resource", "identityHash")
_DEFAULT_EXPORT_CLAIM_EXTRAS: dict[str, Any] = {"verbs": list(ALL_VERBS)}
_DEFAULT_BINDING_CLAIM_EXTRAS: dict[str, Any] = {"verbs": list(ALL_VERBS),
                                                 "selector": {"matchAll": True}}
_CLAIM_STATES = ["Accepted", "Rejected"]
_SCHEMA_PREFIX = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_RESOURCE_NAME = re.compile(r"^[a-z][-a-z0-9]*[a-z0-9]$")
_CLAIM_RESOURCE = re.compile(CLAIM_RESOURCE_PATTERN)
_GROUP = re.compile(GROUP_PATTERN)
_CLUSTER_PATH = re.compile(CLUSTER_PATH_PATTERN)
# Kubernetes' single-word groups, which kcp accepts in an APIResourceSchema.
_SINGLE_SEGMENT_GROUPS = frozenset({"apps", "batch", "extensions", "policy", "autoscaling"})
_NAME_VALIDATIONS = ["DNS1123Subdomain", "PathSegmentName"]

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _ready_column(condition: str) -> dict[str, Any]:
    return {"name": "Ready", "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{condition}")].status'}


# --- small helpers -------------------------------------------------------------------------


def _at(obj: Mapping[str, Any], path: str) -> Any:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    return current


def _shown(value: Any) -> str:
    """A value as an error message shows it: JSON, objects cut short when large."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return "object" if len(text) > 256 and isinstance(value, Mapping | list) else text


def _invalid(path: str, value: Any, detail: str) -> Cause:
    if isinstance(value, str):
        return field_invalid(path, value, detail)
    try:
        shown = _shown(value)
    except TypeError:
        shown = repr(value)
    return Cause("FieldValueInvalid", f"Invalid value: {shown}: {detail}", path)


def _immutable(new: Mapping[str, Any], old: Mapping[str, Any], path: str) -> list[Cause]:
    after = _at(new, path)
    if _at(old, path) != after:
        return [_invalid(path, after, "field is immutable")]
    return []


def _duplicate(path: str, value: Mapping[str, Any]) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_shown(dict(value))}", path)


def _list_at(spec: Mapping[str, Any], key: str, path: str,
             causes: list[Cause]) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        causes.append(_invalid(path, value, "must be a list"))
        return []
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _claim_key(claim: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(claim.get("group") or ""), str(claim.get("resource") or ""),
            str(claim.get("identityHash") or ""))


def _key_fields(claim: Mapping[str, Any]) -> dict[str, Any]:
    return {key: claim[key] for key in _CLAIM_KEYS if key in claim}


def _load_stash(annotations: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    raw = annotations.get(name)
    if not isinstance(raw, str):
        return []
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [item for item in decoded if isinstance(item, dict)] if isinstance(decoded,
                                                                              list) else []


def _check_stash(meta: Mapping[str, Any], name: str) -> list[Cause]:
    raw = _mapping(meta.get("annotations")).get(name)
    if raw is None:
        return []
    try:
        decoded = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        decoded = None
    if not isinstance(decoded, list) or not all(isinstance(i, dict) for i in decoded):
        return [_invalid(f"metadata.annotations[{name}]", raw,
                         "must be a JSON list of objects")]
    return []


def _dump(items: list[dict[str, Any]]) -> str:
    return orjson.dumps(items).decode()


def _with_annotations(obj: Mapping[str, Any], annotations: dict[str, Any],
                      ) -> dict[str, Any]:
    meta = dict(_mapping(obj.get("metadata")))
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return meta


# --- APIExport conversion ------------------------------------------------------------------


def resource_for_schema(schema_name: str) -> dict[str, Any] | None:
    """The v1alpha2 ``spec.resources`` entry of a v1alpha1 ``latestResourceSchemas`` name
    (``<prefix>.<plural>.<group>``, group ``core`` for the core group); None if malformed."""
    parts = schema_name.split(".")
    if len(parts) < 3:
        return None
    group = ".".join(parts[2:])
    return {"group": "" if group == "core" else group, "name": parts[1],
            "schema": schema_name, "storage": {"crd": {}}}


def _is_plain_crd_resource(resource: Any) -> bool:
    if not isinstance(resource, Mapping) or not isinstance(resource.get("schema"), str):
        return False
    normalised = {**resource, "storage": resource.get("storage") or {"crd": {}}}
    return resource_for_schema(resource["schema"]) == normalised


def export_to_v1alpha1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (v1alpha2) APIExport as v1alpha1 serves it."""
    spec = dict(_mapping(obj.get("spec")))
    annotations = dict(_mapping(_mapping(obj.get("metadata")).get("annotations")))
    resources = spec.pop("resources", None)
    if isinstance(resources, list):
        latest = [r["schema"] for r in resources if _is_plain_crd_resource(r)]
        overhang = [r for r in resources if not _is_plain_crd_resource(r)]
        if latest or not overhang:
            spec["latestResourceSchemas"] = latest
        if overhang:
            annotations[RESOURCE_SCHEMAS_ANNOTATION] = _dump(overhang)
    claims = spec.get("permissionClaims")
    if isinstance(claims, list):
        converted: list[Any] = []
        overhang_claims: list[dict[str, Any]] = []
        for claim in claims:
            if not isinstance(claim, Mapping):
                converted.append(claim)
                continue
            key = _key_fields(claim)
            converted.append({**key, "all": True})
            extras = {k: v for k, v in claim.items() if k not in _CLAIM_KEYS}
            if extras != _DEFAULT_EXPORT_CLAIM_EXTRAS:
                overhang_claims.append({**key, **extras})
        spec["permissionClaims"] = converted
        if overhang_claims:
            annotations[PERMISSION_CLAIMS_ANNOTATION] = _dump(overhang_claims)
    out = {**obj, "apiVersion": V1ALPHA1, "metadata": _with_annotations(obj, annotations)}
    if "spec" in obj:
        out["spec"] = spec
    return out


def export_to_v1alpha2(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A v1alpha1 APIExport in its stored (v1alpha2) form."""
    spec = dict(_mapping(obj.get("spec")))
    annotations = dict(_mapping(_mapping(obj.get("metadata")).get("annotations")))
    stashed_resources = _load_stash(annotations, RESOURCE_SCHEMAS_ANNOTATION)
    stashed_claims = {_claim_key(c): c
                      for c in _load_stash(annotations, PERMISSION_CLAIMS_ANNOTATION)}
    annotations.pop(RESOURCE_SCHEMAS_ANNOTATION, None)
    annotations.pop(PERMISSION_CLAIMS_ANNOTATION, None)
    latest = spec.pop("latestResourceSchemas", None)
    if isinstance(latest, list) or stashed_resources:
        resources = [resource_for_schema(name) for name in latest or []
                     if isinstance(name, str)]
        spec["resources"] = [r for r in resources if r is not None] + stashed_resources
    claims = spec.get("permissionClaims")
    if isinstance(claims, list):
        converted: list[Any] = []
        for claim in claims:
            if not isinstance(claim, Mapping):
                converted.append(claim)
                continue
            stashed = stashed_claims.get(_claim_key(claim), {})
            extras = {k: v for k, v in stashed.items() if k not in _CLAIM_KEYS}
            converted.append({**_key_fields(claim), **_DEFAULT_EXPORT_CLAIM_EXTRAS, **extras})
        spec["permissionClaims"] = converted
    out = {**obj, "apiVersion": V1ALPHA2, "metadata": _with_annotations(obj, annotations)}
    if "spec" in obj:
        out["spec"] = spec
    return out


# --- APIBinding conversion -----------------------------------------------------------------


def _claims_to_v1alpha1(claims: Any, *, keep: tuple[str, ...] = ()) -> Any:
    if not isinstance(claims, list):
        return claims
    return [{**_key_fields(c), "all": True, **{k: c[k] for k in keep if k in c}}
            if isinstance(c, Mapping) else c for c in claims]


def _claims_to_v1alpha2(claims: Any, extras: Mapping[str, Any]) -> Any:
    if not isinstance(claims, list):
        return claims
    return [{**_key_fields(c), **extras} if isinstance(c, Mapping) else c for c in claims]


def binding_to_v1alpha1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (v1alpha2) APIBinding as v1alpha1 serves it."""
    annotations = dict(_mapping(_mapping(obj.get("metadata")).get("annotations")))
    out: dict[str, Any] = {**obj, "apiVersion": V1ALPHA1}
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("permissionClaims"), list):
        claims = spec["permissionClaims"]
        overhang = []
        for claim in claims:
            if not isinstance(claim, Mapping):
                continue
            extras = {k: v for k, v in claim.items() if k not in (*_CLAIM_KEYS, "state")}
            if extras != _DEFAULT_BINDING_CLAIM_EXTRAS:
                overhang.append({**_key_fields(claim), **extras})
        if overhang:
            annotations[ACCEPTABLE_CLAIMS_ANNOTATION] = _dump(overhang)
        out["spec"] = {**spec, "permissionClaims": _claims_to_v1alpha1(claims, keep=("state",))}
    status = obj.get("status")
    if isinstance(status, Mapping):
        converted = dict(status)
        for field in ("appliedPermissionClaims", "exportPermissionClaims"):
            if field in converted:
                converted[field] = _claims_to_v1alpha1(converted[field])
        out["status"] = converted
    out["metadata"] = _with_annotations(obj, annotations)
    return out


def binding_to_v1alpha2(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A v1alpha1 APIBinding in its stored (v1alpha2) form."""
    annotations = dict(_mapping(_mapping(obj.get("metadata")).get("annotations")))
    stashed = {_claim_key(c): c for c in _load_stash(annotations, ACCEPTABLE_CLAIMS_ANNOTATION)}
    annotations.pop(ACCEPTABLE_CLAIMS_ANNOTATION, None)
    out: dict[str, Any] = {**obj, "apiVersion": V1ALPHA2}
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("permissionClaims"), list):
        claims: list[Any] = []
        for claim in spec["permissionClaims"]:
            if not isinstance(claim, Mapping):
                claims.append(claim)
                continue
            extras = {k: v for k, v in stashed.get(_claim_key(claim), {}).items()
                      if k not in (*_CLAIM_KEYS, "state")}
            converted = {**_key_fields(claim), **_DEFAULT_BINDING_CLAIM_EXTRAS, **extras}
            if "state" in claim:
                converted["state"] = claim["state"]
            claims.append(converted)
        out["spec"] = {**spec, "permissionClaims": claims}
    status = obj.get("status")
    if isinstance(status, Mapping):
        converted_status = dict(status)
        if "appliedPermissionClaims" in converted_status:
            converted_status["appliedPermissionClaims"] = _claims_to_v1alpha2(
                converted_status["appliedPermissionClaims"], _DEFAULT_BINDING_CLAIM_EXTRAS)
        if "exportPermissionClaims" in converted_status:
            converted_status["exportPermissionClaims"] = _claims_to_v1alpha2(
                converted_status["exportPermissionClaims"], _DEFAULT_EXPORT_CLAIM_EXTRAS)
        out["status"] = converted_status
    out["metadata"] = _with_annotations(obj, annotations)
    return out


# --- shared checks -------------------------------------------------------------------------


def _check_claim(claim: Any, path: str, *, version: str) -> list[Cause]:
    """The parts of a permission claim every kind and version shares, plus verbs (v1alpha2)
    or ``all`` (v1alpha1)."""
    if not isinstance(claim, Mapping):
        return [_invalid(path, claim, "must be an object")]
    causes: list[Cause] = []
    resource = claim.get("resource")
    if not resource:
        causes.append(field_required(f"{path}.resource"))
    elif not isinstance(resource, str) or len(resource) > 127 or not _CLAIM_RESOURCE.match(
            resource):
        causes.append(_invalid(f"{path}.resource", resource,
                               f"should match '{CLAIM_RESOURCE_PATTERN}'"))
    group = claim.get("group", "")
    if not isinstance(group, str) or not _GROUP.match(group):
        causes.append(_invalid(f"{path}.group", group,
                               f"should match '{GROUP_PATTERN}'"))
    identity = claim.get("identityHash", "")
    if not isinstance(identity, str):
        causes.append(_invalid(f"{path}.identityHash", identity, "must be a string"))
    elif group == "core.kcp.io" and resource == "logicalclusters" and not identity:
        causes.append(field_forbidden(path, "logicalclusters cannot be claimed"))
    if version == "v1alpha2":
        causes += _check_verbs(claim.get("verbs"), f"{path}.verbs")
    else:
        if claim.get("resourceSelector"):
            causes.append(field_forbidden(
                f"{path}.resourceSelector", "kplane does not support resourceSelector: a "
                "claim covers all objects of its resource (all: true)"))
        if claim.get("all") is not True:
            causes.append(field_required(f"{path}.all", 'Required value: either "all" or '
                                                        '"resourceSelector" must be set'))
    return causes


def _check_verbs(verbs: Any, path: str) -> list[Cause]:
    if not verbs:
        return [field_required(path)]
    if not isinstance(verbs, list):
        return [_invalid(path, verbs, "must be a list")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, verb in enumerate(verbs):
        if not isinstance(verb, str) or not verb:
            causes.append(_invalid(f"{path}[{i}]", verb,
                                   "must be a non-empty string"))
        elif verb in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{verb}"',
                                f"{path}[{i}]"))
        else:
            seen.add(verb)
    return causes


def _check_claims(claims: list[Any], path: str, *, version: str,
                  keys: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, ...]] = set()
    for i, claim in enumerate(claims):
        item_path = f"{path}[{i}]"
        causes += _check_claim(claim, item_path, version=version)
        if isinstance(claim, Mapping):
            key = tuple(str(claim.get(k) or "") for k in keys)
            if key in seen:
                causes.append(_duplicate(item_path, {k: claim.get(k, "") for k in keys}))
            seen.add(key)
    return causes


def _check_export_reference(ref: Any, path: str) -> list[Cause]:
    """``{path, name}`` of an APIExport, as bindings and endpoint slices name it."""
    if not isinstance(ref, Mapping):
        return [field_required(path)]
    causes: list[Cause] = []
    if not ref.get("name"):
        causes.append(field_required(f"{path}.name"))
    elif not isinstance(ref["name"], str):
        causes.append(_invalid(f"{path}.name", ref["name"], "must be a string"))
    cluster_path = ref.get("path")
    if cluster_path and (not isinstance(cluster_path, str)
                         or not _CLUSTER_PATH.match(cluster_path)):
        causes.append(_invalid(f"{path}.path", cluster_path,
                               f"should match '{CLUSTER_PATH_PATTERN}'"))
    return causes


def _spec(obj: Mapping[str, Any], causes: list[Cause], *, required: bool) -> Mapping[str, Any]:
    spec = obj.get("spec")
    if isinstance(spec, Mapping):
        return spec
    if spec is not None or required:
        causes.append(field_required("spec") if spec is None
                      else _invalid("spec", spec, "must be an object"))
    return {}


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


def _check_schema_name(name: str, spec: Mapping[str, Any]) -> list[Cause]:
    plural = _mapping(spec.get("names")).get("plural")
    group = spec.get("group")
    if not plural or not isinstance(plural, str) or not isinstance(group, str):
        return []  # the names / group checks report the missing part
    suffix = f".{plural}.{group or 'core'}"
    if not name.endswith(suffix):
        return [field_invalid("metadata.name", name, f"must end in {suffix}")]
    if not _SCHEMA_PREFIX.match(name[:-len(suffix)]):
        return [field_invalid("metadata.name", name,
                              f"must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ in front of {suffix}")]
    return []


def _check_schema_group(group: Any) -> list[Cause]:
    if group is None:
        return [field_required("spec.group")]
    if not isinstance(group, str):
        return [_invalid("spec.group", group, "must be a string")]
    if group == "":
        return []  # the core group
    if group == "core":
        return [field_invalid("spec.group", group, "must be empty string for the core group")]
    problems = k8s_names.is_dns1123_subdomain(group)
    if problems:
        return [field_invalid("spec.group", group, ",".join(problems))]
    if "." not in group and group not in _SINGLE_SEGMENT_GROUPS:
        return [field_invalid("spec.group", group, "should be a domain with at least one dot")]
    return []


def _as_crd_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD spec an APIResourceSchema spec corresponds to: kcp keeps a version's schema
    directly under ``schema``, a CRD under ``schema.openAPIV3Schema``."""
    versions = spec.get("versions")
    if isinstance(versions, list):
        versions = [{**v, "schema": {"openAPIV3Schema": v["schema"]}}
                    if isinstance(v, Mapping) and "schema" in v else v for v in versions]
    return {**spec, "versions": versions}


def _check_like_a_crd(spec: Mapping[str, Any]) -> list[Cause]:
    causes = []
    for cause in check_crd_spec(_as_crd_spec(spec), name=""):
        if cause.field in ("spec.group", "metadata.name"):
            continue  # kcp's own group and name rules replace the CRD ones
        field = cause.field.replace(".schema.openAPIV3Schema", ".schema", 1)
        causes.append(Cause(cause.reason, cause.message, field))
    return causes


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
        spec = _spec(obj, causes, required=True)
        if causes:
            return causes
        name = str(_mapping(obj.get("metadata")).get("name") or "")
        causes += _check_schema_name(name, spec)
        causes += _check_schema_group(spec.get("group"))
        names = _mapping(spec.get("names"))
        for field in ("singular", "listKind"):
            if not names.get(field):
                causes.append(field_required(f"spec.names.{field}"))
        validation = spec.get("nameValidation")
        if validation is not None and validation not in _NAME_VALIDATIONS:
            causes.append(field_not_supported("spec.nameValidation", validation,
                                              _NAME_VALIDATIONS))
        return causes + _check_like_a_crd(spec)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + _immutable(new, old, "spec")


# --- APIExport -----------------------------------------------------------------------------


def _check_resource(resource: Any, path: str) -> list[Cause]:
    if not isinstance(resource, Mapping):
        return [_invalid(path, resource, "must be an object")]
    causes: list[Cause] = []
    group = resource.get("group")
    if group is None:
        causes.append(field_required(f"{path}.group"))
    elif not isinstance(group, str) or not _GROUP.match(group):
        causes.append(_invalid(f"{path}.group", group,
                               f"should match '{GROUP_PATTERN}'"))
    name = resource.get("name")
    if not name:
        causes.append(field_required(f"{path}.name"))
    elif not isinstance(name, str) or not _RESOURCE_NAME.match(name):
        causes.append(_invalid(f"{path}.name", name,
                               "must be the resource's plural name, matching "
                               f"'{_RESOURCE_NAME.pattern}'"))
    schema = resource.get("schema")
    if not schema:
        causes.append(field_required(f"{path}.schema"))
    elif not isinstance(schema, str):
        causes.append(_invalid(f"{path}.schema", schema, "must be a string"))
    elif not causes:
        suffix = f".{name}.{group or 'core'}"
        if not schema.endswith(suffix):
            causes.append(field_invalid(f"{path}.schema", schema, f"must end in {suffix}"))
        elif not _SCHEMA_PREFIX.match(schema[:-len(suffix)]):
            causes.append(field_invalid(
                f"{path}.schema", schema,
                f"must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ in front of {suffix}"))
    storage = resource.get("storage", {"crd": {}})
    if not isinstance(storage, Mapping) or ("crd" in storage) == ("virtual" in storage):
        causes.append(_invalid(f"{path}.storage", storage,
                               "exactly one of crd or virtual must be set"))
    elif "virtual" in storage:
        causes.append(field_forbidden(f"{path}.storage.virtual",
                                      "kplane stores exported resources as CRDs only "
                                      "(storage: {crd: {}})"))
    return causes


def _check_resources(resources: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, resource in enumerate(resources):
        item_path = f"{path}[{i}]"
        causes += _check_resource(resource, item_path)
        if isinstance(resource, Mapping):
            key = (str(resource.get("group") or ""), str(resource.get("name") or ""))
            if key in seen:
                causes.append(_duplicate(item_path, {"group": key[0], "name": key[1]}))
            seen.add(key)
    return causes


def _is_schema_name(name: str) -> bool:
    derived = resource_for_schema(name)
    return (derived is not None and bool(_RESOURCE_NAME.match(derived["name"]))
            and bool(_SCHEMA_PREFIX.match(name.split(".")[0]))
            and not _check_schema_group(derived["group"]))


def _check_latest_schemas(names: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        item_path = f"{path}[{i}]"
        if not isinstance(name, str) or not _is_schema_name(name):
            causes.append(_invalid(item_path, name,
                                   "must be an APIResourceSchema name, "
                                   "<prefix>.<plural>.<group>"))
        elif name in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{name}"',
                                item_path))
        else:
            seen.add(name)
    return causes


def _check_identity_hash_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    before = _at(old, "status.identityHash")
    if before and _at(new, "status.identityHash") != before:
        return _immutable(new, old, "status.identityHash")
    return []


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
        spec = _spec(obj, causes, required=False)
        causes += _check_resources(_list_at(spec, "resources", "spec.resources", causes),
                                   "spec.resources")
        claims = _list_at(spec, "permissionClaims", "spec.permissionClaims", causes)
        causes += _check_claims(claims, "spec.permissionClaims", version="v1alpha2",
                                keys=("group", "resource"))
        for i, claim in enumerate(claims):
            resource = claim.get("resource") if isinstance(claim, Mapping) else None
            if isinstance(resource, str) and "/" in resource and claim.get("defaultSelector"):
                causes.append(field_forbidden(f"spec.permissionClaims[{i}].defaultSelector",
                                              "defaultSelector is not allowed on subresource "
                                              "claims"))
        return causes

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + _check_identity_hash_kept(new, old)


class APIExportV1Alpha1Strategy(APIExportStrategy):
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
        spec = _spec(obj, causes, required=False)
        causes += _check_latest_schemas(
            _list_at(spec, "latestResourceSchemas", "spec.latestResourceSchemas", causes),
            "spec.latestResourceSchemas")
        causes += _check_claims(
            _list_at(spec, "permissionClaims", "spec.permissionClaims", causes),
            "spec.permissionClaims", version="v1alpha1", keys=("group", "resource"))
        meta = _mapping(obj.get("metadata"))
        causes += _check_stash(meta, RESOURCE_SCHEMAS_ANNOTATION)
        causes += _check_stash(meta, PERMISSION_CLAIMS_ANNOTATION)
        if causes:
            return causes
        # What came back from the annotations is checked in the form it is stored in.
        return super().validate(export_to_v1alpha2(obj))

    def storage_form(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        return obj if obj.get("apiVersion") == V1ALPHA2 else export_to_v1alpha2(obj)

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj if obj.get("apiVersion") == V1ALPHA1 else export_to_v1alpha1(obj)

    def read_bytes(self, raw: bytes) -> bytes:
        return orjson.dumps(self.reading_form(orjson.loads(raw)))


# --- APIBinding ----------------------------------------------------------------------------


def _check_selector(selector: Any, path: str) -> list[Cause]:
    if not isinstance(selector, Mapping):
        return [field_required(path, "Required value: either one of matchAll, matchLabels, "
                                     "or matchExpressions must be set")]
    labels, expressions = selector.get("matchLabels"), selector.get("matchExpressions")
    if selector.get("matchAll"):
        causes = []
        if labels:
            causes.append(_invalid(f"{path}.matchLabels", labels,
                                   "matchLabels cannot be used with matchAll"))
        if expressions:
            causes.append(_invalid(f"{path}.matchExpressions", expressions,
                                   "matchExpressions cannot be used with matchAll"))
        return causes
    if not labels and not expressions:
        return [field_required(path, "Required value: either one of matchAll, matchLabels, "
                                     "or matchExpressions must be set")]
    return []


def _check_binding_claims(claims: list[Any], *, version: str) -> list[Cause]:
    path = "spec.permissionClaims"
    causes = _check_claims(claims, path, version=version,
                           keys=("group", "resource", "identityHash"))
    for i, claim in enumerate(claims):
        if not isinstance(claim, Mapping):
            continue
        state = claim.get("state")
        if not state:
            causes.append(field_required(f"{path}[{i}].state"))
        elif state not in _CLAIM_STATES:
            causes.append(field_not_supported(f"{path}[{i}].state", state, _CLAIM_STATES))
        if version == "v1alpha2":
            causes += _check_selector(claim.get("selector"), f"{path}[{i}].selector")
    return causes


def _check_selectors_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    before = {_claim_key(c): c.get("selector")
              for c in _mapping(old.get("spec")).get("permissionClaims") or []
              if isinstance(c, Mapping)}
    causes = []
    for i, claim in enumerate(_mapping(new.get("spec")).get("permissionClaims") or []):
        if not isinstance(claim, Mapping) or _claim_key(claim) not in before:
            continue
        if claim.get("selector") != before[_claim_key(claim)]:
            causes.append(_invalid(f"spec.permissionClaims[{i}].selector",
                                   claim.get("selector"),
                                   "Permission claim selector is immutable"))
    return causes


def _check_phase_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    before, after = _at(old, "status.phase"), _at(new, "status.phase")
    if before and not after:
        return [field_forbidden("status.phase",
                                f'cannot transition from "{before}" to "{after or ""}"')]
    return []


class APIBindingStrategy(_APIsStrategy):
    """APIBinding v1alpha2, the stored form."""

    kind_schema = API_BINDING_SCHEMA
    definition_name = "io.kcp.apis.v1alpha2.APIBinding"
    has_status_subresource = True
    columns = (_AGE, _ready_column("Ready"))
    claims_version = "v1alpha2"

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        spec = _spec(obj, causes, required=True)
        if causes:
            return causes
        reference = spec.get("reference")
        if not isinstance(reference, Mapping):
            causes.append(field_required("spec.reference"))
        else:
            causes += _check_export_reference(reference.get("export"), "spec.reference.export")
        claims = _list_at(spec, "permissionClaims", "spec.permissionClaims", causes)
        return causes + _check_binding_claims(claims, version=self.claims_version)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return (self.validate(new) + _immutable(new, old, "spec.reference")
                + _check_selectors_kept(new, old) + _check_phase_kept(new, old))


class APIBindingV1Alpha1Strategy(APIBindingStrategy):
    """APIBinding v1alpha1: served, converted to v1alpha2 for storage."""

    kind_schema = API_BINDING_V1ALPHA1_SCHEMA
    definition_name = "io.kcp.apis.v1alpha1.APIBinding"
    claims_version = "v1alpha1"

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes = super().validate(obj)
        causes += _check_stash(_mapping(obj.get("metadata")), ACCEPTABLE_CLAIMS_ANNOTATION)
        if causes:
            return causes
        # Selectors restored from the annotation are checked as they will be stored.
        stored = binding_to_v1alpha2(obj)
        return _check_binding_claims(
            list(_mapping(stored.get("spec")).get("permissionClaims") or []),
            version="v1alpha2")

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        causes = super().validate_update(new, old)
        # Selectors live in the annotation here; they are as immutable as in v1alpha2.
        return causes + _check_selectors_kept(binding_to_v1alpha2(new), binding_to_v1alpha2(old))

    def storage_form(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        return obj if obj.get("apiVersion") == V1ALPHA2 else binding_to_v1alpha2(obj)

    def reading_form(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj if obj.get("apiVersion") == V1ALPHA1 else binding_to_v1alpha1(obj)

    def read_bytes(self, raw: bytes) -> bytes:
        return orjson.dumps(self.reading_form(orjson.loads(raw)))


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
        spec = _spec(obj, causes, required=True)
        if causes:
            return causes
        return _check_export_reference(spec.get("export"), "spec.export")

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return self.validate(new) + _immutable(new, old, "spec.export")
