"""OpenAPI v3 documents: ``/openapi/v3`` and one document per group-version.

``kubectl create/apply/replace`` will not send a request before it has read these:
it looks for a PATCH operation carrying the kind's ``x-kubernetes-group-version-kind``
and a ``fieldValidation`` query parameter, and leaves validation to the server when it
finds one. ``kubectl explain`` reads the kind's schema from ``components.schemas``, and
client-side ``kubectl apply`` picks strategic merge only when the PATCH body lists
``application/strategic-merge-patch+json``.

Schemas come from the caller through ``schema_for`` (built-in kinds: upstream's
definitions shipped by ``kubernetes-validate``; CRDs: their own schema later). They are
converted from that package's JSON-Schema dialect to OpenAPI 3.0 the way upstream
publishes them (``$ref`` into ``#/components/schemas``, wrapped in ``allOf`` when it has
siblings, no ``type`` arrays) and every definition they reference is pulled in.

All functions are pure and deterministic. Converted built-in definitions are cached per
name and shared between documents: treat returned documents as read-only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kplane.apimachinery.builtin_schemas import (
    GroupVersionKind,
    definition_name,
    definitions,
)
from kplane.registry.resources import ResourceType
from kplane.server.discovery import (
    content_hash,
    encode_document,
    subresource_kind,
    subresource_verbs,
)

Schema = Mapping[str, Any]
Document = dict[str, Any]
SchemaFor = Callable[[ResourceType], tuple[str, Schema] | None]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
STATUS = f"{_META}.Status"
DELETE_OPTIONS = f"{_META}.DeleteOptions"
PATCH = f"{_META}.Patch"
WATCH_EVENT = f"{_META}.WatchEvent"
OBJECT_META = f"{_META}.ObjectMeta"
LIST_META = f"{_META}.ListMeta"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

_REF_PREFIX = "#/components/schemas/"

RESPONSE_MEDIA_TYPES: tuple[str, ...] = ("application/json", "application/yaml")
"""What single-object and list responses may be encoded as."""

WATCH_MEDIA_TYPES: tuple[str, ...] = (
    "application/json", "application/json;stream=watch", "application/yaml",
)


# --- schema sources ------------------------------------------------------------------------


def builtin_schema_for(rt: ResourceType) -> tuple[str, Schema] | None:
    """The default ``schema_for``: upstream's definition of a built-in kind, if it has one."""
    name = definition_name(rt.gvk)
    if name is None:
        return None
    return name, definitions()[name]


def _ref_name(ref: str) -> str:
    """``#/$defs/X`` and ``#/components/schemas/X`` both name definition ``X``."""
    return ref.rsplit("/", 1)[-1]


# --- dialect conversion --------------------------------------------------------------------


def _openapi_type(declared: Any) -> Any:
    """OpenAPI 3.0 has no type arrays; ``["string", "null"]`` is just ``string``."""
    if not isinstance(declared, list):
        return declared
    concrete = [t for t in declared if t != "null"]
    return concrete[0] if len(concrete) == 1 else None


