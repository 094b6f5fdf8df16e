"""Server-side apply and the ``metadata.managedFields`` bookkeeping of every write.

Kubernetes records, per object, which manager owns which fields: an entry per manager
and operation (``Apply`` or ``Update``) holding a FieldsV1 set. Server-side apply merges an
applied configuration into the live object by the schema, refuses to silently overwrite
fields other managers own (409 with one cause per field), and removes fields its manager
stopped applying. Every other write (create, update, patch) moves ownership of what it
changed to its manager, without conflicts. Real clients rely on the exact behaviour:
``kubectl apply --server-side`` reads the conflict causes, migrates client-side ownership
by rewriting managedFields, and controllers re-apply expecting no-ops to stay no-ops.

This module follows upstream's field manager (k8s.io/apimachinery
``util/managedfields``) and structured-merge-diff's ``merge.Updater``:

- :func:`server_side_apply` -- the apply verb, including the ``before-first-apply``
  owner for objects without managedFields and the client-side-apply upgrade path that
  lets manager ``kubectl`` take over fields recorded in the last-applied annotation;
- :func:`track_update` -- ownership for every non-apply write, honouring managedFields a
  client sent (``[]`` or ``[{}]`` reset them);
- :func:`manager_from_user_agent` -- the default manager name.

Objects are plain dicts; results share unchanged sub-objects with their inputs, so
callers must treat nested values as read-only (replace, never mutate in place).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from kplane.apimachinery.errors import Cause, StatusError, bad_request
from kplane.apimachinery.fieldpath import (
    EMPTY,
    MISSING,
    SELF,
    STRIPPED_FIELDS,
    FieldPathError,
    FieldSet,
    Shape,
    Trie,
    child_node,
    compare_objects,
    created_fields,
    decode,
    effective_kind,
    encode,
    fieldset_from_object,
    go_json,
    list_elements,
    path_text,
    root_shape,
    shape_of,
)
from kplane.apimachinery.typeinfo import ANY, TypeNode

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS: Final = 10
ANCIENT_CHANGES_MANAGER: Final = "ancient-changes"
BEFORE_FIRST_APPLY_MANAGER: Final = "before-first-apply"
FIELD_MANAGER_MAX_LENGTH: Final = 128
_KUBECTL: Final = "kubectl"
_SCALAR_TYPES: Final = frozenset({str, int, float, bool})


# Managed-fields entries.


@dataclass(slots=True)
class _Entry:
    """One managedFields entry; ``raw`` is the wire dict it came from while unchanged."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: FieldSet
    raw: dict[str, Any] | None = None

    @property
    def identity(self) -> str:
        return _identity(self.manager, self.operation, self.api_version, self.subresource)

    def to_wire(self) -> dict[str, Any]:
        if self.raw is not None:
            return self.raw
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = encode(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


@functools.lru_cache(maxsize=4096)
def _identity(manager: str, operation: str, api_version: str, subresource: str) -> str:
    """Upstream's manager identifier: the entry as JSON without time and fields, and
    without apiVersion for appliers (an applier is the same whatever version it used)."""
    parts = [f'"manager":{go_json(manager)}', f'"operation":{go_json(operation)}']
    if operation != "Apply" and api_version:
        parts.append(f'"apiVersion":{go_json(api_version)}')
    if subresource:
        parts.append(f'"subresource":{go_json(subresource)}')
    return "{" + ",".join(parts) + "}"


Entries = dict[str, _Entry]


def _decode_entries(raw: Any, *, trusted: bool) -> Entries:
    """Entries by identity; raises ValueError on anything upstream would not decode.

    ``trusted`` entries were written by this module, so their FieldsV1 tries are used as
    they are instead of being parsed and re-encoded.
    """
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    out: Entries = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"managed fields entry {index} is not an object")
        operation = item.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = item.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = item.get("fieldsType")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {fields_type!r} in managed fields entry {index}")
        manager = item.get("manager", "")
        subresource = item.get("subresource", "")
        time = item.get("time")
        if not isinstance(manager, str) or not isinstance(subresource, str) or not (
            time is None or isinstance(time, str)
        ):
            raise ValueError(f"invalid managed fields entry {index}")
        raw_fields = item.get("fieldsV1")
        if raw_fields is None:
            fields = EMPTY
        elif trusted and isinstance(raw_fields, dict):
            fields = FieldSet(raw_fields)
        else:
            fields = decode(raw_fields)
        entry = _Entry(manager, operation, api_version, subresource, time, fields,
                       raw=item if trusted else None)
        out[entry.identity] = entry
    return out


