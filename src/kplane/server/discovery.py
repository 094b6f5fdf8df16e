"""Discovery documents: how clients learn which resources this server serves.

Every client starts here. ``kubectl`` asks ``/api`` and ``/apis`` for the aggregated form
(``apidiscovery.k8s.io/v2``) and falls back to the legacy documents (``/api``,
``/apis``, ``/api/v1``, ``/apis/<group>/<version>``) when the answer is plain JSON; kopf,
kr8s and the Python client's DynamicClient only ever read the legacy documents. Both forms
are built here from the same list of :class:`ResourceType`, so they cannot disagree.

Everything is a pure function of its arguments (no global catalog): a workspace with CRDs
or bound APIs passes its own list. The same input always gives the same output, so the
caller may encode a document once (:func:`encode_document`) and reuse the bytes and their
:func:`content_hash` as an ETag until the resource list changes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kplane.apimachinery.builtin_schemas import GroupVersionKind
from kplane.registry.resources import ResourceType

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
"""The Content-Type of an aggregated discovery answer; client-go decides by it alone."""

_AGGREGATED_PARAMS = {"g": "apidiscovery.k8s.io", "v": "v2", "as": "APIGroupDiscoveryList"}

Document = dict[str, Any]


# --- subresources -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SubresourceShape:
    verbs: tuple[str, ...]
    # None: the subresource answers with the parent's own kind.
    response_kind: GroupVersionKind | None = None


_KNOWN_SUBRESOURCES: dict[str, _SubresourceShape] = {
    "status": _SubresourceShape(verbs=("get", "patch", "update")),
    "finalize": _SubresourceShape(verbs=("update",)),
    "scale": _SubresourceShape(
        verbs=("get", "patch", "update"),
        response_kind=GroupVersionKind("autoscaling", "v1", "Scale"),
    ),
    "token": _SubresourceShape(
        verbs=("create",),
        response_kind=GroupVersionKind("authentication.k8s.io", "v1", "TokenRequest"),
    ),
}


def subresource_verbs(subresource: str) -> tuple[str, ...]:
    """The verbs a subresource supports (``status``: get, patch, update)."""
    shape = _KNOWN_SUBRESOURCES.get(subresource)
    return shape.verbs if shape else ("get",)


def subresource_kind(rt: ResourceType, subresource: str) -> GroupVersionKind:
    """The kind a subresource reads and writes: the parent's, or e.g. TokenRequest, Scale."""
    shape = _KNOWN_SUBRESOURCES.get(subresource)
    if shape is None or shape.response_kind is None:
        return rt.gvk
    return shape.response_kind


# --- hashes and encoding -------------------------------------------------------------------


def storage_version_hash(rt: ResourceType) -> str:
    """Upstream's ``storageVersionHash``: 8 bytes of SHA-256 over ``group/version/kind``.

    The group is the one objects are stored under, so ``events.k8s.io`` events share the
    core events' hash exactly as on a real cluster; clients only compare hashes for equality.
    """
    key = f"{rt.stored_group}/{rt.version}/{rt.kind}"
    return base64.b64encode(hashlib.sha256(key.encode()).digest()[:8]).decode()


def encode_document(document: Document) -> bytes:
    """The bytes to send for a document; identical input gives identical bytes."""
    return orjson.dumps(document)


def content_hash(data: bytes) -> str:
    """Uppercase hex SHA-512 of some bytes, the hash upstream uses for discovery and OpenAPI."""
    return hashlib.sha512(data).hexdigest().upper()


def etag(data: bytes) -> str:
    """The quoted ETag header value for a response body."""
    return f'"{content_hash(data)}"'


# --- content negotiation -------------------------------------------------------------------


def wants_aggregated(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for aggregated discovery v2 before plain JSON.

    Media ranges are tried by quality, then in the client's order; the first one this
    server can produce decides. Only v2 counts: v2beta1 is no longer served, so a client
    asking for it first falls through to its next choice (normally plain JSON).
    """
    for media_type, params in _media_ranges_by_preference(accept or ""):
        if _is_aggregated_v2(media_type, params):
            return True
        if media_type in ("application/json", "application/*", "*/*") and not params.keys() & {
            "g", "v", "as",
        }:
            return False
    return False


def _media_ranges_by_preference(accept: str) -> list[tuple[str, dict[str, str]]]:
    ranked: list[tuple[float, int, str, dict[str, str]]] = []
    for position, clause in enumerate(accept.split(",")):
        media_type, params = _parse_media_range(clause)
        if not media_type:
            continue
        quality = _quality(params.pop("q", "1"))
        if quality > 0:
            ranked.append((-quality, position, media_type, params))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [(media_type, params) for _, _, media_type, params in ranked]


def _parse_media_range(clause: str) -> tuple[str, dict[str, str]]:
    parts = [part.strip() for part in clause.split(";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key:
            params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def _quality(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0


def _is_aggregated_v2(media_type: str, params: dict[str, str]) -> bool:
    if media_type != "application/json":
        return False
    return all(params.get(key) == value for key, value in _AGGREGATED_PARAMS.items())


# --- grouping ------------------------------------------------------------------------------

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes' preference order: v2, v1, v1beta2, v1alpha1.

    GA before beta before alpha, higher numbers first; versions that do not look like
    Kubernetes versions come last, alphabetically.
    """
    match = _KUBE_VERSION.match(version)
    if match is None:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -int(major), -int(minor or 0), "")