_NESTED_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def _convert(node: Any, refs: set[str]) -> Any:
    """One schema node in OpenAPI 3.0 form; the definitions it references go into ``refs``."""
    if isinstance(node, list):
        return [_convert(item, refs) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" in node:
        return _convert_ref(node, refs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            converted_type = _openapi_type(value)
            if converted_type is not None:
                out["type"] = converted_type
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _convert(prop, refs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in _NESTED_SCHEMA_LISTS:
            out[key] = _convert(value, refs)
        else:
            out[key] = value
    return out


def _convert_ref(node: Mapping[str, Any], refs: set[str]) -> dict[str, Any]:
    name = _ref_name(str(node["$ref"]))
    refs.add(name)
    reference = {"$ref": _REF_PREFIX + name}
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    if not siblings:
        return reference
    # OpenAPI 3.0 ignores siblings of $ref; upstream keeps them by wrapping the ref.
    converted = _convert(siblings, refs)
    return {"allOf": [reference], **converted}


def _without_type_enums(definition: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``enum`` kubernetes-validate adds to a kind's apiVersion/kind.

    Upstream does not publish them, and on shared kinds (DeleteOptions) they list every
    group-version of the cluster that generated them, not this server's.
    """
    properties = definition.get("properties")
    if not definition.get("x-kubernetes-group-version-kind") or not isinstance(properties, dict):
        return definition
    cleaned = dict(properties)
    for field in ("apiVersion", "kind"):
        prop = cleaned.get(field)
        if isinstance(prop, dict) and "enum" in prop:
            cleaned[field] = {k: v for k, v in prop.items() if k != "enum"}
    return {**definition, "properties": cleaned}


def convert_definition(name: str, schema: Schema) -> tuple[dict[str, Any], frozenset[str]]:
    """A definition in OpenAPI 3.0 form and the names of the definitions it references."""
    refs: set[str] = set()
    converted = _without_type_enums(_convert(schema, refs))
    if name == _INT_OR_STRING and "format" not in converted:
        # How upstream marks the int-or-string union; kubectl explain shows <IntOrString>.
        converted = {**converted, "format": "int-or-string"}
    return converted, frozenset(refs)


@functools.cache
def _converted_builtin(name: str) -> tuple[dict[str, Any], frozenset[str]] | None:
    schema = definitions().get(name)
    if schema is None:
        return None
    return convert_definition(name, schema)


def _collect_schemas(roots: Mapping[str, Schema]) -> dict[str, Any]:
    """The given definitions plus everything they reference, converted, sorted by name."""
    collected: dict[str, Any] = {}
    pending: list[str] = []
    for name, schema in roots.items():
        converted, refs = _convert_root(name, schema)
        collected[name] = converted
        pending.extend(refs)
    while pending:
        name = pending.pop()
        if name in collected:
            continue
        found = _converted_builtin(name)
        if found is None:
            continue
        collected[name], refs = found
        pending.extend(refs)
    return dict(sorted(collected.items()))


def _convert_root(name: str, schema: Schema) -> tuple[dict[str, Any], frozenset[str]]:
    if definitions().get(name) is schema:
        cached = _converted_builtin(name)
        if cached is not None:
            return cached
    return convert_definition(name, schema)


# --- kinds of one group-version ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KindSchemas:
    """The definition names one resource's operations refer to."""

    kind: str
    list_kind: str


def _reversed_domain(group: str) -> str:
    return ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"


def _fallback_schema(rt: ResourceType) -> tuple[str, Schema]:
    """A schema for a kind nobody described: any fields, typed metadata."""
    name = f"{_reversed_domain(rt.group)}.{rt.version}.{rt.kind}"
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": _REF_PREFIX + OBJECT_META},
        },
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [_gvk_dict(rt.gvk)],
    }
    return name, schema


def custom_schema(rt: ResourceType, name: str, schema: Mapping[str, Any]) -> tuple[str, Schema]:
    """A kind schema written in structural (CRD) form, made publishable: ``metadata`` typed as
    ObjectMeta and the ``x-kubernetes-group-version-kind`` that kubectl looks kinds up by."""
    properties = dict(schema.get("properties") or {})
    properties["metadata"] = {"$ref": _REF_PREFIX + OBJECT_META}
    published = {**schema, "properties": properties,
                 "x-kubernetes-group-version-kind": [_gvk_dict(rt.gvk)]}
    return name, published


def _list_schema(rt: ResourceType, kind_name: str, kind_schema: Schema) -> tuple[str, Schema]:
    """Upstream's List definition for a built-in kind, else one built like upstream's CRDs."""
    if definitions().get(kind_name) is kind_schema:
        builtin = definition_name(GroupVersionKind(rt.group, rt.version, rt.list_kind))
        if builtin is not None:
            return builtin, definitions()[builtin]
    schema = {
        "description": f"{rt.list_kind} is a list of {rt.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": _REF_PREFIX + kind_name}},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": _REF_PREFIX + LIST_META}]},
        },
        "x-kubernetes-group-version-kind": [
            _gvk_dict(GroupVersionKind(rt.group, rt.version, rt.list_kind)),
        ],
    }
    return f"{kind_name}List", schema