def _decode_or_empty(raw: Any) -> Entries:
    try:
        return _decode_entries(raw, trusted=True)
    except ValueError:
        # Upstream resets undecodable managedFields rather than failing the write.
        return {}


@functools.lru_cache(maxsize=4096)
def _seconds(time: str | None) -> int:
    if not time:
        return 0
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode_entries(entries: Entries) -> list[dict[str, Any]]:
    """Wire entries in upstream's order: Apply before Update, then oldest first."""
    ordered = sorted(
        entries.values(),
        key=lambda e: (e.operation, _seconds(e.time), e.manager, e.api_version, e.subresource),
    )
    return [e.to_wire() for e in ordered]


def _set_fields(entry: _Entry, fields: FieldSet) -> None:
    if fields is not entry.fields:
        entry.fields = fields
        entry.raw = None


def _drop_empty(entries: Entries) -> None:
    for identity in [i for i, e in entries.items() if e.fields.empty]:
        del entries[identity]


def _strip_all(entries: Entries) -> None:
    for entry in entries.values():
        # Entries still as stored were stripped when they were written.
        if entry.raw is None:
            _set_fields(entry, entry.fields.difference(STRIPPED_FIELDS))


def _cap_update_managers(entries: Entries) -> None:
    """Fold the oldest Update entries into ``ancient-changes`` buckets (one per version)
    until at most :data:`MAX_UPDATE_MANAGERS` remain, as upstream's capManagers does."""
    updaters = [i for i, e in entries.items() if e.operation == "Update"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda i: (_seconds(entries[i].time), i))
    first_by_version: dict[str, str] = {}
    remaining = len(updaters)
    for identity in updaters:
        if remaining <= MAX_UPDATE_MANAGERS:
            break
        entry = entries[identity]
        version = entry.api_version
        bucket_id = _identity(ANCIENT_CHANGES_MANAGER, "Update", version, "")
        first = first_by_version.get(version)
        if first is None:
            first_by_version[version] = identity
            continue
        if bucket_id not in entries:
            moved = entries.pop(first)
            entries[bucket_id] = _Entry(
                ANCIENT_CHANGES_MANAGER, "Update", version, "", moved.time, moved.fields
            )
        bucket = entries[bucket_id]
        _set_fields(bucket, entry.fields.union(bucket.fields))
        bucket.time = entry.time
        bucket.raw = None
        del entries[identity]
        remaining -= 1


def _write_managed_fields(obj: dict[str, Any], entries: Entries) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    if entries:
        meta["managedFields"] = _encode_entries(entries)
    else:
        meta.pop("managedFields", None)


# Update: ownership for writes that are not apply.


def _is_reset(raw: Any) -> bool:
    """``[]`` or ``[{}]``: the client asks to clear managedFields."""
    return isinstance(raw, list) and (not raw or (len(raw) == 1 and raw[0] == {}))


def _entries_for_update(old_raw: Any, new_raw: Any, *, subresource: str) -> Entries:
    """Upstream's decodeLiveOrNew: the client's managedFields if it sent valid ones."""
    if subresource or new_raw is MISSING or new_raw is None:
        return _decode_or_empty(old_raw)
    if _is_reset(new_raw):
        return {}
    if new_raw is old_raw or new_raw == old_raw:
        return _decode_or_empty(old_raw)
    try:
        entries = _decode_entries(new_raw, trusted=False)
    except ValueError:
        return _decode_or_empty(old_raw)
    return entries or _decode_or_empty(old_raw)


