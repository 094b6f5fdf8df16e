"""The ``v1alpha1`` <-> ``v1alpha2`` conversion of kcp's APIExport and APIBinding.

Both kinds are stored in their ``v1alpha2`` form and also served as ``v1alpha1``; the
strategies in :mod:`kplane.registry.kinds.apis` convert a ``v1alpha1`` write to the stored
form and a stored object to ``v1alpha1`` for a ``v1alpha1`` read, as kcp converts them. The
mapping: an export's ``spec.latestResourceSchemas`` names become ``spec.resources`` entries
stored as CRDs, and a claim's ``all: true`` becomes ``verbs: ["*"]`` (and, on a binding,
``selector: {matchAll: true}``).

Why the annotations: ``v1alpha2`` says more than ``v1alpha1`` can (a claim's verbs other
than ``*``, a binding claim's label selector, a resource not stored as a CRD). Dropped on
the way to ``v1alpha1``, those fields would be erased by a ``v1alpha1`` client that reads
an object and writes it back. So, like kcp, the ``v1alpha1`` form carries them in kcp's
annotations (``apis.v1alpha2.kcp.io/permission-claims`` and friends), and the way back to
``v1alpha2`` restores them and removes the annotations. Stashed claims are matched by
group, resource and identity hash, so a claim the client removed takes its stash with it.

It also holds the one conversion of an APIResourceSchema spec into the CRD spec it
corresponds to, used both to validate a schema and to serve the types it defines.

The functions do not check what they convert: malformed parts pass through (or, for
unusable schema names, are left out) and validation reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

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


# --- claims and annotations ----------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def claim_key(claim: Mapping[str, Any]) -> tuple[str, str, str]:
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


# --- APIExport -----------------------------------------------------------------------------


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
    stashed_claims = {claim_key(c): c
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
            stashed = stashed_claims.get(claim_key(claim), {})
            extras = {k: v for k, v in stashed.items() if k not in _CLAIM_KEYS}
            converted.append({**_key_fields(claim), **_DEFAULT_EXPORT_CLAIM_EXTRAS, **extras})
        spec["permissionClaims"] = converted
    out = {**obj, "apiVersion": V1ALPHA2, "metadata": _with_annotations(obj, annotations)}
    if "spec" in obj:
        out["spec"] = spec
    return out


# --- APIBinding ----------------------------------------------------------------------------


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
    stashed = {claim_key(c): c for c in _load_stash(annotations, ACCEPTABLE_CLAIMS_ANNOTATION)}
    annotations.pop(ACCEPTABLE_CLAIMS_ANNOTATION, None)
    out: dict[str, Any] = {**obj, "apiVersion": V1ALPHA2}
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("permissionClaims"), list):
        claims: list[Any] = []
        for claim in spec["permissionClaims"]:
            if not isinstance(claim, Mapping):
                claims.append(claim)
                continue
            extras = {k: v for k, v in stashed.get(claim_key(claim), {}).items()
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


def as_crd_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD spec an APIResourceSchema spec corresponds to: kcp keeps a version's schema
    directly under ``schema``, a CRD under ``schema.openAPIV3Schema``."""
    versions = spec.get("versions")
    if isinstance(versions, list):
        versions = [{**v, "schema": {"openAPIV3Schema": v["schema"]}}
                    if isinstance(v, Mapping) and "schema" in v else v for v in versions]
    return {**spec, "versions": versions}