def _gvk_dict(gvk: GroupVersionKind) -> dict[str, str]:
    return {"group": gvk.group, "kind": gvk.kind, "version": gvk.version}


# --- operations ----------------------------------------------------------------------------

_PARAMETERS: dict[str, tuple[str, str]] = {
    "allowWatchBookmarks": ("boolean", "Ask for BOOKMARK events on a watch; ignored otherwise."),
    "continue": ("string", "The continue token of the previous page of a chunked list."),
    "dryRun": ("string", "All: run every stage of the request but persist nothing."),
    "fieldManager": (
        "string", "Name of the actor making the change, recorded in managedFields; "
        "required for apply patches.",
    ),
    "fieldSelector": ("string", "Only return objects whose fields match this selector."),
    "fieldValidation": (
        "string", "How unknown or duplicate fields in the body are handled: "
        "Ignore, Warn (default) or Strict.",
    ),
    "force": ("boolean", "Take over conflicting fields in an apply patch."),
    "gracePeriodSeconds": ("integer", "Seconds before the object is deleted; 0 is now."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean", "Delete an object that cannot be read from storage.",
    ),
    "labelSelector": ("string", "Only return objects whose labels match this selector."),
    "limit": ("integer", "Return at most this many objects and a continue token."),
    "name": ("string", "Name of the {kind}."),
    "namespace": ("string", "Namespace of the objects."),
    "orphanDependents": ("boolean", "Deprecated, use propagationPolicy: orphan dependents."),
    "pretty": ("string", "Indent the output when 'true'."),
    "propagationPolicy": (
        "string", "Garbage collection of dependents: Orphan, Background or Foreground.",
    ),
    "resourceVersion": ("string", "Which resource version the request may be served from."),
    "resourceVersionMatch": (
        "string", "How resourceVersion applies to a list: Exact or NotOlderThan.",
    ),
    "sendInitialEvents": (
        "boolean", "Start a watch with the current objects, then a bookmark marking their end.",
    ),
    "timeoutSeconds": ("integer", "Stop a list or watch call after this many seconds."),
    "watch": ("boolean", "Stream changes to the described objects instead of listing them."),
}

_LIST_PARAMETERS = (
    "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
    "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch",
)
_DELETE_COLLECTION_PARAMETERS = (
    "continue", "dryRun", "fieldSelector", "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential", "labelSelector", "limit",
    "orphanDependents", "propagationPolicy", "resourceVersion", "resourceVersionMatch",
    "sendInitialEvents", "timeoutSeconds",
)
_WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMETERS = (*_WRITE_PARAMETERS, "force")
_DELETE_PARAMETERS = (
    "dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents", "propagationPolicy",
)

_PATCH_MEDIA_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
)
_STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def _parameter(name: str, *, kind: str = "") -> dict[str, Any]:
    schema_type, description = _PARAMETERS[name]
    location = "path" if name in ("name", "namespace") else "query"
    parameter: dict[str, Any] = {
        "description": description.format(kind=kind),
        "in": location,
        "name": name,
        "schema": {"type": schema_type, "uniqueItems": True},
    }
    if location == "path":
        parameter["required"] = True
    return parameter


def _parameters(names: Iterable[str], *, kind: str = "") -> list[dict[str, Any]]:
    return [_parameter(name, kind=kind) for name in names]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF_PREFIX + name}