def _metadata(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = obj.get("metadata") if obj is not None else None
    return meta if isinstance(meta, Mapping) else {}


def track_update(
    old: dict[str, Any] | None, new: dict[str, Any], *, node: TypeNode, manager: str,
    api_version: str, now: str, subresource: str = "", reset: FieldSet | None = None,
) -> dict[str, Any]:
    """Record a create, update or non-apply patch in ``new``'s managedFields.

    The fields the write added or changed go to the ``(manager, Update)`` entry for this
    API version (and subresource), whose time becomes ``now``; every other entry loses
    them and what the write removed; entries left empty disappear. An existing object
    without managedFields stays without (upstream tracks only from creation). ``reset``
    paths (``status`` on a main resource) are not tracked. ``new`` is updated in place
    (its ``metadata`` dict) and returned.
    """
    new_meta = new.get("metadata")
    if not isinstance(new_meta, dict):
        return new
    if old is None and not subresource and reset is None and \
            new_meta.get("managedFields") is None:
        _record_create(new_meta, created_fields(new, node), manager=manager,
                       api_version=api_version, now=now)
        return new
    old_raw = _metadata(old).get("managedFields")
    entries = _entries_for_update(
        old_raw, new_meta.get("managedFields", MISSING), subresource=subresource
    )
    if not entries and old is not None:
        new_meta.pop("managedFields", None)
        return new
    # Entries decoded from the old object lose what nobody owns first; the write's own
    # fields come out of the comparison already without it.
    _strip_all(entries)
    comparison = compare_objects(old, new, node, reset=reset, strip=True)
    if not comparison.same:
        _record_update(
            entries, comparison.changed, comparison.removed, manager=manager,
            api_version=api_version, now=now, subresource=subresource,
        )
    _drop_empty(entries)
    _cap_update_managers(entries)
    _write_managed_fields(new, entries)
    return new


def _record_create(meta: dict[str, Any], fields: Trie, *, manager: str, api_version: str,
                   now: str) -> None:
    """A create without managedFields of its own: one Update entry owning what it set.

    The same entry the general path builds, written straight from the trie (which
    :func:`created_fields` builds in wire order); creates are the most frequent write."""
    if not fields:
        meta.pop("managedFields", None)
        return
    meta["managedFields"] = [{
        "manager": manager, "operation": "Update", "apiVersion": api_version, "time": now,
        "fieldsType": "FieldsV1", "fieldsV1": fields,
    }]


def _record_update(
    entries: Entries, changed: FieldSet, removed: FieldSet, *, manager: str,
    api_version: str, now: str, subresource: str,
) -> None:
    """``changed`` comes without :data:`STRIPPED_FIELDS` (``compare_objects(strip=True)``)."""
    for entry in entries.values():
        _set_fields(entry, entry.fields.difference(changed).difference(removed))
    own = changed
    if own.empty:
        return
    identity = _identity(manager, "Update", api_version, subresource)
    previous = entries.get(identity)
    if previous is not None:
        own = own.union(previous.fields)
    entries[identity] = _Entry(manager, "Update", api_version, subresource, now, own)


# Apply.


def _gvk_text(obj: Mapping[str, Any]) -> str:
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    api_version = api_version if isinstance(api_version, str) else ""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _object_text(obj: Mapping[str, Any]) -> str:
    meta = _metadata(obj)
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}; {_gvk_text(obj)}"


def _unfit_configuration(message: str) -> StatusError:
    """A configuration that does not fit the schema. Upstream lets this surface as a bare
    500; it is the client's input that is wrong, so it is a 400 here, same words."""
    return bad_request(message)


