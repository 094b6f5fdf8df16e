"""Tests for the protobuf request-body decoder.

Three sources of truth: bodies captured from the real kubectl (fixtures, plus a live
capture when kubectl is installed), messages hand-encoded here with upstream's field
numbers written out literally (not read from the table under test), and fuzzing.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kplane.apimachinery import protobuf
from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.protobuf import (
    MAX_BODY_BYTES,
    decode_protobuf_object,
    iter_fields,
    read_varint,
    supports_protobuf,
    to_int32,
    to_int64,
)
from kplane.apimachinery.protobuf_schema import KINDS, MESSAGES, Kind

DATA = Path(__file__).parent / "data" / "protobuf"
KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"


# --- a tiny encoder, so tests can build bodies with explicit field numbers ---------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def vf(number: int, value: int) -> bytes:
    """A varint field."""
    return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def sf(number: int, text: str) -> bytes:
    return ld(number, text.encode())


def mf(number: int, *parts: bytes) -> bytes:
    """A message field made of the given encoded fields."""
    return ld(number, b"".join(parts))


def entry(number: int, key: str, *, value: bytes) -> bytes:
    """One map entry whose value is already encoded (``sf(2, ...)`` or ``mf(2, ...)``)."""
    return mf(number, sf(1, key), value)


def body(api_version: str, kind: str, *parts: bytes) -> bytes:
    type_meta = mf(1, sf(1, api_version), sf(2, kind))
    return b"k8s\x00" + type_meta + ld(2, b"".join(parts)) + sf(3, "") + sf(4, "")


def expect_bad_request(raw: bytes, fragment: str) -> None:
    with pytest.raises(StatusError) as caught:
        decode_protobuf_object(raw)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    assert fragment in caught.value.message


# --- captured kubectl bodies ------------------------------------------------------------


FIXTURES = sorted(path.stem for path in DATA.glob("*.pb"))


def test_fixtures_are_present() -> None:
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("name", FIXTURES)
def test_captured_kubectl_body_decodes_to_its_json_form(name: str) -> None:
    raw = (DATA / f"{name}.pb").read_bytes()
    expected = json.loads((DATA / f"{name}.json").read_text())
    assert decode_protobuf_object(raw) == expected


def test_configmap_binary_data_is_base64_and_zero_metadata_fields_are_dropped() -> None:
    decoded = decode_protobuf_object((DATA / "configmap.pb").read_bytes())
    assert decoded["binaryData"] == {"blob": "AAH/Ymlu"}
    # kubectl sends generateName "", generation 0 and an empty creationTimestamp.
    assert decoded["metadata"] == {"name": "cm1", "namespace": "default"}


class _Recorder(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, str, bytes]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(404, {"kind": "Status", "apiVersion": "v1", "code": 404})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        content_type = self.headers.get("Content-Type") or ""
        self.bodies.append((self.path, content_type, self.rfile.read(length)))
        self._reply(201, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


@pytest.fixture
def recording_server(tmp_path: Path) -> Iterator[str]:
    _Recorder.bodies.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    # A short poll interval keeps shutdown() from waiting half a second per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


LIVE_COMMANDS = [
    ["create", "configmap", "live", "--from-literal=k=v", "--from-literal=empty="],
    ["create", "secret", "generic", "live", "--from-literal=password=s3cr3t"],
    ["create", "secret", "docker-registry", "live", "--docker-server=r.example",
     "--docker-username=u", "--docker-password=p"],
    ["create", "namespace", "live"],
    ["create", "quota", "live", "--hard=requests.cpu=500m,limits.memory=2Gi"],
]


@pytest.mark.parametrize("command", LIVE_COMMANDS, ids=lambda c: "-".join(c[1:3]))
def test_live_kubectl_body_matches_client_side_json(
    command: list[str], recording_server: str, tmp_path: Path
) -> None:
    kubectl = str(KUBECTL) if KUBECTL.exists() else "kubectl"
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    base = [kubectl, "--server", recording_server, "-n", "default", *command]
    subprocess.run([*base, "-o", "name"], env=env, capture_output=True, timeout=30, check=False)
    client_json = subprocess.run(
        [*base, "--dry-run=client", "-o", "json"],
        env=env, capture_output=True, timeout=30, check=True,
    ).stdout
    assert len(_Recorder.bodies) == 1
    _, content_type, raw = _Recorder.bodies[0]
    assert content_type == "application/vnd.kubernetes.protobuf"
    assert decode_protobuf_object(raw) == json.loads(client_json)


# --- the wire reader ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "value"),
    [
        (b"\x00", 0),
        (b"\x01", 1),
        (b"\x7f", 127),
        (b"\xac\x02", 300),
        (b"\xff\xff\xff\xff\x0f", 0xFFFFFFFF),
        (b"\xff" * 9 + b"\x01", (1 << 64) - 1),
    ],
)
def test_read_varint(encoded: bytes, value: int) -> None:
    assert read_varint(encoded + b"tail", 0) == (value, len(encoded))


def test_read_varint_keeps_only_64_bits_of_an_overlong_tenth_byte() -> None:
    assert read_varint(b"\xff" * 9 + b"\x7f", 0) == ((1 << 64) - 1, 10)


def test_read_varint_rejects_truncated_and_overlong_input() -> None:
    with pytest.raises(StatusError, match="unexpected end of data inside a varint"):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(StatusError, match="varint longer than 10 bytes"):
        read_varint(b"\xff" * 10 + b"\x01", 0)


def test_iter_fields_reads_every_wire_type() -> None:
    data = (
        vf(1, 150)
        + varint(2 << 3 | 1) + b"12345678"
        + ld(3, b"abc")
        + varint(4 << 3 | 5) + b"wxyz"
        + ld(1000, b"")
    )
    assert list(iter_fields(data)) == [
        (1, 0, 150), (2, 1, b"12345678"), (3, 2, b"abc"), (4, 5, b"wxyz"), (1000, 2, b""),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (varint(1 << 3 | 2) + varint(5) + b"abc", "field of 5 bytes runs past the end"),
        (varint(1 << 3 | 1) + b"1234", "field of 8 bytes runs past the end"),
        (varint(1 << 3 | 3), "unsupported wire type 3 for field 1"),
        (varint(1 << 3 | 4), "unsupported wire type 4 for field 1"),
        (varint(1 << 3 | 6), "unsupported wire type 6 for field 1"),
        (varint(0 << 3 | 0) + b"\x00", "illegal field number 0"),
        (varint(1 << 3 | 0), "unexpected end of data inside a varint"),
    ],
)
def test_iter_fields_rejects_malformed_messages(data: bytes, message: str) -> None:
    with pytest.raises(StatusError, match=message) as caught:
        list(iter_fields(data))
    assert caught.value.code == 400


def test_integer_conversions_follow_go() -> None:
    assert to_int64((1 << 64) - 1) == -1
    assert to_int64((1 << 63) - 1) == (1 << 63) - 1
    assert to_int32((1 << 64) - 5) == -5
    assert to_int32(0x1_0000_0007) == 7
    assert to_int32(0x8000_0000) == -(1 << 31)


# --- hand-encoded messages ---------------------------------------------------------------


def _timestamp(seconds: int, nanos: int = 0) -> bytes:
    return vf(1, seconds) + (vf(2, nanos) if nanos else b"")


JAN_2_2026 = 1767323045  # 2026-01-02T03:04:05Z


def test_object_meta_every_field() -> None:
    managed = mf(
        17,
        sf(1, "kubectl"), sf(2, "Apply"), sf(3, "v1"),
        mf(4, *[_timestamp(JAN_2_2026)]),
        sf(6, "FieldsV1"),
        mf(7, ld(1, b'{"f:data":{"f:a":{}}}')),
        sf(8, ""),
    )
    owner = mf(
        13, sf(1, "Deployment"), sf(3, "web"), sf(4, "u-1"), sf(5, "apps/v1"),
        vf(6, 0), vf(7, 1),
    )
    meta = mf(
        1,
        sf(1, "cm"), sf(2, "cm-"), sf(3, "ns"), sf(4, "/self"), sf(5, "uid-1"), sf(6, "42"),
        vf(7, 3), mf(8, _timestamp(JAN_2_2026)), mf(9, _timestamp(JAN_2_2026 + 60)),
        vf(10, 0),
        entry(11, "app", value=sf(2, "web")), entry(11, "tier", value=sf(2, "")),
        entry(12, "note", value=sf(2, "hi")),
        owner, sf(14, "example.com/f"), sf(14, "other"), managed,
    )
    assert decode_protobuf_object(body("v1", "ConfigMap", meta))["metadata"] == {
        "name": "cm",
        "generateName": "cm-",
        "namespace": "ns",
        "selfLink": "/self",
        "uid": "uid-1",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "deletionTimestamp": "2026-01-02T03:05:05Z",
        "deletionGracePeriodSeconds": 0,
        "labels": {"app": "web", "tier": ""},
        "annotations": {"note": "hi"},
        "ownerReferences": [
            {
                "kind": "Deployment", "name": "web", "uid": "u-1", "apiVersion": "apps/v1",
                "controller": False, "blockOwnerDeletion": True,
            }
        ],
        "finalizers": ["example.com/f", "other"],
        "managedFields": [
            {
                "manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:a": {}}},
            }
        ],
    }


def test_time_drops_nanoseconds_and_micro_time_keeps_microseconds() -> None:
    spec = mf(
        2,
        sf(1, "holder"), vf(2, 15),
        mf(3, _timestamp(JAN_2_2026, 123_456_789)),
        mf(4, _timestamp(JAN_2_2026)),
        vf(5, 0), sf(6, "OldestEmulationVersion"), sf(7, ""),
    )
    meta = mf(1, sf(1, "lock"), mf(8, _timestamp(JAN_2_2026, 999_999_999)))
    decoded = decode_protobuf_object(body("coordination.k8s.io/v1", "Lease", meta, spec))
    assert decoded == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lock", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": {
            "holderIdentity": "holder",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-02T03:04:05.123456Z",
            "renewTime": "2026-01-02T03:04:05.000000Z",
            "leaseTransitions": 0,
            "strategy": "OldestEmulationVersion",
            "preferredHolder": "",
        },
    }


def test_pre_epoch_micro_time_truncates_toward_zero() -> None:
    spec = mf(2, mf(3, _timestamp(-1, -1_500)))
    decoded = decode_protobuf_object(body("coordination.k8s.io/v1", "Lease", spec))
    assert decoded["spec"] == {"acquireTime": "1969-12-31T23:59:58.999999Z"}


def test_core_event_with_zero_times_as_null() -> None:
    raw = body(
        "v1", "Event",
        mf(1, sf(1, "ev")),
        mf(2, sf(1, "Pod"), sf(2, "ns"), sf(3, "p"), sf(4, ""), sf(7, "spec.containers{c}")),
        sf(3, "Started"), sf(4, "started container"),
        mf(5, sf(1, "kubelet"), sf(2, "")),
        mf(6, _timestamp(JAN_2_2026)), mf(7), vf(8, 2), sf(9, "Normal"),
        mf(10, _timestamp(JAN_2_2026, 5_000)),
        mf(11, vf(1, 2), mf(2, _timestamp(JAN_2_2026))),
        sf(12, ""), mf(13, sf(1, "Node"), sf(3, "n1")), sf(14, ""), sf(15, ""),
    )
    assert decode_protobuf_object(raw) == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "ev"},
        "involvedObject": {
            "kind": "Pod", "namespace": "ns", "name": "p", "fieldPath": "spec.containers{c}",
        },
        "reason": "Started",
        "message": "started container",
        "source": {"component": "kubelet"},
        "firstTimestamp": "2026-01-02T03:04:05Z",
        "lastTimestamp": None,
        "count": 2,
        "type": "Normal",
        "eventTime": "2026-01-02T03:04:05.000005Z",
        "series": {"count": 2, "lastObservedTime": "2026-01-02T03:04:05.000000Z"},
        "related": {"kind": "Node", "name": "n1"},
        "reportingComponent": "",
        "reportingInstance": "",
    }


def test_events_v1_event() -> None:
    raw = body(
        "events.k8s.io/v1", "Event",
        mf(1, sf(1, "ev"), sf(3, "default")),
        mf(2, _timestamp(JAN_2_2026, 7_000)),
        mf(3, vf(1, 0), mf(2)),
        sf(4, "ctrl"), sf(5, "ctrl-1"), sf(6, "Scale"), sf(7, "Scaled"),
        mf(8, sf(1, "Deployment"), sf(3, "web")),
        sf(10, "scaled up"), sf(11, "Normal"),
        mf(12), mf(13), mf(14), vf(15, 0),
    )
    assert decode_protobuf_object(raw) == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "ev", "namespace": "default"},
        "eventTime": "2026-01-02T03:04:05.000007Z",
        "series": {"count": 0, "lastObservedTime": None},
        "reportingController": "ctrl",
        "reportingInstance": "ctrl-1",
        "action": "Scale",
        "reason": "Scaled",
        "regarding": {"kind": "Deployment", "name": "web"},
        "note": "scaled up",
        "type": "Normal",
        "deprecatedSource": {},
        "deprecatedFirstTimestamp": None,
        "deprecatedLastTimestamp": None,
    }


def test_limit_range_quantities_and_empty_map_value() -> None:
    item = mf(
        1,
        sf(1, "Container"),
        entry(2, "cpu", value=mf(2, sf(1, "2"))),
        entry(3, "memory", value=mf(2, sf(1, "64Mi"))),
        entry(4, "cpu", value=mf(2)),
        entry(5, "cpu", value=mf(2, sf(1, "100m"))),
        mf(6, sf(1, "cpu")),
    )
    raw = body("v1", "LimitRange", mf(1, sf(1, "lr")), mf(2, item))
    assert decode_protobuf_object(raw)["spec"] == {
        "limits": [
            {
                "type": "Container",
                "max": {"cpu": "2"},
                "min": {"memory": "64Mi"},
                "default": {"cpu": "0"},
                "defaultRequest": {"cpu": "100m"},
                "maxLimitRequestRatio": {"cpu": "0"},
            }
        ]
    }


def test_limit_range_without_limits_holds_null_like_go_json() -> None:
    raw = body("v1", "LimitRange", mf(1, sf(1, "lr")), mf(2))
    assert decode_protobuf_object(raw)["spec"] == {"limits": None}


def test_resource_quota_scope_selector_and_status() -> None:
    raw = body(
        "v1", "ResourceQuota",
        mf(1, sf(1, "q")),
        mf(
            2,
            entry(1, "pods", value=mf(2, sf(1, "10"))),
            mf(3, mf(1, sf(1, "PriorityClass"), sf(2, "In"), sf(3, "high"), sf(3, "low"))),
        ),
        mf(
            3,
            entry(1, "pods", value=mf(2, sf(1, "10"))),
            entry(2, "pods", value=mf(2, sf(1, "3"))),
        ),
    )
    decoded = decode_protobuf_object(raw)
    assert decoded["spec"] == {
        "hard": {"pods": "10"},
        "scopeSelector": {
            "matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high", "low"]}
            ]
        },
    }
    assert decoded["status"] == {"hard": {"pods": "10"}, "used": {"pods": "3"}}


def test_namespace_status_conditions() -> None:
    raw = body(
        "v1", "Namespace",
        mf(1, sf(1, "ns")),
        mf(2, sf(1, "kubernetes")),
        mf(3, sf(1, "Terminating"), mf(2, sf(1, "NamespaceDeletionContentFailure"),
                                        sf(2, "False"), mf(4, _timestamp(JAN_2_2026)),
                                        sf(5, "ContentDeleted"), sf(6, ""))),
    )
    decoded = decode_protobuf_object(raw)
    assert decoded["spec"] == {"finalizers": ["kubernetes"]}
    assert decoded["status"] == {
        "phase": "Terminating",
        "conditions": [
            {
                "type": "NamespaceDeletionContentFailure", "status": "False",
                "lastTransitionTime": "2026-01-02T03:04:05Z", "reason": "ContentDeleted",
            }
        ],
    }


def test_secret_and_service_account_pointer_booleans_keep_false() -> None:
    secret = body(
        "v1", "Secret", mf(1, sf(1, "s")), entry(2, "k", value=ld(2, b"\x00\xff")),
        sf(3, "Opaque"), entry(4, "plain", value=sf(2, "text")), vf(5, 0),
    )
    assert decode_protobuf_object(secret) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"k": "AP8="}, "type": "Opaque", "stringData": {"plain": "text"},
        "immutable": False,
    }
    account = body(
        "v1", "ServiceAccount", mf(1, sf(1, "sa")),
        mf(2, sf(3, "token-secret")), mf(3, sf(1, "pull")), vf(4, 0),
    )
    assert decode_protobuf_object(account) == {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
        "secrets": [{"name": "token-secret"}], "imagePullSecrets": [{"name": "pull"}],
        "automountServiceAccountToken": False,
    }


def test_cluster_role_selector_with_match_expressions() -> None:
    selector = mf(
        1, entry(1, "a", value=sf(2, "b")),
        mf(2, sf(1, "tier"), sf(2, "Exists")),
    )
    raw = body("rbac.authorization.k8s.io/v1", "ClusterRole", mf(1, sf(1, "c")),
               mf(2, sf(1, "get"), sf(2, "")), mf(3, selector))
    assert decode_protobuf_object(raw) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "c"},
        "rules": [{"verbs": ["get"], "apiGroups": [""]}],
        "aggregationRule": {
            "clusterRoleSelectors": [
                {"matchLabels": {"a": "b"},
                 "matchExpressions": [{"key": "tier", "operator": "Exists"}]}
            ]
        },
    }


def test_token_request_attestations_and_unset_pointers() -> None:
    spec = mf(2, sf(1, "api"), entry(5, "tpm", value=mf(2, sf(1, "x"), sf(1, "y"))))
    decoded = decode_protobuf_object(body("authentication.k8s.io/v1", "TokenRequest", spec))
    assert decoded["spec"] == {
        "audiences": ["api"],
        "attestations": {"tpm": ["x", "y"]},
        "expirationSeconds": None,
        "boundObjectRef": None,
    }


@pytest.mark.parametrize("api_version", ["meta.k8s.io/v1", "v1", "apps/v1"])
def test_delete_options_in_any_group_version(api_version: str) -> None:
    raw = body(
        api_version, "DeleteOptions",
        vf(1, 0), mf(2, sf(1, "u-1"), sf(2, "7")), vf(3, 0), sf(4, "Foreground"),
        sf(5, "All"), vf(6, 1),
    )
    assert decode_protobuf_object(raw) == {
        "apiVersion": api_version,
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u-1", "resourceVersion": "7"},
        "orphanDependents": False,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
        "ignoreStoreReadErrorWithClusterBreakingPotential": True,
    }


def test_negative_integers_decode_as_go_does() -> None:
    raw = body("v1", "Event", mf(1, sf(1, "e")), vf(8, -3))
    assert decode_protobuf_object(raw)["count"] == -3
    meta = mf(1, sf(1, "x"), vf(10, -30))
    assert decode_protobuf_object(body("v1", "ConfigMap", meta))["metadata"] == {
        "name": "x", "deletionGracePeriodSeconds": -30,
    }


def test_unknown_fields_are_skipped() -> None:
    raw = body(
        "v1", "ConfigMap",
        mf(1, sf(1, "x"), sf(99, "future"), vf(98, 1)),
        varint(50 << 3 | 5) + b"abcd", varint(51 << 3 | 1) + b"abcdefgh",
        entry(2, "a", value=sf(2, "b")),
    )
    assert decode_protobuf_object(raw) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"},
    }


def test_repeated_singular_fields_follow_protobuf_merge_rules() -> None:
    raw = body(
        "v1", "ConfigMap",
        mf(1, sf(1, "first"), entry(11, "a", value=sf(2, "1"))),
        mf(1, sf(3, "ns"), entry(11, "b", value=sf(2, "2"))),
        vf(4, 1), vf(4, 0),
    )
    assert decode_protobuf_object(raw) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "first", "namespace": "ns", "labels": {"a": "1", "b": "2"}},
        "immutable": False,
    }


def test_map_entry_missing_key_or_value_uses_zero_values() -> None:
    raw = body("v1", "ConfigMap", mf(2, sf(2, "no key")), mf(2, sf(1, "no value")))
    assert decode_protobuf_object(raw)["data"] == {"": "no key", "no value": ""}


def test_invalid_utf8_is_replaced_like_go_json() -> None:
    raw = body("v1", "ConfigMap", mf(1, ld(1, b"a\xffb")))
    assert decode_protobuf_object(raw)["metadata"] == {"name": "a\ufffdb"}


def test_go_zero_time_sent_explicitly_is_null() -> None:
    meta = mf(1, sf(1, "x"), mf(9, _timestamp(-62135596800)))
    decoded = decode_protobuf_object(body("v1", "ConfigMap", meta))
    assert decoded["metadata"] == {"name": "x", "deletionTimestamp": None}


def test_int_or_string() -> None:
    decode = protobuf._decode_well_known
    assert decode(Kind.INT_OR_STRING, vf(1, 0) + vf(2, 8080), label="port") == 8080
    assert decode(Kind.INT_OR_STRING, vf(1, 1) + sf(3, "http"), label="port") == "http"
    assert decode(Kind.INT_OR_STRING, b"", label="port") == 0


def test_supports_protobuf() -> None:
    assert supports_protobuf("v1", "ConfigMap")
    assert supports_protobuf("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    assert supports_protobuf("policy/v1", "DeleteOptions")
    assert not supports_protobuf("v1", "Pod")
    assert not supports_protobuf("rbac.authorization.k8s.io/v1beta1", "Role")


def test_every_table_reference_resolves() -> None:
    for message in KINDS.values():
        assert message in MESSAGES
    for fields in MESSAGES.values():
        for field in fields.values():
            if field.kind is Kind.MESSAGE:
                assert field.message in MESSAGES, field


# --- errors ------------------------------------------------------------------------------


def test_rejects_body_without_magic() -> None:
    expect_bad_request(b'{"kind":"ConfigMap"}', "missing the k8s\\x00 prefix")


def test_rejects_unknown_kind() -> None:
    expect_bad_request(body("v1", "Pod"), 'no kind "Pod" is registered for version "v1"')


def test_rejects_missing_kind() -> None:
    expect_bad_request(b"k8s\x00" + ld(2, b""), "Object 'Kind' is missing")


def test_rejects_nesting_deeper_than_the_limit() -> None:
    with pytest.raises(StatusError, match="nested deeper than 64 levels"):
        protobuf.decode_message(b"", message="core/v1.ConfigMap", depth=protobuf.MAX_DEPTH + 1)
    assert protobuf.decode_message(b"", message="core/v1.ConfigMap", depth=protobuf.MAX_DEPTH) == {}


def test_rejects_oversized_body() -> None:
    raw = body("v1", "ConfigMap", sf(99, "x" * MAX_BODY_BYTES))
    expect_bad_request(raw, "exceeds the 3145728-byte limit")


def test_rejects_content_encoding() -> None:
    raw = b"k8s\x00" + mf(1, sf(1, "v1"), sf(2, "ConfigMap")) + sf(3, "gzip")
    expect_bad_request(raw, "unsupported contentEncoding 'gzip'")


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (vf(1, 5), "wrong wire type 0 for field ConfigMap.metadata"),
        (mf(1, vf(1, 5)), "wrong wire type 0 for field ObjectMeta.name"),
        (mf(1, sf(7, "3")), "wrong wire type 2 for field ObjectMeta.generation"),
        (sf(4, "yes"), "wrong wire type 2 for field ConfigMap.immutable"),
        (mf(2, vf(1, 1)), "wrong wire type 0 for field ConfigMap.data.key"),
        (vf(2, 1), "wrong wire type 0 for field ConfigMap.data"),
        (mf(2, sf(1, "k"), vf(2, 1)), "wrong wire type 0 for field ConfigMap.data[k]"),
        (mf(1, mf(8, sf(1, "x"))), "wrong wire type 2 for field ObjectMeta.creationTimestamp#1"),
        (mf(1, mf(17, mf(7, ld(1, b"{nope")))), "ManagedFieldsEntry.fieldsV1 does not hold"),
        (mf(1, mf(8, vf(1, 1 << 62))), "time out of range in field ObjectMeta.creationTimestamp"),
        (ld(1, b"\x0a\x05ab"), "field of 5 bytes runs past the end"),
    ],
)
def test_rejects_malformed_object(part: bytes, message: str) -> None:
    expect_bad_request(body("v1", "ConfigMap", part), message)


def test_body_cut_inside_the_object_is_rejected() -> None:
    raw = (DATA / "rolebinding.pb").read_bytes()
    payload = next(value for number, _, value in iter_fields(raw[4:]) if number == 2)
    assert isinstance(payload, bytes)
    payload_end = raw.index(payload) + len(payload)
    for cut in range(payload_end - len(payload), payload_end):
        with pytest.raises(StatusError) as caught:
            decode_protobuf_object(raw[:cut])
        assert caught.value.code == 400


# --- fuzzing -----------------------------------------------------------------------------


def _decodes_or_rejects(raw: bytes) -> None:
    try:
        decoded = decode_protobuf_object(raw)
    except StatusError as error:
        assert error.code == 400
        assert error.reason == "BadRequest"
        return
    orjson.dumps(decoded)  # anything decoded must be JSON-serialisable


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_after_magic(data: bytes) -> None:
    _decodes_or_rejects(b"k8s\x00" + data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decodes_or_rejects(data)


_KIND_KEYS = sorted(KINDS)


def _field_bytes() -> st.SearchStrategy[bytes]:
    """Plausible fields: small numbers, valid wire types, sometimes nested messages."""
    scalar = st.one_of(
        st.builds(vf, st.integers(1, 20), st.integers(-(1 << 63), (1 << 64) - 1)),
        st.builds(ld, st.integers(1, 20), st.binary(max_size=12)),
        st.builds(lambda n, b: varint(n << 3 | 5) + b, st.integers(1, 20),
                  st.binary(min_size=4, max_size=4)),
    )
    return st.recursive(
        scalar,
        lambda inner: st.builds(
            lambda n, parts: mf(n, *parts), st.integers(1, 20), st.lists(inner, max_size=4)
        ),
        max_leaves=20,
    )


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_KIND_KEYS), st.lists(_field_bytes(), max_size=6))
def test_fuzz_structured_objects_of_every_kind(key: tuple[str, str], parts: list[bytes]) -> None:
    _decodes_or_rejects(body(key[0], key[1], *parts))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FIXTURES), st.data())
def test_fuzz_mutated_captured_bodies(name: str, data: st.DataObject) -> None:
    raw = bytearray((DATA / f"{name}.pb").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    _decodes_or_rejects(bytes(raw))
