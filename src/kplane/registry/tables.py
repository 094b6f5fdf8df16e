"""Table output: the columns ``kubectl get`` prints, computed by the server.

``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
whatever columns the server sends, so what a user sees for ``kubectl get secrets`` is
decided here. The built-in kinds get upstream's columns and cell values (the printers of
``k8s.io/kubernetes/pkg/printers/internalversion``; the server always fills the wide
columns, kubectl hides those with priority > 0 unless ``-o wide``). Kinds upstream prints
with its default convertor (Role, ClusterRole, LimitRange) get ``Name`` and
``Created At``; any other kind gets ``Name`` and ``Age``. Custom resources use their
``additionalPrinterColumns``, evaluated with the small JSONPath subset CRDs allow.

All functions are pure: the current time can be passed in (``now``) so output is
reproducible.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kplane.apimachinery.builtin_schemas import definitions
from kplane.apimachinery.errors import bad_request
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy

Obj = Mapping[str, Any]
Document = dict[str, Any]

INCLUDE_OBJECT_CHOICES = ("None", "Metadata", "Object")

_CORE = "io.k8s.api.core.v1"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


# --- time ----------------------------------------------------------------------------------


def human_duration(elapsed: timedelta) -> str:
    """A duration the way kubectl's AGE column shows it: ``45s``, ``3m2s``, ``5h``, ``2d3h``.

    Same thresholds and truncation as upstream's ``duration.HumanDuration``: precise while
    short, coarser as it grows; up to a second in the future still counts as now.
    """
    seconds = int(elapsed.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return _with_remainder(minutes, "m", seconds % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        return _with_remainder(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _with_remainder(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _with_remainder(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _with_remainder(whole: int, unit: str, rest: int, rest_unit: str) -> str:
    return f"{whole}{unit}{rest}{rest_unit}" if rest else f"{whole}{unit}"


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (Time or MicroTime) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def time_since(value: Any, now: datetime) -> str:
    """Human duration since a timestamp; ``<unknown>`` when there is none."""
    moment = parse_timestamp(value)
    if moment is None:
        return "<unknown>"
    return human_duration(now - moment)


# --- columns and printers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One column definition of a Table."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


CellsFn = Callable[[Obj, datetime], list[Any]]


@dataclass(frozen=True, slots=True)
class Printer:
    """The columns of a kind and how one object fills them."""

    columns: tuple[Column, ...]
    cells: CellsFn


def _doc(definition: str, *path: str) -> str:
    """A field's description from upstream's schema, as upstream's printers use."""
    node: Any = definitions().get(definition, {})
    for field in path:
        node = (node.get("properties") or {}).get(field, {}) if isinstance(node, Mapping) else {}
    description = node.get("description", "") if isinstance(node, Mapping) else ""
    return str(description)


def _name_column() -> Column:
    return Column("Name", format="name", description=_doc(_OBJECT_META, "name"))


def _age_column() -> Column:
    return Column("Age", description=_doc(_OBJECT_META, "creationTimestamp"))


def _meta(obj: Obj) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return time_since(_meta(obj).get("creationTimestamp"), now)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, Mapping | list) else 0


def _created_at(obj: Obj) -> str:
    moment = parse_timestamp(_meta(obj).get("creationTimestamp"))
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Cells per kind, in column order.


def _namespace_cells(obj: Obj, now: datetime) -> list[Any]:
    phase = _mapping(obj.get("status")).get("phase", "")
    return [_name(obj), str(phase or ""), _age(obj, now)]


def _config_map_cells(obj: Obj, now: datetime) -> list[Any]:
    count = _sized(obj.get("data")) + _sized(obj.get("binaryData"))
    return [_name(obj), count, _age(obj, now)]


def _secret_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), str(obj.get("type") or ""), _sized(obj.get("data")), _age(obj, now)]


def _service_account_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _sized(obj.get("secrets")), _age(obj, now)]


def _lease_cells(obj: Obj, now: datetime) -> list[Any]:
    holder = _mapping(obj.get("spec")).get("holderIdentity") or ""
    return [_name(obj), str(holder), _age(obj, now)]