def _check_applied(applied: Mapping[str, Any], live: Mapping[str, Any] | None, *,
                   api_version: str) -> None:
    kind_mismatch = live is not None and live.get("kind") not in (None, applied.get("kind"))
    if applied.get("apiVersion") != api_version or kind_mismatch:
        raise bad_request(f"invalid object type: {_gvk_text(applied)}")
    managed = _metadata(applied).get("managedFields")
    if managed is not None:
        raise _unfit_configuration(
            f"failed to create typed patch object ({_object_text(applied)}): "
            f"managed fields must be nil but was {orjson.dumps(managed).decode()}"
        )


def server_side_apply(
    live: dict[str, Any] | None, applied: dict[str, Any], *, node: TypeNode, manager: str,
    api_version: str, force: bool, now: str, subresource: str = "",
    reset: FieldSet | None = None,
) -> dict[str, Any]:
    """Apply a configuration: the new object, with managedFields, for the caller to
    validate and store. ``live`` None creates.

    Raises :class:`StatusError`: 409 Conflict (cause ``FieldManagerConflict`` per field)
    when the configuration changes a field another manager owns and ``force`` is false;
    400 for a configuration of another kind or version, or one that does not fit the
    schema (upstream answers that with a bare 500). ``reset`` paths are neither owned nor compared.
    """
    _check_applied(applied, live, api_version=api_version)
    try:
        applied_set = fieldset_from_object(applied, node, strip=False, strict=True, reset=reset)
    except FieldPathError as exc:
        raise _unfit_configuration(
            f"failed to create typed patch object ({_object_text(applied)}): {exc}"
        ) from None
    base: dict[str, Any] = live if live is not None else {}
    entries = _decode_or_empty(_metadata(live).get("managedFields"))
    if not entries and live is not None:
        _adopt_existing_fields(entries, live, node=node, api_version=api_version, now=now,
                               reset=reset)

    identity = _identity(manager, "Apply", api_version, subresource)
    previous = entries.get(identity)
    last = previous.fields if previous is not None else EMPTY
    entries[identity] = _Entry(
        manager, "Apply", api_version, subresource,
        previous.time if previous is not None else None, applied_set,
    )
    merged = _merge(base, applied, node, root=True)
    if not last.difference(applied_set).empty:
        merged = _prune_unowned(merged, last, _all_fields(entries), node)
    merged = dict(merged)
    if isinstance(merged.get("metadata"), dict):
        merged["metadata"] = {
            k: v for k, v in merged["metadata"].items() if k != "managedFields"
        }

    comparison = compare_objects(base, merged, node)
    if reset is not None and not reset.empty:
        filtered = compare_objects(base, merged, node, reset=reset)
    else:
        filtered = comparison
    _settle_conflicts(
        entries, identity, filtered.changed, filtered.removed, force=force, manager=manager,
        live=live, node=node,
    )
    if not comparison.same:
        entries[identity].time = now
    _strip_all(entries)
    _keep_stored_entry_if_unchanged(entries, identity, previous)
    _drop_empty(entries)
    _cap_update_managers(entries)
    if manager == _KUBECTL:
        _sync_last_applied(merged, applied)
    _write_managed_fields(merged, entries)
    return merged


def _keep_stored_entry_if_unchanged(entries: Entries, identity: str,
                                    previous: _Entry | None) -> None:
    """A re-apply of the same configuration keeps its stored entry (and its encoding)."""
    entry = entries.get(identity)
    if entry is None or previous is None or previous.raw is None:
        return
    if (entry.time, entry.api_version) == (previous.time, previous.api_version) and \
            entry.fields == previous.fields:
        entries[identity] = previous


def _adopt_existing_fields(entries: Entries, live: Mapping[str, Any], *, node: TypeNode,
                           api_version: str, now: str, reset: FieldSet | None) -> None:
    """Give the fields of an object nobody owns yet to ``before-first-apply`` (upstream),
    so a first apply conflicts with values it did not set."""
    owned = compare_objects(None, live, node, reset=reset).changed.difference(STRIPPED_FIELDS)
    if not owned.empty:
        entry = _Entry(BEFORE_FIRST_APPLY_MANAGER, "Update", api_version, "", now, owned)
        entries[entry.identity] = entry