def _groups_in_order(resources: Iterable[ResourceType]) -> dict[str, list[str]]:
    """Each group (first appearance order) with its versions, preferred first."""
    groups: dict[str, list[str]] = {}
    for rt in resources:
        versions = groups.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)
    for versions in groups.values():
        versions.sort(key=version_priority)
    return groups


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _in_group_version(resources: Iterable[ResourceType], group_version: str) -> list[ResourceType]:
    found = [rt for rt in resources if rt.api_version == group_version]
    return sorted(found, key=lambda rt: rt.resource)


# --- legacy discovery ----------------------------------------------------------------------


def api_versions(server_address: str) -> Document:
    """``GET /api``: the legacy core group has exactly one version."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address},
        ],
    }


def _group_version_entry(group: str, version: str) -> Document:
    return {"groupVersion": _group_version(group, version), "version": version}


def _api_group_entry(group: str, versions: Sequence[str]) -> Document:
    return {
        "name": group,
        "versions": [_group_version_entry(group, version) for version in versions],
        "preferredVersion": _group_version_entry(group, versions[0]),
    }


def api_group_list(resources: Iterable[ResourceType]) -> Document:
    """``GET /apis``: every named group (the core group lives at ``/api``)."""
    groups = _groups_in_order(resources)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            _api_group_entry(group, versions) for group, versions in groups.items() if group
        ],
    }


def api_group(group: str, resources: Iterable[ResourceType]) -> Document | None:
    """``GET /apis/<group>``, or None when no resource of that group is served."""
    versions = _groups_in_order(resources).get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group_entry(group, versions)}


def _legacy_resource(rt: ResourceType) -> Document:
    entry: Document = {
        "name": rt.resource,
        "singularName": rt.singular_name,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = storage_version_hash(rt)
    return entry


def _legacy_subresource(rt: ResourceType, subresource: str) -> Document:
    kind = subresource_kind(rt, subresource)
    entry: Document = {
        "name": f"{rt.resource}/{subresource}",
        "singularName": "",
        "namespaced": rt.namespaced,
    }
    # Group and version are only named when they differ from the list's own.
    if (kind.group, kind.version) != (rt.group, rt.version):
        entry["group"] = kind.group
        entry["version"] = kind.version
    entry["kind"] = kind.kind
    entry["verbs"] = list(subresource_verbs(subresource))
    return entry


def api_resource_list(group_version: str, resources: Iterable[ResourceType]) -> Document | None:
    """``GET /api/v1`` or ``GET /apis/<group>/<version>``; None if nothing is served there."""
    served = _in_group_version(resources, group_version)
    if not served:
        return None
    entries: list[Document] = []
    for rt in served:
        entries.append(_legacy_resource(rt))
        entries.extend(_legacy_subresource(rt, sub) for sub in sorted(rt.subresources))
    entries.sort(key=lambda entry: str(entry["name"]))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


# --- aggregated discovery v2 ---------------------------------------------------------------


def _response_kind(gvk: GroupVersionKind) -> Document:
    return {"group": gvk.group, "version": gvk.version, "kind": gvk.kind}


def _aggregated_subresource(rt: ResourceType, subresource: str) -> Document:
    return {
        "subresource": subresource,
        "responseKind": _response_kind(subresource_kind(rt, subresource)),
        "verbs": list(subresource_verbs(subresource)),
    }


def _aggregated_resource(rt: ResourceType) -> Document:
    entry: Document = {
        "resource": rt.resource,
        "responseKind": _response_kind(rt.gvk),
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.subresources:
        entry["subresources"] = [
            _aggregated_subresource(rt, sub) for sub in sorted(rt.subresources)
        ]
    return entry


def _aggregated_group(
    group: str, versions: Sequence[str], resources: Sequence[ResourceType],
) -> Document:
    return {
        "metadata": {"name": group},
        "versions": [
            {
                "version": version,
                "resources": [
                    _aggregated_resource(rt)
                    for rt in _in_group_version(resources, _group_version(group, version))
                ],
                "freshness": "Current",
            }
            for version in versions
        ],
    }


def aggregated_discovery(resources: Iterable[ResourceType], *, legacy_core: bool) -> Document:
    """The ``APIGroupDiscoveryList`` for ``/api`` (``legacy_core``) or ``/apis``."""
    served = list(resources)
    groups = _groups_in_order(served)
    items = [
        _aggregated_group(group, versions, served)
        for group, versions in groups.items()
        if (group == "") == legacy_core
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