def _content(schema_name: str, media_types: Iterable[str]) -> dict[str, Any]:
    return {media_type: {"schema": _ref(schema_name)} for media_type in media_types}


def _responses(
    schema_name: str, codes: Iterable[str], media_types: Iterable[str] = RESPONSE_MEDIA_TYPES,
) -> dict[str, Any]:
    descriptions = {"200": "OK", "201": "Created", "202": "Accepted"}
    media = tuple(media_types)
    responses: dict[str, Any] = {
        code: {"content": _content(schema_name, media), "description": descriptions[code]}
        for code in codes
    }
    responses["401"] = {"description": "Unauthorized"}
    return responses


def _body(schema_name: str, *, required: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"content": _content(schema_name, ("*/*",))}
    if required:
        body["required"] = True
    return body


def _patch_body(strategic: bool) -> dict[str, Any]:
    media = sorted((*_PATCH_MEDIA_TYPES, _STRATEGIC_MERGE) if strategic else _PATCH_MEDIA_TYPES)
    return {"content": _content(PATCH, media), "required": True}


def _valid_operation_id(text: str, *, capitalize_first: bool) -> str:
    """Upstream's operation-id alphabet: letters and digits, a capital after each separator."""
    out: list[str] = []
    capitalize = capitalize_first
    for index, char in enumerate(text):
        if char.isalpha() or char == "_" or (index and char.isdigit()):
            out.append(char.upper() if capitalize else char)
            capitalize = False
        else:
            capitalize = True
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Naming:
    """How operations of one group-version are named and tagged."""

    group_version_id: str
    tag: str

    @classmethod
    def of(cls, group: str, version: str) -> _Naming:
        trimmed = group.removesuffix(".k8s.io") if group else "core"
        return cls(
            group_version_id=_valid_operation_id(trimmed, capitalize_first=True)
            + _valid_operation_id(version, capitalize_first=True),
            tag=_valid_operation_id(trimmed, capitalize_first=False) + "_"
            + _valid_operation_id(version, capitalize_first=False),
        )

    def operation_id(self, verb: str, rest: str) -> str:
        return f"{verb}{self.group_version_id}{rest}"


@dataclass(frozen=True, slots=True)
class _Operation:
    verb: str  # the operationId prefix: list, create, read, replace, patch, delete, watch
    action: str  # x-kubernetes-action
    name_tail: str  # what follows the group-version in the operationId
    description: str
    gvk: GroupVersionKind
    responses: dict[str, Any]
    parameters: tuple[str, ...] = ()
    body: dict[str, Any] | None = None

    def render(self, naming: _Naming) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "description": self.description,
            "operationId": naming.operation_id(self.verb, self.name_tail),
        }
        if self.parameters:
            operation["parameters"] = _parameters(self.parameters)
        if self.body is not None:
            operation["requestBody"] = self.body
        operation["responses"] = self.responses
        operation["tags"] = [naming.tag]
        operation["x-kubernetes-action"] = self.action
        operation["x-kubernetes-group-version-kind"] = _gvk_dict(self.gvk)
        return operation


_METHOD_ORDER = ("delete", "get", "patch", "post", "put")


def _path_item(
    operations: Mapping[str, _Operation], path_parameters: list[dict[str, Any]], naming: _Naming,
) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for method in _METHOD_ORDER:
        if method in operations:
            item[method] = operations[method].render(naming)
    item["parameters"] = path_parameters
    return dict(sorted(item.items()))