def _all_fields(entries: Entries) -> FieldSet:
    out = EMPTY
    for entry in entries.values():
        out = out.union(entry.fields)
    return out


def _settle_conflicts(
    entries: Entries, applier: str, changed: FieldSet, removed: FieldSet, *, force: bool,
    manager: str, live: Mapping[str, Any] | None, node: TypeNode,
) -> None:
    """Raise on conflicts unless forced; otherwise take changed fields from the others."""
    conflicts = [
        (entry, overlap) for identity, entry in entries.items() if identity != applier
        if not (overlap := entry.fields.intersection(changed)).empty
    ]
    if conflicts and not force:
        remaining = conflicts
        if manager == _KUBECTL and live is not None:
            remaining = _conflicts_not_in_last_applied(conflicts, live, node)
        if remaining:
            raise _conflict_error(remaining)
    for entry, overlap in conflicts:
        _set_fields(entry, entry.fields.difference(overlap))
    if not removed.empty:
        for identity, entry in entries.items():
            if identity != applier:
                _set_fields(entry, entry.fields.difference(removed))


def _conflicts_not_in_last_applied(
    conflicts: list[tuple[_Entry, FieldSet]], live: Mapping[str, Any], node: TypeNode,
) -> list[tuple[_Entry, FieldSet]]:
    """Conflicts left once fields the client-side-apply annotation records (with the
    value live still has) are allowed: ``kubectl apply --server-side`` takes those over."""
    annotations = _metadata(live).get("annotations")
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(text, str) or not text:
        return conflicts
    try:
        last_applied = orjson.loads(text)
    except orjson.JSONDecodeError:
        return conflicts
    if not isinstance(last_applied, dict):
        return conflicts
    comparison = compare_objects(last_applied, live, node)
    allowed = fieldset_from_object(last_applied, node, strip=False).difference(
        comparison.changed
    ).difference(comparison.removed)
    remaining = []
    for entry, overlap in conflicts:
        kept = [path for path in overlap.paths() if not allowed.has(path)]
        if kept:
            remaining.append((entry, FieldSet.from_paths(kept)))
    return remaining


def _describe_manager(entry: _Entry) -> str:
    """Upstream's printManager: ``"m"``, ``"m" with subresource "s"``, ``... using v1``."""
    text = orjson.dumps(entry.manager).decode()
    if entry.subresource:
        text += f" with subresource {orjson.dumps(entry.subresource).decode()}"
    if entry.operation == "Update":
        text += f" using {entry.api_version}"
    return text


def _conflict_error(conflicts: list[tuple[_Entry, FieldSet]]) -> StatusError:
    ordered = sorted(conflicts, key=lambda pair: pair[0].identity)
    causes: list[Cause] = []
    lines: list[str] = []
    for entry, overlap in ordered:
        who = _describe_manager(entry)
        lines.append(f"conflicts with {who}:")
        for path in overlap.paths():
            text = path_text(path)
            causes.append(Cause("FieldManagerConflict", f"conflict with {who}", text))
            lines.append(f"- {text}")
    if len(causes) == 1:
        message = (
            f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
        )
    else:
        message = f"Apply failed with {len(causes)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, causes=causes)


def _sync_last_applied(merged: dict[str, Any], applied: Mapping[str, Any]) -> None:
    """Keep a client-side-apply annotation in step with what ``kubectl`` server-side
    applies, so a later client-side apply computes its patch from the right base."""
    annotations = _metadata(merged).get("annotations")
    if not isinstance(annotations, dict) or LAST_APPLIED_ANNOTATION not in annotations:
        return
    merged["metadata"]["annotations"] = {
        **annotations, LAST_APPLIED_ANNOTATION: _last_applied_text(applied),
    }


