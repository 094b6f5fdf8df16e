"""Field rules of kcp's ``apis.kcp.io`` kinds that look at one object alone.

Each function checks one part of an APIResourceSchema, APIExport or APIBinding (names that
must match the spec, required references, immutable fields, well-formed permission claims,
the annotations :mod:`kplane.registry.kinds.apis_conversion` stashes fields in) and returns
the causes of a 422, in the Kubernetes wording clients expect. The strategies in
:mod:`kplane.registry.kinds.apis` pick the rules for each kind and version.
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
from kplane.crd.structural import check_crd_spec
from kplane.registry.kinds.apis_conversion import as_crd_spec, claim_key, resource_for_schema
from kplane.registry.kinds.apis_schemas import (
    CLAIM_RESOURCE_PATTERN,
    CLUSTER_PATH_PATTERN,
    GROUP_PATTERN,
)

NAME_VALIDATIONS = ["DNS1123Subdomain", "PathSegmentName"]
_CLAIM_STATES = ["Accepted", "Rejected"]
_SCHEMA_PREFIX = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_RESOURCE_NAME = re.compile(r"^[a-z][-a-z0-9]*[a-z0-9]$")
_CLAIM_RESOURCE = re.compile(CLAIM_RESOURCE_PATTERN)
_GROUP = re.compile(GROUP_PATTERN)
_CLUSTER_PATH = re.compile(CLUSTER_PATH_PATTERN)
# Kubernetes' single-word groups, which kcp accepts in an APIResourceSchema.
_SINGLE_SEGMENT_GROUPS = frozenset({"apps", "batch", "extensions", "policy", "autoscaling"})


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


def immutable(new: Mapping[str, Any], old: Mapping[str, Any], path: str) -> list[Cause]:
    after = _at(new, path)
    if _at(old, path) != after:
        return [_invalid(path, after, "field is immutable")]
    return []


def _duplicate(path: str, value: Mapping[str, Any]) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_shown(dict(value))}", path)


def list_at(spec: Mapping[str, Any], key: str, path: str,
            causes: list[Cause]) -> list[Any]:
    """The list at ``spec[key]``; [] when absent, and [] plus a cause when not a list."""
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        causes.append(_invalid(path, value, "must be a list"))
        return []
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def check_stash(meta: Mapping[str, Any], name: str) -> list[Cause]:
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


# --- claims and export references ----------------------------------------------------------


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


def check_claims(claims: list[Any], path: str, *, version: str,
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


def check_export_reference(ref: Any, path: str) -> list[Cause]:
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


def spec_of(obj: Mapping[str, Any], causes: list[Cause], *, required: bool) -> Mapping[str, Any]:
    """The object's spec; {} when absent or malformed, with a cause when that is wrong."""
    spec = obj.get("spec")
    if isinstance(spec, Mapping):
        return spec
    if spec is not None or required:
        causes.append(field_required("spec") if spec is None
                      else _invalid("spec", spec, "must be an object"))
    return {}


# --- APIResourceSchema ---------------------------------------------------------------------


def check_schema_name(name: str, spec: Mapping[str, Any]) -> list[Cause]:
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


def check_schema_group(group: Any) -> list[Cause]:
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


def check_like_a_crd(spec: Mapping[str, Any]) -> list[Cause]:
    causes = []
    for cause in check_crd_spec(as_crd_spec(spec), name=""):
        if cause.field in ("spec.group", "metadata.name"):
            continue  # kcp's own group and name rules replace the CRD ones
        field = cause.field.replace(".schema.openAPIV3Schema", ".schema", 1)
        causes.append(Cause(cause.reason, cause.message, field))
    return causes


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


def check_resources(resources: list[Any], path: str) -> list[Cause]:
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
            and not check_schema_group(derived["group"]))


def check_latest_schemas(names: list[Any], path: str) -> list[Cause]:
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


def check_identity_hash_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    before = _at(old, "status.identityHash")
    if before and _at(new, "status.identityHash") != before:
        return immutable(new, old, "status.identityHash")
    return []


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


def check_binding_claims(claims: list[Any], *, version: str) -> list[Cause]:
    path = "spec.permissionClaims"
    causes = check_claims(claims, path, version=version,
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


def check_selectors_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    before = {claim_key(c): c.get("selector")
              for c in _mapping(old.get("spec")).get("permissionClaims") or []
              if isinstance(c, Mapping)}
    causes = []
    for i, claim in enumerate(_mapping(new.get("spec")).get("permissionClaims") or []):
        if not isinstance(claim, Mapping) or claim_key(claim) not in before:
            continue
        if claim.get("selector") != before[claim_key(claim)]:
            causes.append(_invalid(f"spec.permissionClaims[{i}].selector",
                                   claim.get("selector"),
                                   "Permission claim selector is immutable"))
    return causes


def check_phase_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    before, after = _at(old, "status.phase"), _at(new, "status.phase")
    if before and not after:
        return [field_forbidden("status.phase",
                                f'cannot transition from "{before}" to "{after or ""}"')]
    return []