@dataclass(frozen=True, slots=True)
class _ResourcePaths:
    """Builds every path of one resource the way upstream's installer lays them out."""

    rt: ResourceType
    schemas: _KindSchemas
    prefix: str

    @property
    def namespaced_word(self) -> str:
        return "Namespaced" if self.rt.namespaced else ""

    @property
    def scope_path(self) -> str:
        return "/namespaces/{namespace}" if self.rt.namespaced else ""

    def collection_path(self) -> str:
        return f"{self.prefix}{self.scope_path}/{self.rt.resource}"

    def item_path(self) -> str:
        return f"{self.collection_path()}/{{name}}"

    def scope_parameters(self) -> list[str]:
        return ["namespace"] if self.rt.namespaced else []

    def path_parameters(self, names: Iterable[str], extra: Iterable[str] = ()) -> list[Any]:
        ordered = sorted({*names, *extra, "pretty"})
        return _parameters(ordered, kind=self.rt.kind)

    def has(self, verb: str) -> bool:
        return verb in self.rt.verbs

    def collection_operations(self) -> dict[str, _Operation]:
        rt, kind = self.rt, self.rt.kind
        ops: dict[str, _Operation] = {}
        tail = f"{self.namespaced_word}{kind}"
        if self.has("list"):
            ops["get"] = _Operation(
                "list", "list", tail, f"list or watch objects of kind {kind}", rt.gvk,
                _responses(self.schemas.list_kind, ("200",), WATCH_MEDIA_TYPES),
                _LIST_PARAMETERS,
            )
        if self.has("create"):
            ops["post"] = _Operation(
                "create", "post", tail, f"create a {kind}", rt.gvk,
                _responses(self.schemas.kind, ("200", "201", "202")),
                _WRITE_PARAMETERS, _body(self.schemas.kind),
            )
        if self.has("deletecollection"):
            ops["delete"] = _Operation(
                "delete", "deletecollection", f"Collection{tail}",
                f"delete a collection of {kind}", rt.gvk, _responses(STATUS, ("200",)),
                _DELETE_COLLECTION_PARAMETERS, _body(DELETE_OPTIONS, required=False),
            )
        return ops

    def item_operations(self) -> dict[str, _Operation]:
        rt, kind = self.rt, self.rt.kind
        ops: dict[str, _Operation] = {}
        tail = f"{self.namespaced_word}{kind}"
        if self.has("get"):
            ops["get"] = _Operation(
                "read", "get", tail, f"read the named {kind}", rt.gvk,
                _responses(self.schemas.kind, ("200",)),
            )
        if self.has("update"):
            ops["put"] = _Operation(
                "replace", "put", tail, f"replace the named {kind}", rt.gvk,
                _responses(self.schemas.kind, ("200", "201")),
                _WRITE_PARAMETERS, _body(self.schemas.kind),
            )
        if self.has("patch"):
            ops["patch"] = _Operation(
                "patch", "patch", tail, f"partially update the named {kind}", rt.gvk,
                _responses(self.schemas.kind, ("200", "201")),
                _PATCH_PARAMETERS, _patch_body(rt.supports_strategic_merge),
            )
        if self.has("delete"):
            ops["delete"] = _Operation(
                "delete", "delete", tail, f"delete a {kind}", rt.gvk,
                _responses(STATUS, ("200", "202")),
                _DELETE_PARAMETERS, _body(DELETE_OPTIONS, required=False),
            )
        return ops

    def subresource_operations(self, subresource: str, kind_schema: str) -> dict[str, _Operation]:
        gvk = subresource_kind(self.rt, subresource)
        verbs = subresource_verbs(subresource)
        tail = f"{self.namespaced_word}{self.rt.kind}{subresource.title()}"
        what = f"{subresource} of the named {self.rt.kind}"
        ops: dict[str, _Operation] = {}
        if "get" in verbs:
            ops["get"] = _Operation(
                "read", "get", tail, f"read {what}", gvk, _responses(kind_schema, ("200",)),
            )
        if "create" in verbs:
            ops["post"] = _Operation(
                "create", "post", tail, f"create {what}", gvk,
                _responses(kind_schema, ("200", "201", "202")),
                _WRITE_PARAMETERS, _body(kind_schema),
            )
        if "update" in verbs:
            ops["put"] = _Operation(
                "replace", "put", tail, f"replace {what}", gvk,
                _responses(kind_schema, ("200", "201")), _WRITE_PARAMETERS, _body(kind_schema),
            )
        if "patch" in verbs:
            ops["patch"] = _Operation(
                "patch", "patch", tail, f"partially update {what}", gvk,
                _responses(kind_schema, ("200", "201")),
                _PATCH_PARAMETERS, _patch_body(self.rt.supports_strategic_merge),
            )
        return ops

    def watch_operation(self, *, single: bool, all_namespaces: bool) -> _Operation:
        kind = self.rt.kind
        namespaced = "" if all_namespaces else self.namespaced_word
        suffix = "ForAllNamespaces" if all_namespaces else ""
        if single:
            return _Operation(
                "watch", "watch", f"{namespaced}{kind}",
                f"watch changes to a {kind}; deprecated: use a list with the watch parameter",
                self.rt.gvk, _responses(WATCH_EVENT, ("200",), WATCH_MEDIA_TYPES),
            )
        return _Operation(
            "watch", "watchlist", f"{namespaced}{kind}List{suffix}",
            f"watch changes to a list of {kind}; deprecated: use a list with the watch parameter",
            self.rt.gvk, _responses(WATCH_EVENT, ("200",), WATCH_MEDIA_TYPES),
        )