def _last_applied_text(applied: Mapping[str, Any]) -> str:
    config = dict(applied)
    meta = config.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        annotations = {
            k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED_ANNOTATION
        }
        config["metadata"] = {**meta, "annotations": annotations}
    # Go's encoder writes a trailing newline.
    return go_json(config) + "\n"


# Merging an applied configuration into the live object.


def _shape(node: TypeNode | None, *, root: bool) -> Shape:
    if root and node is not None:
        return root_shape(node)
    return shape_of(node or ANY)


def _merge(live: Any, applied: Any, node: TypeNode | None, *, root: bool = False) -> Any:
    """``applied`` merged into ``live``: applied values win; granular maps merge per key,
    list-maps and sets per item; leaves and atomic values are replaced whole."""
    if live is MISSING or type(applied) in _SCALAR_TYPES:
        return applied
    if applied is MISSING:
        return live
    shape = _shape(node, root=root)
    kind = effective_kind(shape, live, applied)
    if kind == "leaf":
        return applied
    if kind == "map":
        lhs = live if isinstance(live, dict) else {}
        rhs = applied if isinstance(applied, dict) else {}
        if not lhs and not rhs:
            return applied
        return _merge_map(lhs, rhs, shape, root=root)
    lhs_items = live if isinstance(live, list) else []
    rhs_items = applied if isinstance(applied, list) else []
    if not lhs_items and not rhs_items:
        return applied
    lhs_elements = list_elements(lhs_items, shape)
    rhs_elements = list_elements(rhs_items, shape)
    if lhs_elements is None or rhs_elements is None:
        return applied
    return _merge_items(lhs_items, lhs_elements, rhs_items, rhs_elements, shape.node.items())