def _resource_quota_cells(obj: Obj, now: datetime) -> list[Any]:
    status = _mapping(obj.get("status"))
    hard, used = _mapping(status.get("hard")), _mapping(status.get("used"))
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        # Resources named limits.<x> go to the Limit column, everything else to Request.
        target = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _subject_strings(subjects: Any) -> tuple[str, str, str]:
    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[str] = []
    for subject in subjects if isinstance(subjects, list) else ():
        subject = _mapping(subject)
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            service_accounts.append(f"{subject.get('namespace', '')}/{name}")
    return ", ".join(users), ", ".join(groups), ", ".join(service_accounts)


def _binding_cells(obj: Obj, now: datetime) -> list[Any]:
    role_ref = _mapping(obj.get("roleRef"))
    role = f"{role_ref.get('kind', '')}/{role_ref.get('name', '')}"
    return [_name(obj), role, _age(obj, now), *_subject_strings(obj.get("subjects"))]


def _name_created_at_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _created_at(obj)]


def _name_age_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _age(obj, now)]


# Events: the events.k8s.io/v1 kind is the core one with renamed fields; upstream prints
# both through the same printer, so events.k8s.io objects are read through this mapping.
_EVENTS_V1_FIELDS = {
    "involvedObject": "regarding",
    "message": "note",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "source": "deprecatedSource",
}


def _event_field(obj: Obj, core_field: str, *, events_v1: bool) -> Any:
    return obj.get(_EVENTS_V1_FIELDS.get(core_field, core_field) if events_v1 else core_field)


def _event_source(obj: Obj, *, events_v1: bool) -> str:
    source = _mapping(_event_field(obj, "source", events_v1=events_v1))
    component = source.get("component") or obj.get("reportingController") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else str(component)


def _event_cells(obj: Obj, now: datetime, *, events_v1: bool) -> list[Any]:
    def field(name: str) -> Any:
        return _event_field(obj, name, events_v1=events_v1)

    first_seen = time_since(field("firstTimestamp"), now)
    if parse_timestamp(field("firstTimestamp")) is None:
        first_seen = time_since(obj.get("eventTime"), now)
    last_seen = time_since(field("lastTimestamp"), now)
    if parse_timestamp(field("lastTimestamp")) is None:
        last_seen = first_seen
    count = field("count") or 0
    series = obj.get("series")
    if isinstance(series, Mapping):
        last_seen = time_since(series.get("lastObservedTime"), now)
        count = series.get("count", 0)
    elif not count:
        # Events written through the new API have no count: they happened once.
        count = 1
    involved = _mapping(field("involvedObject"))
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last_seen,
        str(obj.get("type", "")),
        str(obj.get("reason", "")),
        target,
        str(involved.get("fieldPath", "")),
        _event_source(obj, events_v1=events_v1),
        str(field("message") or "").strip(),
        first_seen,
        int(count),
        _name(obj),
    ]


def _core_event_cells(obj: Obj, now: datetime) -> list[Any]:
    return _event_cells(obj, now, events_v1=False)


def _events_v1_cells(obj: Obj, now: datetime) -> list[Any]:
    return _event_cells(obj, now, events_v1=True)


def _event_columns() -> tuple[Column, ...]:
    event = f"{_CORE}.Event"
    return (
        Column("Last Seen", description=_doc(event, "lastTimestamp")),
        Column("Type", description=_doc(event, "type")),
        Column("Reason", description=_doc(event, "reason")),
        Column("Object", description=_doc(event, "involvedObject")),
        Column("Subobject", priority=1,
               description=_doc(f"{_CORE}.ObjectReference", "fieldPath")),
        Column("Source", priority=1, description=_doc(event, "source")),
        Column("Message", description=_doc(event, "message")),
        Column("First Seen", priority=1, description=_doc(event, "firstTimestamp")),
        Column("Count", priority=1, description=_doc(event, "count")),
        Column("Name", priority=1, format="name", description=_doc(_OBJECT_META, "name")),
    )


def _binding_columns(kind: str) -> tuple[Column, ...]:
    return (
        _name_column(),
        Column("Role", description=_doc(f"io.k8s.api.rbac.v1.{kind}", "roleRef")),
        _age_column(),
        Column("Users", priority=1, description=f"Users bound by the {kind}"),
        Column("Groups", priority=1, description=f"Groups bound by the {kind}"),
        Column("ServiceAccounts", priority=1, description=f"Service accounts bound by the {kind}"),
    )