def _resource_paths(
    paths: _ResourcePaths, subresource_schemas: Mapping[str, str], naming: _Naming,
) -> Iterator[tuple[str, dict[str, Any]]]:
    rt = paths.rt
    scope = paths.scope_parameters()
    collection_ops = paths.collection_operations()
    if collection_ops:
        yield paths.collection_path(), _path_item(
            collection_ops, paths.path_parameters(scope), naming,
        )
    item_ops = paths.item_operations()
    if item_ops:
        yield paths.item_path(), _path_item(
            item_ops, paths.path_parameters([*scope, "name"]), naming,
        )
    for subresource in sorted(rt.subresources):
        sub_ops = paths.subresource_operations(subresource, subresource_schemas[subresource])
        if sub_ops:
            yield f"{paths.item_path()}/{subresource}", _path_item(
                sub_ops, paths.path_parameters([*scope, "name"]), naming,
            )
    yield from _list_and_watch_paths(paths, naming)


def _list_and_watch_paths(
    paths: _ResourcePaths, naming: _Naming,
) -> Iterator[tuple[str, dict[str, Any]]]:
    rt, prefix = paths.rt, paths.prefix
    scope = paths.scope_parameters()
    if rt.namespaced and paths.has("list"):
        all_namespaces = _Operation(
            "list", "list", f"{rt.kind}ForAllNamespaces",
            f"list or watch objects of kind {rt.kind}", rt.gvk,
            _responses(paths.schemas.list_kind, ("200",), WATCH_MEDIA_TYPES),
        )
        yield f"{prefix}/{rt.resource}", _path_item(
            {"get": all_namespaces}, paths.path_parameters(_LIST_PARAMETERS), naming,
        )
    if not paths.has("watch"):
        return
    watch_scope = f"{prefix}/watch{paths.scope_path}/{rt.resource}"
    yield watch_scope, _path_item(
        {"get": paths.watch_operation(single=False, all_namespaces=False)},
        paths.path_parameters(_LIST_PARAMETERS, scope), naming,
    )
    yield f"{watch_scope}/{{name}}", _path_item(
        {"get": paths.watch_operation(single=True, all_namespaces=False)},
        paths.path_parameters(_LIST_PARAMETERS, [*scope, "name"]), naming,
    )
    if rt.namespaced:
        yield f"{prefix}/watch/{rt.resource}", _path_item(
            {"get": paths.watch_operation(single=False, all_namespaces=True)},
            paths.path_parameters(_LIST_PARAMETERS), naming,
        )


# --- documents -----------------------------------------------------------------------------