def _merge_map(live: dict[str, Any], applied: dict[str, Any], shape: Shape, *,
               root: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in live.items():
        incoming = applied.get(key, MISSING)
        if incoming is MISSING:
            out[key] = value
        else:
            out[key] = _merge(value, incoming, child_node(shape, key, root=root))
    for key, value in applied.items():
        if key not in live:
            out[key] = value
    return out


def _merge_items(
    lhs: list[Any], lhs_elements: list[str], rhs: list[Any], rhs_elements: list[str],
    items_node: TypeNode | None,
) -> list[Any]:
    """Merge two granular lists keeping upstream's order: live items stay where they
    are, items both sides have follow the applied order, new items come where applied
    puts them."""
    lhs_by: dict[str, Any] = {}
    for element, item in zip(lhs_elements, lhs, strict=True):
        # A duplicated live item is not merged with anything: it counts as null.
        lhs_by[element] = None if element in lhs_by else item
    rhs_by = dict(zip(rhs_elements, rhs, strict=True))
    shared = iter([e for e in rhs_elements if e in lhs_by])
    next_shared = next(shared, None)
    merged_rhs: set[str] = set()
    out: list[Any] = []
    li, ri = 0, 0
    while li < len(lhs_elements) or ri < len(rhs_elements):
        if li < len(lhs_elements) and ri < len(rhs_elements):
            element = lhs_elements[li]
            if element == rhs_elements[ri]:
                merged_rhs.add(element)
                out.append(_merge(lhs_by[element], rhs_by[element], items_node))
                li += 1
                ri += 1
                next_shared = next(shared, None)
                continue
            if element in rhs_by and next_shared is not None and next_shared != element:
                # A shared item, but not the next one in applied order: it comes later.
                li += 1
                continue
        if li < len(lhs_elements):
            element = lhs_elements[li]
            if element not in rhs_by:
                out.append(lhs[li])
                li += 1
                continue
            if element in merged_rhs:
                li += 1
        if ri < len(rhs_elements):
            element = rhs_elements[ri]
            merged_rhs.add(element)
            out.append(_merge(lhs_by.get(element, MISSING), rhs_by[element], items_node))
            ri += 1
            if next_shared is not None and next_shared == element:
                next_shared = next(shared, None)
    return out


# Removing what the applier stopped applying.


def _in_set(node: Trie | None, *, named: bool) -> bool:
    """Whether a path is in a set once named fields with owned children count as owned
    (upstream's EnsureNamedFieldsAreMembers)."""
    if node is None:
        return False
    if not node or SELF in node:
        return True
    return named


def _prune_unowned(merged: Any, last: FieldSet, owned: FieldSet, node: TypeNode) -> Any:
    """Drop from ``merged`` what the applier applied last time unless someone (the
    applier's new configuration included) still owns it."""
    return _prune(merged, last.trie, owned.trie, node, root=True)


def _prune(value: Any, last: Trie, owned: Trie, node: TypeNode | None, *,
           root: bool = False) -> Any:
    shape = _shape(node, root=root)
    kind = effective_kind(shape, value)
    if kind == "map" and isinstance(value, dict):
        return _prune_map(value, last, owned, shape, root=root)
    if kind in ("set", "listmap") and isinstance(value, list):
        return _prune_list(value, last, owned, shape)
    return value


def _prune_map(value: dict[str, Any], last: Trie, owned: Trie, shape: Shape, *,
               root: bool) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for element, last_child in last.items():
        if not element.startswith("f:"):
            continue
        key = element[2:]
        if key not in value:
            continue
        named = shape.is_named(key)
        owned_child = owned.get(element)
        if _in_set(last_child, named=named) and not _in_set(owned_child, named=named):
            replacement = MISSING
        elif len(last_child) > (1 if SELF in last_child else 0):
            replacement = _prune(value[key], last_child, owned_child or {},
                                 child_node(shape, key, root=root))
            if replacement is value[key]:
                continue
            if _emptied(value[key], replacement):
                replacement = MISSING
        else:
            continue
        if out is None:
            out = dict(value)
        if replacement is MISSING:
            del out[key]
        else:
            out[key] = replacement
    return value if out is None else out


def _prune_list(value: list[Any], last: Trie, owned: Trie, shape: Shape) -> list[Any]:
    elements = list_elements(value, shape)
    if elements is None:
        return value
    items_node = shape.node.items()
    out: list[Any] = []
    changed = False
    for element, item in zip(elements, value, strict=True):
        last_child = last.get(element)
        if last_child is None:
            out.append(item)
            continue
        owned_child = owned.get(element)
        if _in_set(last_child, named=False) and not _in_set(owned_child, named=False):
            changed = True
            continue
        if len(last_child) > (1 if SELF in last_child else 0):
            pruned = _prune(item, last_child, owned_child or {}, items_node)
            if pruned is not item:
                changed = True
                if _emptied(item, pruned):
                    continue
            out.append(pruned)
        else:
            out.append(item)
    return out if changed else value


def _emptied(before: Any, after: Any) -> bool:
    """A container that pruning emptied goes away rather than staying as ``{}``."""
    return isinstance(after, dict | list) and not after and bool(before)


# Manager names.


def manager_from_user_agent(user_agent: str) -> str:
    """The default field manager: the User-Agent up to its first ``/``, printable
    characters only, at most 128 bytes (upstream's prefixFromUserAgent)."""
    if len(user_agent) > _CACHED_USER_AGENT_LENGTH:
        return _manager_prefix(user_agent)
    return _cached_manager_prefix(user_agent)


# Clients send the same few User-Agents on every write; remember short ones only.
_CACHED_USER_AGENT_LENGTH = 512


@functools.lru_cache(maxsize=256)
def _cached_manager_prefix(user_agent: str) -> str:
    return _manager_prefix(user_agent)


def _manager_prefix(user_agent: str) -> str:
    prefix = user_agent.split("/", 1)[0]
    out: list[str] = []
    size = 0
    for char in prefix:
        if not char.isprintable():
            continue
        width = len(char.encode())
        if size + width > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(char)
        size += width
    return "".join(out)
