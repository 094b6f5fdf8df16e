"""Validation of ``metadata`` (ObjectMeta), shared by every kind on create and update.

Whatever the kind, upstream checks the same things in ``metadata``: a valid name (the rule
differs per kind and is passed in), the namespace against the kind's scope, label and
annotation syntax, the 256 KiB annotation budget, finalizer names, owner references, and
on update that identity fields (name, namespace, uid, creation time...) did not move.
Failures come back as :class:`Cause` lists worded as upstream's ``field.Error`` s; the
caller wraps them in a 422 with :func:`kplane.apimachinery.errors.invalid`. The one
namespace check upstream reports as a 400 (body vs URL) raises instead.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from kplane.apimachinery.errors import (
    Cause,
    bad_request,
    field_forbidden,
    field_invalid,
    field_required,
    field_too_long,
)
from kplane.apimachinery.labels import validate_label_map
from kplane.apimachinery.names import (
    NameValidator,
    is_qualified_name,
    mask_trailing_dash,
    validate_dns_label_name,
)

TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 256 * 1024
FIELD_MANAGER_MAX_LENGTH = 128
SUBRESOURCE_NAME_MAX_LENGTH = 256
FIELD_IMMUTABLE = "field is immutable"
NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)
FINALIZER_ORPHAN_DEPENDENTS = "orphan"
FINALIZER_DELETE_DEPENDENTS = "foregroundDeletion"

# Events may not own anything: the garbage collector would delete objects with their events.
_BANNED_OWNERS = frozenset({("", "v1", "Event")})

_META = "metadata"


def _path(child: str) -> str:
    return f"{_META}.{child}"


def _text(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""


def check_request_namespace(meta: Mapping[str, Any] | None, request_namespace: str) -> None:
    """A body naming another namespace than the URL is a 400, as upstream's BeforeCreate."""
    body_namespace = _text(meta or {}, "namespace")
    if body_namespace and body_namespace != request_namespace:
        raise bad_request(NAMESPACE_MISMATCH)


def apply_request_namespace(
    meta: MutableMapping[str, Any], *, namespaced: bool, request_namespace: str | None
) -> None:
    """Settle ``metadata.namespace`` before validation, as upstream's BeforeCreate/Update do.

    Namespaced kinds take the URL's namespace when the body has none (and a different one
    is a 400); cluster-scoped kinds silently lose any namespace the client sent.
    """
    if not namespaced:
        meta.pop("namespace", None)
        return
    if request_namespace is None:
        return
    check_request_namespace(meta, request_namespace)
    if not _text(meta, "namespace"):
        meta["namespace"] = request_namespace


def validate_object_meta(
    meta: Mapping[str, Any] | None,
    *,
    namespaced: bool,
    name_validator: NameValidator,
    request_namespace: str | None,
    generate_name_validator: NameValidator | None = None,
) -> list[Cause]:
    """Field errors of ``metadata`` on create (upstream ``ValidateObjectMeta``).

    ``name_validator`` checks a full name; ``generateName`` is checked by
    ``generate_name_validator``, by default the name validator after upstream's masking of
    a trailing dash. A namespace in the body that differs from ``request_namespace``
    raises 400 BadRequest rather than returning a cause.
    """
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        return [field_invalid(_META, meta, "must be an object")]
    if request_namespace is not None and namespaced:
        check_request_namespace(meta, request_namespace)
    causes = _name_causes(meta, name_validator, generate_name_validator)
    causes += _namespace_causes(meta, namespaced=namespaced)
    causes += _generation_causes(meta.get("generation"))
    causes += validate_label_map(meta.get("labels"), _path("labels"))
    causes += validate_annotations(meta.get("annotations"), _path("annotations"))
    causes += validate_owner_references(meta.get("ownerReferences"), _path("ownerReferences"))
    causes += validate_finalizers(meta.get("finalizers"), _path("finalizers"))
    causes += validate_managed_fields(meta.get("managedFields"), _path("managedFields"))
    return causes