def index_key(group_version: str) -> str:
    """The ``/openapi/v3`` key of a group-version: ``api/v1``, ``apis/apps/v1``."""
    return f"apis/{group_version}" if "/" in group_version else f"api/{group_version}"


def _url_prefix(group_version: str) -> str:
    return "/" + index_key(group_version)


def _split_group_version(group_version: str) -> tuple[str, str]:
    group, _, version = group_version.rpartition("/")
    return group, version


def _subresource_schema_names(rt: ResourceType, kind_name: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for subresource in rt.subresources:
        gvk = subresource_kind(rt, subresource)
        if gvk == rt.gvk:
            names[subresource] = kind_name
        else:
            names[subresource] = definition_name(gvk) or kind_name
    return names


def openapi_v3_document(
    group_version: str,
    resources: Iterable[ResourceType],
    *,
    schema_for: SchemaFor = builtin_schema_for,
) -> Document:
    """The OpenAPI 3.0 document of one group-version (``v1``, ``rbac.authorization.k8s.io/v1``).

    Every resource of that group-version gets its paths and operations; the components hold
    each kind, its List, the shared meta kinds and every definition they reference.
    """
    group, version = _split_group_version(group_version)
    naming = _Naming.of(group, version)
    prefix = _url_prefix(group_version)
    roots: dict[str, Schema] = {}
    paths: dict[str, Any] = {}
    served = sorted(
        (rt for rt in resources if rt.api_version == group_version), key=lambda rt: rt.resource,
    )
    for rt in served:
        kind_name, kind_schema = schema_for(rt) or _fallback_schema(rt)
        list_name, list_schema = _list_schema(rt, kind_name, kind_schema)
        roots[kind_name] = kind_schema
        roots[list_name] = list_schema
        subresource_schemas = _subresource_schema_names(rt, kind_name)
        for name in subresource_schemas.values():
            if name not in roots and name in definitions():
                roots[name] = definitions()[name]
        resource_paths = _ResourcePaths(rt, _KindSchemas(kind_name, list_name), prefix)
        paths.update(_resource_paths(resource_paths, subresource_schemas, naming))
    for shared in (STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT):
        roots.setdefault(shared, definitions()[shared])
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": _collect_schemas(roots)},
    }


def served_group_versions(resources: Iterable[ResourceType]) -> list[str]:
    """Every group-version with at least one resource, core first, in first-seen order."""
    seen: dict[str, None] = {}
    for rt in resources:
        seen.setdefault(rt.api_version, None)
    return sorted(seen, key=lambda gv: "/" in gv)


def openapi_v3_index_for_hashes(hashes: Mapping[str, str], *, base: str = "") -> Document:
    """``GET /openapi/v3`` from already computed document hashes, keyed by group-version.

    ``base`` is put in front of ``/openapi/v3``; leave it empty behind a path prefix such
    as ``/clusters/root``: client-go keeps its own prefix for URLs that start with
    ``/openapi/v3`` and treats any other URL as relative to the host.
    """
    return {
        "paths": {
            index_key(gv): {
                "serverRelativeURL": f"{base}/openapi/v3/{index_key(gv)}?hash={digest}",
            }
            for gv, digest in sorted(hashes.items(), key=lambda item: index_key(item[0]))
        },
    }


def openapi_v3_index(
    resources: Iterable[ResourceType],
    *,
    base: str = "",
    schema_for: SchemaFor = builtin_schema_for,
) -> Document:
    """``GET /openapi/v3``: one entry per group-version, hashed over its document's bytes."""
    served = list(resources)
    hashes = {
        gv: document_hash(openapi_v3_document(gv, served, schema_for=schema_for))
        for gv in served_group_versions(served)
    }
    return openapi_v3_index_for_hashes(hashes, base=base)


def document_hash(document: Document) -> str:
    """The ``hash`` query value for a document: uppercase hex SHA-512 of its bytes."""
    return content_hash(encode_document(document))
