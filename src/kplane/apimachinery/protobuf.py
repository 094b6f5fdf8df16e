"""Decode Kubernetes protobuf request bodies into the JSON-shaped dicts the API works on.

client-go's typed clientset, and so ``kubectl create configmap|secret|namespace|role|...``
and ``kubectl create token``, sends ``application/vnd.kubernetes.protobuf`` request bodies
and never falls back to JSON on a 415. kplane answers in JSON, but must read those bodies.

A body is the magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message whose
``typeMeta`` names the kind and whose ``raw`` field holds the object's own encoding. This
module owns the protobuf wire reader (varint, 64-bit, length-delimited, 32-bit) and a
generic, table-driven message decoder; the per-kind field tables live in
:mod:`kplane.apimachinery.protobuf_schema`. The result is exactly what the JSON form of the
same object would be (JSON field names, base64 bytes, RFC 3339 times, quantities as
strings, ``omitempty`` zero values left out), so every layer above sees one shape.

Every malformed body raises :func:`kplane.apimachinery.errors.bad_request`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from kplane.apimachinery.errors import StatusError, bad_request
from kplane.apimachinery.protobuf_schema import (
    MESSAGES,
    VARINT_KINDS,
    Cardinality,
    Field,
    Kind,
    message_for,
)

PROTOBUF_CONTENT_TYPE: Final = "application/vnd.kubernetes.protobuf"
MAGIC: Final = b"k8s\x00"
# kube-apiserver refuses request bodies above 3 MiB.
MAX_BODY_BYTES: Final = 3 * 1024 * 1024
# The field tables are not recursive, so this only guards tables added later.
MAX_DEPTH: Final = 64

WIRE_VARINT: Final = 0
WIRE_FIXED64: Final = 1
WIRE_LEN: Final = 2
WIRE_FIXED32: Final = 5

_MAX_VARINT_BYTES: Final = 10
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1
_UINT64_MASK: Final = (1 << 64) - 1
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
# Go's zero time.Time (0001-01-01T00:00:00Z) as Unix seconds; it marshals to JSON null.
_GO_ZERO_TIME_SECONDS: Final = -62135596800
_MICROS_PER_SECOND: Final = 1_000_000

WireValue = int | bytes


def malformed(detail: str) -> StatusError:
    """The 400 for any body this module cannot decode."""
    return bad_request(f"unable to decode protobuf request body: {detail}")


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return it as an unsigned 64-bit value and the
    position after it."""
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos >= len(data):
            raise malformed("unexpected end of data inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return result & _UINT64_MASK, pos
    raise malformed("varint longer than 10 bytes")


def _take(data: bytes, pos: int, *, length: int) -> tuple[bytes, int]:
    end = pos + length
    if end > len(data):
        raise malformed(f"field of {length} bytes runs past the end of its message")
    return data[pos:end], end


def iter_fields(data: bytes) -> Iterator[tuple[int, int, WireValue]]:
    """Yield ``(field number, wire type, value)`` for each field of one message.

    The value is an ``int`` for varints and the raw bytes otherwise. Groups (wire types 3
    and 4) are deprecated and never produced by Kubernetes, so they are rejected.
    """
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number < 1 or number > _MAX_FIELD_NUMBER:
            raise malformed(f"illegal field number {number}")
        value: WireValue
        if wire_type == WIRE_VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type == WIRE_LEN:
            length, pos = read_varint(data, pos)
            value, pos = _take(data, pos, length=length)
        elif wire_type == WIRE_FIXED64:
            value, pos = _take(data, pos, length=8)
        elif wire_type == WIRE_FIXED32:
            value, pos = _take(data, pos, length=4)
        else:
            raise malformed(f"unsupported wire type {wire_type} for field {number}")
        yield number, wire_type, value


def to_int64(value: int) -> int:
    """Two's complement reading of a varint, as Go's ``int64(v)``."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_int32(value: int) -> int:
    """Go's ``int32(v)``: keep the low 32 bits, signed."""
    low = value & 0xFFFFFFFF
    return low - (1 << 32) if low >= 1 << 31 else low


def _expect_wire_type(wire_type: int, expected: int, *, label: str) -> None:
    if wire_type != expected:
        raise malformed(f"wrong wire type {wire_type} for field {label}")


def _expect_bytes(wire_type: int, value: WireValue, *, label: str) -> bytes:
    _expect_wire_type(wire_type, WIRE_LEN, label=label)
    assert isinstance(value, bytes)
    return value


def _expect_int(wire_type: int, value: WireValue, *, label: str) -> int:
    _expect_wire_type(wire_type, WIRE_VARINT, label=label)
    assert isinstance(value, int)
    return value


def _last_values(
    data: bytes, *, wire_types: dict[int, int], label: str
) -> dict[int, WireValue]:
    """The last value of each known field of a small fixed-shape message."""
    values: dict[int, WireValue] = {}
    for number, wire_type, value in iter_fields(data):
        expected = wire_types.get(number)
        if expected is None:
            continue
        _expect_wire_type(wire_type, expected, label=f"{label}#{number}")
        values[number] = value
    return values


def _text(value: WireValue) -> str:
    # Go does not check UTF-8 in proto strings and its JSON encoder replaces bad bytes.
    assert isinstance(value, bytes)
    return value.decode("utf-8", "replace")


def _decode_time(data: bytes, *, label: str, micro: bool) -> str | None:
    """``Time`` / ``MicroTime`` as their JSON strings; Go's zero time is JSON null."""
    if not data:
        return None
    parts = _last_values(data, wire_types={1: WIRE_VARINT, 2: WIRE_VARINT}, label=label)
    seconds = to_int64(int(parts.get(1, 0)))
    micros = 0
    if micro:
        nanos = to_int32(int(parts.get(2, 0)))
        # Go truncates toward zero to whole microseconds.
        micros = abs(nanos) // 1000 * (1 if nanos >= 0 else -1)
    total_micros = seconds * _MICROS_PER_SECOND + micros
    if total_micros == _GO_ZERO_TIME_SECONDS * _MICROS_PER_SECOND:
        return None
    try:
        moment = _NAIVE_EPOCH + timedelta(microseconds=total_micros)
    except OverflowError:
        raise malformed(f"time out of range in field {label}") from None
    spec = "microseconds" if micro else "seconds"
    return moment.isoformat(timespec=spec) + "Z"


def _decode_quantity(data: bytes, *, label: str) -> str:
    parts = _last_values(data, wire_types={1: WIRE_LEN}, label=label)
    return _text(parts[1]) if 1 in parts else "0"


def _decode_int_or_string(data: bytes, *, label: str) -> int | str:
    wire_types = {1: WIRE_VARINT, 2: WIRE_VARINT, 3: WIRE_LEN}
    parts = _last_values(data, wire_types=wire_types, label=label)
    if to_int64(int(parts.get(1, 0))) == 1:
        return _text(parts.get(3, b""))
    return to_int32(int(parts.get(2, 0)))


def _decode_fields_v1(data: bytes, *, label: str) -> Any:
    parts = _last_values(data, wire_types={1: WIRE_LEN}, label=label)
    raw = parts.get(1, b"")
    assert isinstance(raw, bytes)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed(f"field {label} does not hold valid JSON") from None


def _decode_string_items(data: bytes, *, label: str) -> list[str]:
    items: list[str] = []
    for number, wire_type, value in iter_fields(data):
        if number == 1:
            items.append(_text(_expect_bytes(wire_type, value, label=f"{label}.items")))
    return items


def _decode_value(
    field: Field, *, wire_type: int, value: WireValue, label: str, depth: int
) -> Any:
    """One wire value of ``field`` in its JSON form."""
    kind = field.kind
    if kind in VARINT_KINDS:
        number = _expect_int(wire_type, value, label=label)
        if kind is Kind.BOOL:
            return number != 0
        return to_int32(number) if kind is Kind.INT32 else to_int64(number)
    data = _expect_bytes(wire_type, value, label=label)
    if kind is Kind.STRING:
        return _text(data)
    if kind is Kind.BYTES:
        return base64.b64encode(data).decode("ascii")
    if kind is Kind.MESSAGE:
        return decode_message(data, message=field.message, depth=depth + 1)
    return _decode_well_known(kind, data, label=label)


def _decode_well_known(kind: Kind, data: bytes, *, label: str) -> Any:
    if kind is Kind.TIME or kind is Kind.MICRO_TIME:
        return _decode_time(data, label=label, micro=kind is Kind.MICRO_TIME)
    if kind is Kind.QUANTITY:
        return _decode_quantity(data, label=label)
    if kind is Kind.INT_OR_STRING:
        return _decode_int_or_string(data, label=label)
    if kind is Kind.FIELDS_V1:
        return _decode_fields_v1(data, label=label)
    return _decode_string_items(data, label=label)


def _zero_value(field: Field, *, label: str) -> Any:
    """What Go holds for a map value missing from its entry: the decoded empty value."""
    if field.kind in VARINT_KINDS:
        return _decode_value(field, wire_type=WIRE_VARINT, value=0, label=label, depth=0)
    return _decode_value(field, wire_type=WIRE_LEN, value=b"", label=label, depth=0)


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or (type(value) is int and value == 0)


def _store_map_entry(
    out: dict[str, Any], field: Field, *, data: bytes, label: str, depth: int
) -> None:
    key = ""
    wire_value: tuple[int, WireValue] | None = None
    for number, wire_type, value in iter_fields(data):
        if number == 1:
            key = _text(_expect_bytes(wire_type, value, label=f"{label}.key"))
        elif number == 2:
            wire_value = (wire_type, value)
    value_label = f"{label}[{key}]"
    if wire_value is None:
        entry_value = _zero_value(field, label=value_label)
    else:
        entry_value = _decode_value(
            field, wire_type=wire_value[0], value=wire_value[1], label=value_label, depth=depth
        )
    entries = out.get(field.json_name)
    if not isinstance(entries, dict):
        entries = out[field.json_name] = {}
    entries[key] = entry_value


def _store_field(
    out: dict[str, Any], field: Field, *, wire_type: int, value: WireValue, label: str,
    depth: int,
) -> None:
    name = field.json_name
    if field.cardinality is Cardinality.MAP:
        data = _expect_bytes(wire_type, value, label=label)
        _store_map_entry(out, field, data=data, label=label, depth=depth)
        return
    if field.cardinality is Cardinality.REPEATED:
        item = _decode_value(field, wire_type=wire_type, value=value, label=label, depth=depth)
        items = out.get(name)
        if not isinstance(items, list):
            items = out[name] = []
        items.append(item)
        return
    existing = out.get(name)
    if field.kind is Kind.MESSAGE and isinstance(existing, dict):
        # A repeated occurrence of a singular message merges into the first, as in Go.
        data = _expect_bytes(wire_type, value, label=label)
        decode_message(data, message=field.message, depth=depth + 1, into=existing)
        return
    decoded = _decode_value(field, wire_type=wire_type, value=value, label=label, depth=depth)
    if _is_zero(decoded) and not field.keep_zero:
        out.pop(name, None)
    else:
        out[name] = decoded


def decode_message(
    data: bytes, *, message: str, depth: int = 1, into: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Decode one message of the named table (``"core/v1.ConfigMap"``) to its JSON form.

    Unknown field numbers are skipped, as Go's generated decoders do, so newer clients
    sending fields kplane does not know yet still get through.
    """
    if depth > MAX_DEPTH:
        raise malformed(f"messages nested deeper than {MAX_DEPTH} levels")
    fields = MESSAGES[message]
    out: dict[str, Any] = {} if into is None else into
    type_name = message.rpartition(".")[2]
    for number, wire_type, value in iter_fields(data):
        field = fields.get(number)
        if field is not None:
            label = f"{type_name}.{field.json_name}"
            _store_field(out, field, wire_type=wire_type, value=value, label=label, depth=depth)
    for field in fields.values():
        if field.null_when_absent:
            out.setdefault(field.json_name, None)
    return out


def _unwrap_unknown(body: bytes) -> tuple[str, str, bytes]:
    """``(apiVersion, kind, raw)`` from the ``runtime.Unknown`` envelope."""
    envelope_types = {1: WIRE_LEN, 2: WIRE_LEN, 3: WIRE_LEN, 4: WIRE_LEN}
    envelope = _last_values(body, wire_types=envelope_types, label="Unknown")
    encoding = _text(envelope.get(3, b""))
    if encoding:
        raise malformed(f"unsupported contentEncoding {encoding!r}")
    type_meta = envelope.get(1, b"")
    assert isinstance(type_meta, bytes)
    names = _last_values(type_meta, wire_types={1: WIRE_LEN, 2: WIRE_LEN}, label="TypeMeta")
    payload = envelope.get(2, b"")
    assert isinstance(payload, bytes)
    return _text(names.get(1, b"")), _text(names.get(2, b"")), payload


def supports_protobuf(api_version: str, kind: str) -> bool:
    """Whether :func:`decode_protobuf_object` can decode this kind."""
    return message_for(api_version, kind) is not None


def decode_protobuf_object(raw: bytes) -> dict[str, Any]:
    """Decode a full ``application/vnd.kubernetes.protobuf`` request body to a JSON dict.

    Raises a 400 :class:`StatusError` for a body that is too large, lacks the magic
    prefix, is malformed, or names a kind without a field table.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise malformed(f"body of {len(raw)} bytes exceeds the {MAX_BODY_BYTES}-byte limit")
    if not raw.startswith(MAGIC):
        raise malformed("missing the k8s\\x00 prefix")
    api_version, kind, payload = _unwrap_unknown(bytes(raw[len(MAGIC):]))
    if not kind:
        raise malformed("Object 'Kind' is missing")
    message = message_for(api_version, kind)
    if message is None:
        raise malformed(f'no kind "{kind}" is registered for version "{api_version}"')
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj.update(decode_message(payload, message=message))
    return obj