def _name_causes(
    meta: Mapping[str, Any],
    name_validator: NameValidator,
    generate_name_validator: NameValidator | None,
) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("name", "generateName"):
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            causes.append(field_invalid(_path(key), value, "must be a string"))
    generate_name = _text(meta, "generateName")
    if generate_name:
        if generate_name_validator is not None:
            problems = generate_name_validator(generate_name)
        else:
            problems = name_validator(mask_trailing_dash(generate_name))
        causes.extend(field_invalid(_path("generateName"), generate_name, m) for m in problems)
    name = _text(meta, "name")
    if name:
        causes.extend(field_invalid(_path("name"), name, m) for m in name_validator(name))
    elif not generate_name:
        # Upstream runs after name generation, so only a missing generateName lands here.
        causes.append(field_required(
            _path("name"), "Required value: name or generateName is required"
        ))
    return causes


def _namespace_causes(meta: Mapping[str, Any], *, namespaced: bool) -> list[Cause]:
    namespace = _text(meta, "namespace")
    if not namespaced:
        if namespace:
            return [field_forbidden(_path("namespace"), "not allowed on this type")]
        return []
    if not namespace:
        return [field_required(_path("namespace"))]
    return [
        field_invalid(_path("namespace"), namespace, msg)
        for msg in validate_dns_label_name(namespace)
    ]


def _generation_causes(generation: Any) -> list[Cause]:
    if generation is None:
        return []
    if not isinstance(generation, int) or isinstance(generation, bool):
        return [field_invalid(_path("generation"), generation, "must be an integer")]
    if generation < 0:
        return [
            field_invalid(_path("generation"), generation, "must be greater than or equal to 0")
        ]
    return []


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    """Keys are qualified names (case-insensitive); keys and values total at most 256 KiB."""
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [field_invalid(path, annotations, "must be a map of strings")]
    causes: list[Cause] = []
    total = 0
    for key, value in annotations.items():
        causes.extend(field_invalid(path, key, msg) for msg in is_qualified_name(key.lower()))
        if not isinstance(value, str):
            causes.append(field_invalid(path, value, "must be a string"))
            continue
        total += _utf8_length(key) + _utf8_length(value)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES:
        causes.append(field_too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES))
    return causes


def _group_version_kind(api_version: str, kind: str) -> tuple[str, str, str]:
    """``schema.FromAPIVersionAndKind``: an unparsable apiVersion leaves group and version empty."""
    if api_version.count("/") > 1:
        return "", "", kind
    group, _, version = api_version.rpartition("/")
    return group, version, kind