def _name_created_at_printer() -> Printer:
    created = Column("Created At", type="date", description=_doc(_OBJECT_META, "creationTimestamp"))
    return Printer((_name_column(), created), _name_created_at_cells)


def name_age_printer() -> Printer:
    """The fallback for kinds without their own columns."""
    return Printer((_name_column(), _age_column()), _name_age_cells)


_RBAC = "rbac.authorization.k8s.io"


@functools.cache
def _builtin_printers() -> dict[tuple[str, str], Printer]:
    name, age = _name_column(), _age_column()
    return {
        ("", "Namespace"): Printer(
            (name, Column("Status", description="Lifecycle phase of the namespace"), age),
            _namespace_cells,
        ),
        ("", "ConfigMap"): Printer(
            (name, Column("Data", description=_doc(f"{_CORE}.ConfigMap", "data")), age),
            _config_map_cells,
        ),
        ("", "Secret"): Printer(
            (
                name,
                Column("Type", description=_doc(f"{_CORE}.Secret", "type")),
                Column("Data", description=_doc(f"{_CORE}.Secret", "data")),
                age,
            ),
            _secret_cells,
        ),
        ("", "ServiceAccount"): Printer(
            (name, Column("Secrets", description=_doc(f"{_CORE}.ServiceAccount", "secrets")), age),
            _service_account_cells,
        ),
        ("", "Event"): Printer(_event_columns(), _core_event_cells),
        ("events.k8s.io", "Event"): Printer(_event_columns(), _events_v1_cells),
        ("", "ResourceQuota"): Printer(
            (
                name,
                Column("Request", description="Used and hard quota of each non-limit resource"),
                Column("Limit", description="Used and hard quota of each limits.* resource"),
                age,
            ),
            _resource_quota_cells,
        ),
        ("coordination.k8s.io", "Lease"): Printer(
            (
                name,
                Column("Holder", description=_doc(
                    "io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity",
                )),
                age,
            ),
            _lease_cells,
        ),
        ("", "LimitRange"): _name_created_at_printer(),
        (_RBAC, "Role"): _name_created_at_printer(),
        (_RBAC, "ClusterRole"): _name_created_at_printer(),
        (_RBAC, "RoleBinding"): Printer(_binding_columns("RoleBinding"), _binding_cells),
        (_RBAC, "ClusterRoleBinding"): Printer(
            _binding_columns("ClusterRoleBinding"), _binding_cells,
        ),
    }


