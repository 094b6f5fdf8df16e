"""A class template: the manifests every trainee's workspace starts from, and how to apply them.

A template is a manifest file or a folder of them, read as ``kubectl apply -f`` reads
them: ``.yaml``, ``.yml`` and ``.json`` files in name order, several documents per file
(``---``), ``kind: List`` expanded into its items. Applying one object is a server-side
apply to its own URL, so the URL is worked out here from the object and a map of kinds to
resources that discovery fills in once per class. Everything in this module is pure, apart
from reading the files and the discovery requests made through a caller's ``get``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from kplane.cli.client import ApiError, CliError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_NAMESPACE = "default"
FIELD_MANAGER = "kplane-class"


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What discovery says about one kind: its plural resource name and its scope."""

    resource: str
    namespaced: bool


# (apiVersion, kind) -> resource, as discovery reported it.
ResourceMap = dict[tuple[str, str], ResourceInfo]


def load_template(path: Path) -> list[dict[str, Any]]:
    """Every object in the file or folder ``path``, in the order kubectl would apply them."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)
    elif path.is_file():
        files = [path]
    else:
        raise CliError(f"template {str(path)!r} does not exist")
    objects: list[dict[str, Any]] = []
    for file in files:
        objects.extend(parse_manifests(_read(file), source=str(file)))
    return objects


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read template {str(file)!r}: {error}") from None


def parse_manifests(text: str, *, source: str) -> list[dict[str, Any]]:
    """The objects of one manifest text: every document, ``List`` items flattened."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise CliError(f"{source} is not valid YAML: {error}") from None
    objects: list[dict[str, Any]] = []
    for document in documents:
        if document is None:
            continue
        objects.extend(_flatten(document, source=source))
    return objects


def _flatten(document: Any, *, source: str) -> Iterable[dict[str, Any]]:
    if not isinstance(document, dict):
        raise CliError(f"{source}: every document must be an object")
    kind = str(document.get("kind", ""))
    if kind == "List" or (kind.endswith("List") and "items" in document):
        for item in document.get("items") or []:
            yield from _flatten(item, source=source)
        return
    check_manifest(document, source=source)
    yield document


def check_manifest(obj: Mapping[str, Any], *, source: str) -> None:
    """Refuse what cannot be applied: apply needs apiVersion, kind and a fixed name."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not obj.get("apiVersion") or not obj.get("kind"):
        raise CliError(f"{source}: an object without apiVersion or kind")
    if not name:
        raise CliError(f"{source}: {obj.get('kind')} without metadata.name (apply cannot use "
                       "generateName)")


def group_versions(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct apiVersions of ``objects``, in first-seen order."""
    return list(dict.fromkeys(str(obj["apiVersion"]) for obj in objects))


def discovery_path(workspace: str, api_version: str) -> str:
    if "/" in api_version:
        return f"/clusters/{workspace}/apis/{api_version}"
    return f"/clusters/{workspace}/api/{api_version}"


def discover_resources(get: Callable[[str], dict[str, Any]], *, workspace: str,
                       api_versions: Iterable[str]) -> ResourceMap:
    """Ask discovery in ``workspace`` which resource serves each kind of ``api_versions``."""
    found: ResourceMap = {}
    for api_version in api_versions:
        try:
            listing = get(discovery_path(workspace, api_version))
        except ApiError as error:
            if error.code == 404:
                raise CliError(f"the server does not serve {api_version}") from None
            raise
        found.update(resources_of(listing, api_version=api_version))
    return found


def resources_of(listing: Mapping[str, Any], *, api_version: str) -> ResourceMap:
    """The kinds an APIResourceList serves (subresources left out)."""
    found: ResourceMap = {}
    for entry in listing.get("resources") or []:
        name = str(entry.get("name", ""))
        if not name or "/" in name:
            continue
        found[(api_version, str(entry.get("kind", "")))] = ResourceInfo(
            resource=name, namespaced=bool(entry.get("namespaced")))
    return found


def listable_resources(listing: Mapping[str, Any], *, api_version: str) -> list[str]:
    """List URLs (relative to a workspace) of the resources of one APIResourceList."""
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    return [f"{base}/{entry['name']}" for entry in listing.get("resources") or []
            if "/" not in str(entry.get("name", "/")) and "list" in (entry.get("verbs") or [])]


def resource_for(obj: Mapping[str, Any], resources: ResourceMap) -> ResourceInfo:
    key = (str(obj["apiVersion"]), str(obj["kind"]))
    info = resources.get(key)
    if info is None:
        raise CliError(f'no resource serves kind "{key[1]}" in {key[0]}')
    return info


def applied_object(obj: Mapping[str, Any], info: ResourceInfo) -> dict[str, Any]:
    """``obj`` as sent: namespaced objects get the ``default`` namespace when they have none;
    cluster-scoped ones lose any namespace (kubectl ignores it too)."""
    metadata = dict(obj.get("metadata") or {})
    if info.namespaced:
        metadata["namespace"] = metadata.get("namespace") or DEFAULT_NAMESPACE
    else:
        metadata.pop("namespace", None)
    return {**obj, "metadata": metadata}


def object_path(workspace: str, obj: Mapping[str, Any], info: ResourceInfo) -> str:
    """The URL of ``obj`` (already through ``applied_object``) inside ``workspace``."""
    base = discovery_path(workspace, str(obj["apiVersion"]))
    metadata = obj.get("metadata") or {}
    name = quote(str(metadata["name"]), safe="")
    if info.namespaced:
        namespace = quote(str(metadata["namespace"]), safe="")
        return f"{base}/namespaces/{namespace}/{info.resource}/{name}"
    return f"{base}/{info.resource}/{name}"


def apply_path(workspace: str, obj: Mapping[str, Any], info: ResourceInfo) -> str:
    return f"{object_path(workspace, obj, info)}?fieldManager={FIELD_MANAGER}&force=true"


def apply_waves(objects: Iterable[dict[str, Any]],
                resources: ResourceMap) -> list[list[tuple[dict[str, Any], ResourceInfo]]]:
    """The objects ready to send, cluster-scoped ones first.

    A namespaced object may live in a namespace the same template creates, so every
    cluster-scoped object (namespaces among them) is applied before any namespaced one.
    """
    cluster_scoped: list[tuple[dict[str, Any], ResourceInfo]] = []
    namespaced: list[tuple[dict[str, Any], ResourceInfo]] = []
    for obj in objects:
        info = resource_for(obj, resources)
        target = namespaced if info.namespaced else cluster_scoped
        target.append((applied_object(obj, info), info))
    return [wave for wave in (cluster_scoped, namespaced) if wave]