def _owner_reference_causes(ref: Any, path: str) -> list[Cause]:
    if not isinstance(ref, Mapping):
        return [field_invalid(path, ref, "must be an object")]
    causes: list[Cause] = []
    api_version, kind = _text(ref, "apiVersion"), _text(ref, "kind")
    group, version, _ = _group_version_kind(api_version, kind)
    if not version:
        causes.append(field_invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
    if not kind:
        causes.append(field_invalid(f"{path}.kind", kind, "kind must not be empty"))
    if not _text(ref, "name"):
        causes.append(field_invalid(f"{path}.name", _text(ref, "name"), "name must not be empty"))
    if not _text(ref, "uid"):
        causes.append(field_invalid(f"{path}.uid", _text(ref, "uid"), "uid must not be empty"))
    if (group, version, kind) in _BANNED_OWNERS:
        causes.append(field_invalid(
            path, dict(ref), f"{group}/{version}, Kind={kind} is disallowed from being an owner"
        ))
    return causes


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    """apiVersion, kind, name and uid present; at most one controller; no Event owners."""
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [field_invalid(path, refs, "must be a list")]
    causes: list[Cause] = []
    first_controller = ""
    for ref in refs:
        # Upstream reports every reference under the list's own path, without an index.
        causes.extend(_owner_reference_causes(ref, path))
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            current = f"{_text(ref, 'kind')}/{_text(ref, 'name')}"
            if first_controller:
                causes.append(field_invalid(
                    path, refs,
                    'Only one reference can have Controller set to true. Found "true" in '
                    f"references for {first_controller} and {current}",
                ))
            else:
                first_controller = current
    return causes


def validate_finalizers(finalizers: Any, path: str) -> list[Cause]:
    """Qualified names, and not both ``orphan`` and ``foregroundDeletion``."""
    if finalizers is None:
        return []
    if not isinstance(finalizers, list):
        return [field_invalid(path, finalizers, "must be a list of strings")]
    causes: list[Cause] = []
    for finalizer in finalizers:
        if not isinstance(finalizer, str):
            causes.append(field_invalid(path, finalizer, "must be a string"))
            continue
        causes.extend(field_invalid(path, finalizer, msg) for msg in is_qualified_name(finalizer))
    if FINALIZER_ORPHAN_DEPENDENTS in finalizers and FINALIZER_DELETE_DEPENDENTS in finalizers:
        causes.append(field_invalid(
            path, finalizers,
            f"finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} "
            "cannot be both set",
        ))
    return causes


def validate_managed_fields(entries: Any, path: str) -> list[Cause]:
    """Each entry: operation Apply/Update, fieldsType FieldsV1, a manager of <= 128 chars."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [field_invalid(path, entries, "must be a list")]
    causes: list[Cause] = []
    for index, entry in enumerate(entries):
        entry_path = f"{path}[{index}]"
        if not isinstance(entry, Mapping):
            causes.append(field_invalid(entry_path, entry, "must be an object"))
            continue
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            causes.append(field_invalid(
                f"{entry_path}.operation", operation or "", "must be `Apply` or `Update`"
            ))
        fields_type = entry.get("fieldsType")
        if fields_type and fields_type != "FieldsV1":
            causes.append(
                field_invalid(f"{entry_path}.fieldsType", fields_type, "must be `FieldsV1`")
            )
        if len(_text(entry, "manager")) > FIELD_MANAGER_MAX_LENGTH:
            causes.append(field_too_long(f"{entry_path}.manager", FIELD_MANAGER_MAX_LENGTH))
        if len(_text(entry, "subresource")) > SUBRESOURCE_NAME_MAX_LENGTH:
            causes.append(field_too_long(f"{entry_path}.subresource", SUBRESOURCE_NAME_MAX_LENGTH))
    return causes


_IMMUTABLE_FIELDS = (
    "name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def _unset_as_none(value: Any) -> Any:
    # Go compares zero values: an absent string and "" are the same thing.
    return None if value == "" else value


def validate_object_meta_update(
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    *,
    require_resource_version: bool = True,
) -> list[Cause]:
    """Field errors of ``metadata`` on update (upstream ``ValidateObjectMetaUpdate``).

    Call it after the store has copied what an update may omit (uid, creation time, the
    resourceVersion of an unconditional update), as upstream's BeforeUpdate does.
    """
    new = new or {}
    old = old or {}
    causes: list[Cause] = []
    if old.get("deletionTimestamp"):
        causes += _no_new_finalizers(new.get("finalizers"), old.get("finalizers"))
    if require_resource_version and not _text(new, "resourceVersion"):
        causes.append(
            field_invalid(_path("resourceVersion"), "", "must be specified for an update")
        )
    new_generation, old_generation = new.get("generation") or 0, old.get("generation") or 0
    both_numbers = isinstance(new_generation, int) and isinstance(old_generation, int)
    if both_numbers and new_generation < old_generation:
        causes.append(
            field_invalid(_path("generation"), new_generation, "must not be decremented")
        )
    for key in _IMMUTABLE_FIELDS:
        new_value = _unset_as_none(new.get(key))
        if new_value != _unset_as_none(old.get(key)):
            shown = "null" if new_value is None else new_value
            causes.append(field_invalid(_path(key), shown, FIELD_IMMUTABLE))
    causes += validate_label_map(new.get("labels"), _path("labels"))
    causes += validate_annotations(new.get("annotations"), _path("annotations"))
    causes += validate_owner_references(new.get("ownerReferences"), _path("ownerReferences"))
    causes += validate_managed_fields(new.get("managedFields"), _path("managedFields"))
    return causes


def _no_new_finalizers(new: Any, old: Any) -> list[Cause]:
    new_set = {f for f in new or [] if isinstance(f, str)}
    old_set = {f for f in old or [] if isinstance(f, str)}
    extra = sorted(new_set - old_set)
    if not extra:
        return []
    shown = "[]string{" + ", ".join(f'"{f}"' for f in extra) + "}"
    return [field_forbidden(
        _path("finalizers"),
        "no new finalizers can be added if the object is being deleted, "
        f"found new finalizers {shown}",
    )]
