"""The scale subresource of custom resources: an ``autoscaling/v1`` Scale view.

A CRD version with ``subresources.scale`` names where its replica counts live
(``specReplicasPath``, ``statusReplicasPath``, optional ``labelSelectorPath``). GET builds
a Scale from those paths; PUT and PATCH of the Scale write ``spec.replicas`` back to the
spec path of the object itself, with the same optimistic concurrency as any update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplane.apimachinery import errors
from kplane.apimachinery.patch import apply_json_patch, apply_merge_patch


def _segments(path: str) -> list[str]:
    return [part for part in path.lstrip(".").split(".") if part]


def _read(obj: Mapping[str, Any], path: str) -> Any:
    current: Any = obj
    for part in _segments(path):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _write(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = _segments(path)
    current = obj
    for part in parts[:-1]:
        child = current.get(part)
        if not isinstance(child, dict):
            child = current[part] = {}
        current = child
    current[parts[-1]] = value


def scale_of(obj: Mapping[str, Any], paths: Mapping[str, str]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    replicas = _read(obj, paths.get("specReplicasPath", ".spec.replicas"))
    status: dict[str, Any] = {
        "replicas": _read(obj, paths.get("statusReplicasPath", ".status.replicas")) or 0}
    selector_path = paths.get("labelSelectorPath")
    if selector_path:
        selector = _read(obj, selector_path)
        if isinstance(selector, str):
            status["selector"] = selector
    return {
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion",
                                                 "creationTimestamp") if key in meta},
        "spec": {"replicas": replicas if isinstance(replicas, int) else 0},
        "status": status,
    }


_INT32_MAX = 2**31 - 1


def replicas_from(scale: Any, *, name: str) -> int:
    """The replica count a Scale written for the object ``name`` asks for."""
    if not isinstance(scale, Mapping) or scale.get("kind", "Scale") != "Scale":
        raise errors.bad_request("the body must be an autoscaling/v1 Scale")
    given = (scale.get("metadata") or {}).get("name")
    if given and given != name:
        raise errors.bad_request(
            f"the name of the object ({given}) does not match the name on the URL ({name})")
    replicas = (scale.get("spec") or {}).get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > _INT32_MAX:
        # Scale's replicas are an int32: upstream's decoder refuses a larger number.
        raise errors.bad_request(
            f"json: cannot unmarshal number {replicas} into Go struct field "
            "ScaleSpec.spec.replicas of type int32")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", "autoscaling", str(
            (scale.get("metadata") or {}).get("name", "")), [
            errors.field_invalid("spec.replicas", replicas,
                                 "must be greater than or equal to 0")])
    return replicas


def patched_scale(current: dict[str, Any], patch_type: str, doc: Any) -> dict[str, Any]:
    if patch_type == "application/json-patch+json":
        return apply_json_patch(current, doc)
    if patch_type == "application/merge-patch+json":
        return apply_merge_patch(current, doc)
    raise errors.unsupported_media_type(
        patch_type, ["application/json-patch+json", "application/merge-patch+json"])


def with_replicas(obj: dict[str, Any], paths: Mapping[str, str], replicas: int) -> dict[str, Any]:
    _write(obj, paths.get("specReplicasPath", ".spec.replicas"), replicas)
    return obj