_TENANCY_COLUMNS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("tenancy.kcp.io", "Workspace"): [
        {"name": "Type", "type": "string", "jsonPath": ".spec.type.name",
         "description": "The type of the workspace"},
        {"name": "Region", "type": "string", "jsonPath": ".metadata.labels['region']",
         "description": "The region this workspace is in"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
         "description": "The current phase (e.g. Scheduling, Initializing, Ready)"},
        {"name": "URL", "type": "string", "jsonPath": ".spec.URL",
         "description": "URL to access the workspace"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    ("core.kcp.io", "LogicalCluster"): [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
         "description": "The current phase (e.g. Scheduling, Initializing, Ready)"},
        {"name": "URL", "type": "string", "jsonPath": ".status.URL",
         "description": "URL to access the logical cluster"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}
"""kcp's printer columns for its tenancy kinds (kplane serves them as built-ins)."""


def printer_for(rt: ResourceType) -> Printer:
    """The printer of a kind: upstream's for built-in kinds, Name and Age otherwise."""
    builtin_printer = _builtin_printers().get((rt.group, rt.kind))
    if builtin_printer is not None:
        return builtin_printer
    columns = _TENANCY_COLUMNS.get((rt.group, rt.kind))
    return printer_for_columns(columns) if columns else name_age_printer()


# --- tables --------------------------------------------------------------------------------


def _row_object(obj: Obj, include_object: str) -> Any:
    if include_object == "Object":
        return obj
    if include_object == "Metadata":
        return {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": _meta(obj),
        }
    return None


def _check_include_object(include_object: str) -> None:
    if include_object not in INCLUDE_OBJECT_CHOICES:
        supported = ", ".join(f'"{choice}"' for choice in INCLUDE_OBJECT_CHOICES)
        raise bad_request(
            f'includeObject: Unsupported value: "{include_object}": '
            f"supported values: {supported}",
        )


def render_table(
    printer: Printer,
    objects: Iterable[Obj],
    *,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    with_column_definitions: bool = True,
    now: datetime | None = None,
) -> Document:
    """A ``meta.k8s.io/v1`` Table of some objects through one printer."""
    _check_include_object(include_object)
    moment = now or datetime.now(UTC)
    columns = [column.definition() for column in printer.columns]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": columns if with_column_definitions else [],
        "rows": [
            {"cells": printer.cells(obj, moment), "object": _row_object(obj, include_object)}
            for obj in objects
        ],
    }


def table_for(
    rt: ResourceType,
    objects: Iterable[Obj],
    *,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    with_column_definitions: bool = True,
    now: datetime | None = None,
) -> Document:
    """The Table ``kubectl get`` shows for objects of a built-in (or unknown) kind.

    ``list_meta`` becomes the Table's metadata: ``resourceVersion`` and ``continue`` of a
    list, or the object's ``resourceVersion`` for a single GET. Watch events after the
    first pass ``with_column_definitions=False``.
    """
    return render_table(
        printer_for(rt), objects,
        include_object=include_object, list_meta=list_meta,
        with_column_definitions=with_column_definitions, now=now,
    )


def table_for_printer_columns(
    columns: Sequence[Mapping[str, Any]],
    objects: Iterable[Obj],
    *,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    with_column_definitions: bool = True,
    now: datetime | None = None,
) -> Document:
    """The Table of custom resources from their CRD version's ``additionalPrinterColumns``."""
    return render_table(
        printer_for_columns(columns), objects,
        include_object=include_object, list_meta=list_meta,
        with_column_definitions=with_column_definitions, now=now,
    )


def printer_for_columns(columns: Sequence[Mapping[str, Any]]) -> Printer:
    """A printer from ``additionalPrinterColumns``: Name first, then each column in order."""
    definitions_ = [_name_column()] + [
        Column(
            name=str(column["name"]),
            type=str(column.get("type", "string")),
            description=str(column.get("description", "")),
            priority=int(column.get("priority", 0)),
            format=str(column.get("format", "")),
        )
        for column in columns
    ]
    paths = [(parse_json_path(str(column["jsonPath"])), str(column.get("type", "string")))
             for column in columns]

    def cells(obj: Obj, now: datetime) -> list[Any]:
        return [_name(obj)] + [_column_cell(obj, path, kind, now) for path, kind in paths]

    return Printer(tuple(definitions_), cells)


def _column_cell(obj: Obj, path: JsonPath, column_type: str, now: datetime) -> Any:
    results = path.find(obj)
    if not results:
        return None
    value = results[0]
    if value is None:
        return None
    if column_type == "string":
        return value if isinstance(value, str) else go_format(value)
    return _typed_cell(column_type, value, now)


def _typed_cell(column_type: str, value: Any, now: datetime) -> Any:
    """A cell of a non-string column; None when the value does not fit the type."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "integer" and is_number:
        return int(value)
    if column_type == "number" and is_number:
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        moment = parse_timestamp(value)
        return "<invalid>" if moment is None else human_duration(now - moment)
    return None


# --- Go-style value formatting -------------------------------------------------------------


def go_format(value: Any) -> str:
    """A JSON value printed the way Go's ``fmt.Sprint`` prints it (as kubectl's jsonpath does)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        items = " ".join(f"{key}:{go_format(value[key])}" for key in sorted(value))
        return f"map[{items}]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(item) for item in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """Go's ``%v`` for float64: shortest digits, exponent form outside [1e-4, 1e6)."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + exponent  # where the decimal point falls in the digits
    sci_exponent = point - 1
    prefix = "-" if sign else ""
    if sci_exponent < -4 or sci_exponent >= 6:
        fraction = f".{mantissa[1:]}" if len(mantissa) > 1 else ""
        exp_sign = "-" if sci_exponent < 0 else "+"
        return f"{prefix}{mantissa[0]}{fraction}e{exp_sign}{abs(sci_exponent):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{mantissa}"
    if point >= len(mantissa):
        return prefix + mantissa + "0" * (point - len(mantissa))
    return f"{prefix}{mantissa[:point]}.{mantissa[point:]}"


