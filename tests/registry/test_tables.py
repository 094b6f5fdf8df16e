"""Table output, compared with what upstream's printers produce for the same objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.registry.builtin import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    CONFIGMAPS,
    EVENTS,
    EVENTS_V1,
    LEASES,
    LIMITRANGES,
    NAMESPACES,
    RESOURCEQUOTAS,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    SERVICEACCOUNTS,
)
from kplane.registry.resources import ResourceType
from kplane.registry.tables import (
    go_format,
    human_duration,
    parse_json_path,
    table_for,
    table_for_printer_columns,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": ago(seconds=5), **extra}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def columns(table: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(c["name"], c["type"], c["priority"], c["format"]) for c in table["columnDefinitions"]]


def cells(rt: ResourceType, obj: dict[str, Any]) -> list[Any]:
    [row] = table_for(rt, [obj], now=NOW)["rows"]
    return list(row["cells"])


@pytest.mark.parametrize(
    ("elapsed", "shown"),
    [
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(seconds=-0.5), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=119.9), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=3, seconds=2), "3m2s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=5), "3h5m"),
        (timedelta(hours=7, minutes=59, seconds=59), "7h59m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(hours=50), "2d2h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=740), "2y10d"),
        (timedelta(days=365 * 8), "8y"),
    ],
)
def test_human_duration_matches_upstream(elapsed: timedelta, shown: str) -> None:
    assert human_duration(elapsed) == shown


class TestTableShape:
    def test_table_with_partial_object_metadata(self) -> None:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm", "default"),
               "data": {"a": "1"}}
        table = table_for(CONFIGMAPS, [obj], list_meta={"resourceVersion": "42", "continue": "x"},
                          now=NOW)
        assert table["kind"] == "Table"
        assert table["apiVersion"] == "meta.k8s.io/v1"
        assert table["metadata"] == {"resourceVersion": "42", "continue": "x"}
        assert table["rows"] == [{
            "cells": ["cm", 1, "5s"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }]
        name, data, age = table["columnDefinitions"]
        assert name["name"] == "Name" and name["format"] == "name"
        assert name["description"].startswith("Name must be unique within a namespace")
        assert age["description"].startswith("CreationTimestamp")
        assert data["description"].startswith("Data contains the configuration data")
        assert set(name) == {"name", "type", "format", "description", "priority"}

    def test_include_object(self) -> None:
        obj = {"metadata": meta("cm", "default")}
        full = table_for(CONFIGMAPS, [obj], include_object="Object", now=NOW)
        assert full["rows"][0]["object"] is obj
        bare = table_for(CONFIGMAPS, [obj], include_object="None", now=NOW)
        assert bare["rows"][0]["object"] is None

    def test_unknown_include_object_is_a_bad_request(self) -> None:
        with pytest.raises(StatusError) as caught:
            table_for(CONFIGMAPS, [], include_object="Everything")
        assert caught.value.to_status()["code"] == 400
        assert "Everything" in caught.value.to_status()["message"]

    def test_watch_events_after_the_first_carry_no_columns(self) -> None:
        table = table_for(CONFIGMAPS, [], with_column_definitions=False, now=NOW)
        assert table["columnDefinitions"] == []
        assert table["rows"] == []
        assert table["metadata"] == {}

    def test_missing_creation_timestamp(self) -> None:
        assert cells(CONFIGMAPS, {"metadata": {"name": "x"}}) == ["x", 0, "<unknown>"]


class TestBuiltinPrinters:
    def test_namespace(self) -> None:
        table = table_for(NAMESPACES, [{"metadata": meta("default"),
                                        "status": {"phase": "Active"}}], now=NOW)
        assert columns(table) == [
            ("Name", "string", 0, "name"), ("Status", "string", 0, ""), ("Age", "string", 0, ""),
        ]
        assert table["rows"][0]["cells"] == ["default", "Active", "5s"]

    def test_config_map_counts_data_and_binary_data(self) -> None:
        obj = {"metadata": meta("cm", "ns"), "data": {"a": "1", "b": "2"},
               "binaryData": {"c": "AA=="}}
        assert cells(CONFIGMAPS, obj) == ["cm", 3, "5s"]

    def test_secret(self) -> None:
        table = table_for(SECRETS, [{"metadata": meta("s", "ns"), "type": "Opaque",
                                     "data": {"k": "dg=="}}], now=NOW)
        assert [c[0] for c in columns(table)] == ["Name", "Type", "Data", "Age"]
        assert table["rows"][0]["cells"] == ["s", "Opaque", 1, "5s"]

    def test_service_account(self) -> None:
        table = table_for(SERVICEACCOUNTS, [{"metadata": meta("default", "ns")}], now=NOW)
        assert [c[0] for c in columns(table)] == ["Name", "Secrets", "Age"]
        assert table["rows"][0]["cells"] == ["default", 0, "5s"]

    def test_core_event_all_columns(self) -> None:
        event = {
            "metadata": meta("pod.1", "ns"),
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled",
            "type": "Normal",
            "message": "  Container image pulled \n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(minutes=30),
            "lastTimestamp": ago(minutes=3, seconds=2),
            "count": 4,
        }
        table = table_for(EVENTS, [event], now=NOW)
        assert columns(table) == [
            ("Last Seen", "string", 0, ""),
            ("Type", "string", 0, ""),
            ("Reason", "string", 0, ""),
            ("Object", "string", 0, ""),
            ("Subobject", "string", 1, ""),
            ("Source", "string", 1, ""),
            ("Message", "string", 0, ""),
            ("First Seen", "string", 1, ""),
            ("Count", "string", 1, ""),
            ("Name", "string", 1, "name"),
        ]
        assert table["rows"][0]["cells"] == [
            "3m2s", "Normal", "Pulled", "pod/web", "spec.containers{app}", "kubelet, node-1",
            "Container image pulled", "30m", 4, "pod.1",
        ]

    def test_core_event_without_timestamps_or_count(self) -> None:
        event = {
            "metadata": meta("e", "ns"),
            "involvedObject": {"kind": "Node"},
            "eventTime": "2025-06-01T11:59:00.000000Z",
            "reportingController": "ctrl",
            "reportingInstance": "ctrl-1",
        }
        assert cells(EVENTS, event) == [
            "60s", "", "", "node", "", "ctrl, ctrl-1", "", "60s", 1, "e",
        ]

    def test_events_v1_use_the_same_printer_with_renamed_fields(self) -> None:
        event = {
            "metadata": meta("e", "ns"),
            "regarding": {"kind": "Deployment", "name": "api"},
            "note": "Scaled up",
            "reason": "ScalingReplicaSet",
            "type": "Normal",
            "eventTime": ago(hours=1),
            "reportingController": "deployment-controller",
            "series": {"count": 7, "lastObservedTime": ago(seconds=40)},
        }
        table = table_for(EVENTS_V1, [event], now=NOW)
        assert [c[0] for c in columns(table)][:4] == ["Last Seen", "Type", "Reason", "Object"]
        assert table["rows"][0]["cells"] == [
            "40s", "Normal", "ScalingReplicaSet", "deployment/api", "", "deployment-controller",
            "Scaled up", "60m", 7, "e",
        ]

    def test_resource_quota_splits_requests_and_limits(self) -> None:
        quota = {
            "metadata": meta("q", "ns"),
            "status": {
                "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "1Gi",
                         "configmaps": "5"},
                "used": {"pods": "3", "requests.cpu": "500m", "limits.memory": "0"},
            },
        }
        table = table_for(RESOURCEQUOTAS, [quota], now=NOW)
        assert [c[0] for c in columns(table)] == ["Name", "Request", "Limit", "Age"]
        assert table["rows"][0]["cells"] == [
            "q", "configmaps: 0/5, pods: 3/10, requests.cpu: 500m/2", "limits.memory: 0/1Gi",
            "5s",
        ]

    def test_lease(self) -> None:
        lease = {"metadata": meta("leader", "kube-system"), "spec": {"holderIdentity": "node-1"}}
        table = table_for(LEASES, [lease], now=NOW)
        assert [c[0] for c in columns(table)] == ["Name", "Holder", "Age"]
        assert table["rows"][0]["cells"] == ["leader", "node-1", "5s"]
        assert cells(LEASES, {"metadata": meta("free", "ns")}) == ["free", "", "5s"]

    @pytest.mark.parametrize("rt", [ROLES, CLUSTERROLES, LIMITRANGES])
    def test_default_convertor_kinds_show_created_at(self, rt: ResourceType) -> None:
        obj = {"metadata": {"name": "r", "creationTimestamp": "2024-03-04T05:06:07+02:00"}}
        table = table_for(rt, [obj], now=NOW)
        assert columns(table) == [("Name", "string", 0, "name"), ("Created At", "date", 0, "")]
        assert table["rows"][0]["cells"] == ["r", "2024-03-04T03:06:07Z"]

    @pytest.mark.parametrize("rt", [ROLEBINDINGS, CLUSTERROLEBINDINGS])
    def test_bindings(self, rt: ResourceType) -> None:
        binding = {
            "metadata": meta("b"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "Group", "name": "devs"},
                {"kind": "User", "name": "bob"},
                {"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
            ],
        }
        table = table_for(rt, [binding], now=NOW)
        assert columns(table) == [
            ("Name", "string", 0, "name"),
            ("Role", "string", 0, ""),
            ("Age", "string", 0, ""),
            ("Users", "string", 1, ""),
            ("Groups", "string", 1, ""),
            ("ServiceAccounts", "string", 1, ""),
        ]
        assert table["rows"][0]["cells"] == [
            "b", "ClusterRole/view", "5s", "alice, bob", "devs", "ci/robot",
        ]

    def test_unknown_kind_falls_back_to_name_and_age(self) -> None:
        widget = ResourceType(group="example.com", version="v1", resource="widgets",
                              kind="Widget", namespaced=True)
        table = table_for(widget, [{"metadata": meta("w", "ns")}], now=NOW)
        assert [c[0] for c in columns(table)] == ["Name", "Age"]
        assert table["rows"][0]["cells"] == ["w", "5s"]


class TestPrinterColumns:
    COLUMNS: list[dict[str, Any]] = [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "First", "type": "string", "jsonPath": ".spec.hosts[0]", "priority": 1,
         "description": "first host"},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
    ]

    def widget(self) -> dict[str, Any]:
        return {
            "metadata": meta("w", "ns"),
            "spec": {"replicas": 3.0, "hosts": ["a.example", "b.example"], "ratio": 2,
                     "paused": False, "size": {"cpu": 2, "memory": "1Gi"}},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]},
        }

    def test_columns_and_cells(self) -> None:
        table = table_for_printer_columns(self.COLUMNS, [self.widget()], now=NOW)
        assert [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]] == [
            ("Name", "string", 0), ("Replicas", "integer", 0), ("Ready", "string", 0),
            ("First", "string", 1), ("Ratio", "number", 0), ("Paused", "boolean", 0),
            ("Age", "date", 0), ("Size", "string", 0),
        ]
        assert table["columnDefinitions"][3]["description"] == "first host"
        assert table["rows"][0]["cells"] == [
            "w", 3, "True", "a.example", 2.0, False, "5s", "map[cpu:2 memory:1Gi]",
        ]
        assert isinstance(table["rows"][0]["cells"][1], int)

    def test_missing_or_mistyped_values_are_empty_cells(self) -> None:
        obj = {"metadata": {"name": "w", "creationTimestamp": "yesterday"},
               "spec": {"replicas": "three", "paused": "no", "hosts": []}}
        table = table_for_printer_columns(self.COLUMNS, [obj], now=NOW)
        assert table["rows"][0]["cells"] == [
            "w", None, None, None, None, None, "<invalid>", None,
        ]

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (".spec.replicas", [1]),
            ("{.spec.replicas}", [1]),
            (".spec.list[1].name", ["b"]),
            (".spec.list[-1].name", ["b"]),
            (".spec.list[*].name", ["a", "b"]),
            (".spec.list[?(@.weight > 1)].name", ["b"]),
            (".spec.list[?(@.name != 'a')].weight", [2]),
            (".metadata.labels['app.kubernetes.io/name']", ["web"]),
            (".spec.missing", []),
            (".spec.list[5]", []),
        ],
    )
    def test_json_path_subset(self, path: str, expected: list[Any]) -> None:
        obj = {
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 1, "list": [{"name": "a", "weight": 1},
                                             {"name": "b", "weight": 2}]},
        }
        assert parse_json_path(path).find(obj) == expected

    @pytest.mark.parametrize("path", ["spec", ".spec[", ".spec[?(@.a ~ 1)]", "..x"])
    def test_unsupported_paths_are_rejected(self, path: str) -> None:
        with pytest.raises(StatusError):
            parse_json_path(path)


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (True, "true"),
        (7, "7"),
        (1.0, "1"),
        (1.5, "1.5"),
        (1e6, "1e+06"),
        (0.00001, "1e-05"),
        ([1, "a"], "[1 a]"),
        ({"b": 1, "a": [True]}, "map[a:[true] b:1]"),
    ],
)
def test_go_format(value: Any, printed: str) -> None:
    assert go_format(value) == printed