# --- JSONPath subset -----------------------------------------------------------------------

_FILTER = re.compile(
    r"""^\?\(\s*@((?:\.[^.\s=!<>]+)+)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*\)$""",
)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str


@dataclass(frozen=True, slots=True)
class _Index:
    index: int


@dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class _Filter:
    path: tuple[str, ...]
    operator: str
    literal: Any


_Step = _Field | _Index | _Wildcard | _Filter


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed JSONPath of the subset CRD printer columns use."""

    steps: tuple[_Step, ...]

    def find(self, obj: Any) -> list[Any]:
        """Every value the path selects, in document order."""
        current = [obj]
        for step in self.steps:
            current = [found for value in current for found in _apply(step, value)]
        return current


def _apply(step: _Step, value: Any) -> list[Any]:
    if isinstance(step, _Field):
        return [value[step.name]] if isinstance(value, Mapping) and step.name in value else []
    if isinstance(step, _Index):
        if isinstance(value, list) and -len(value) <= step.index < len(value):
            return [value[step.index]]
        return []
    if isinstance(step, _Wildcard):
        if isinstance(value, Mapping):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    items = value if isinstance(value, list) else []
    return [item for item in items if _matches(step, item)]


def _matches(step: _Filter, item: Any) -> bool:
    found = JsonPath(tuple(_Field(name) for name in step.path)).find(item)
    if not found:
        return False
    left, right = found[0], step.literal
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: bool(a == b),
        "!=": lambda a, b: bool(a != b),
        "<": lambda a, b: bool(a < b),
        ">": lambda a, b: bool(a > b),
        "<=": lambda a, b: bool(a <= b),
        ">=": lambda a, b: bool(a >= b),
    }
    try:
        return comparisons[step.operator](left, right)
    except TypeError:
        return False


@functools.lru_cache(maxsize=1024)
def parse_json_path(expression: str) -> JsonPath:
    """Parse ``.spec.x``, ``.items[0]``, ``['a.b']``, ``[*]`` and ``[?(@.type=="Ready")]``.

    Raises a 400 StatusError for anything else.
    """
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    steps: list[_Step] = []
    position = 0
    while position < len(text):
        position = _parse_step(text, position, steps, expression)
    return JsonPath(tuple(steps))


def _parse_step(text: str, position: int, steps: list[_Step], expression: str) -> int:
    char = text[position]
    if char == ".":
        end = position + 1
        while end < len(text) and text[end] not in ".[":
            end += 1
        name = text[position + 1:end]
        if not name:
            raise bad_request(f"unsupported JSONPath {expression!r}")
        steps.append(_Wildcard() if name == "*" else _Field(name))
        return end
    if char == "[":
        end = _closing_bracket(text, position, expression)
        steps.append(_bracket_step(text[position + 1:end].strip(), expression))
        return end + 1
    raise bad_request(f"unsupported JSONPath {expression!r}")


def _closing_bracket(text: str, start: int, expression: str) -> int:
    depth, quote = 0, ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth == 0:
                return index
    raise bad_request(f"unsupported JSONPath {expression!r}")


def _bracket_step(inner: str, expression: str) -> _Step:
    if inner == "*":
        return _Wildcard()
    if re.fullmatch(r"-?\d+", inner):
        return _Index(int(inner))
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Field(inner[1:-1])
    match = _FILTER.match(inner)
    if match is None:
        raise bad_request(f"unsupported JSONPath {expression!r}")
    path, operator, literal = match.groups()
    return _Filter(tuple(path.strip(".").split(".")), operator, _literal(literal, expression))


def _literal(text: str, expression: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as error:
        raise bad_request(f"unsupported JSONPath {expression!r}") from error


def table_for_kind(
    strategy: Strategy,
    objects: Iterable[Obj],
    *,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    with_column_definitions: bool = True,
) -> Document:
    """The Table of any served kind: a CRD's printer columns, else the kind's own printer."""
    columns = strategy.printer_columns_for_table()
    if columns is not None:
        return table_for_printer_columns(
            columns, objects, include_object=include_object, list_meta=list_meta,
            with_column_definitions=with_column_definitions)
    return table_for(strategy.rt, objects, include_object=include_object, list_meta=list_meta,
                     with_column_definitions=with_column_definitions)
