"""The real kubectl against a real kplane process: the everyday commands."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.e2e.server import KUBECTL, KplaneProcess

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends


def test_initial_namespaces_exist(kplane: KplaneProcess) -> None:
    names = kplane.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(names)


def test_metrics_count_requests_and_cached_objects(kplane: KplaneProcess) -> None:
    kplane.kubectl("get", "namespaces")
    text = kplane.kubectl("get", "--raw", "/metrics").stdout
    found = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
             if line and not line.startswith("#")}
    # The three initial namespaces, the root LogicalCluster, the bootstrap RBAC and more.
    assert found["apiserver_storage_objects_total"] >= 4
    listed = 'apiserver_request_total{code="200",resource="namespaces",verb="list"}'
    assert found[listed] >= 1
    assert found['apiserver_request_duration_seconds_count{verb="list"}'] >= 1


def test_version_and_api_resources(kplane: KplaneProcess) -> None:
    version = json.loads(kplane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1"
    assert version["serverVersion"]["minor"].isdigit()
    table = kplane.kubectl("api-resources").stdout
    for expected in ("configmaps", "secrets", "namespaces", "serviceaccounts", "leases",
                     "roles", "clusterrolebindings", "events"):
        assert expected in table
    assert "cm " in table or " cm\n" in table or "cm  " in table


def test_create_get_configmap_table_columns(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "configmap", "tour", "--from-literal=a=1", "--from-literal=b=2")
    out = kplane.kubectl("get", "configmap", "tour").stdout.splitlines()
    assert out[0].split() == ["NAME", "DATA", "AGE"]
    assert out[1].split()[:2] == ["tour", "2"]
    obj = kplane.kubectl_json("get", "cm", "tour")
    assert obj["data"] == {"a": "1", "b": "2"}
    assert obj["metadata"]["uid"]
    assert obj["metadata"]["resourceVersion"].isdigit()
    assert obj["metadata"]["annotations"]["kcp.io/cluster"] == "root"


def test_apply_then_reapply_changes_and_diff(kplane: KplaneProcess) -> None:
    manifest = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"app": "demo"}},
        "data": {"k": "v1"},
    }
    first = kplane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    assert "configmap/applied created" in first.stdout
    manifest["data"] = {"k": "v2", "extra": "x"}
    diff = kplane.kubectl("diff", "-f", "-", input=json.dumps(manifest), check=False)
    assert diff.returncode == 1, diff.stderr
    assert "+  k: v2" in diff.stdout
    second = kplane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    assert "configmap/applied configured" in second.stdout
    assert kplane.kubectl_json("get", "cm", "applied")["data"] == {"k": "v2", "extra": "x"}
    # Removing a key from the manifest removes it from the object (three-way merge).
    manifest["data"] = {"k": "v2"}
    kplane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    assert kplane.kubectl_json("get", "cm", "applied")["data"] == {"k": "v2"}


def test_server_side_apply_and_conflict(kplane: KplaneProcess) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}, "data": {"owned": "one"}}
    out = kplane.kubectl("apply", "--server-side", "--field-manager", "alice", "-f", "-",
                         input=json.dumps(manifest))
    assert "serverside-applied" in out.stdout
    manifest["data"] = {"owned": "two"}
    clash = kplane.kubectl("apply", "--server-side", "--field-manager", "bob", "-f", "-",
                           input=json.dumps(manifest), check=False)
    assert clash.returncode != 0
    assert "conflict" in clash.stderr.lower()
    assert ".data.owned" in clash.stderr
    kplane.kubectl("apply", "--server-side", "--field-manager", "bob", "--force-conflicts",
                   "-f", "-", input=json.dumps(manifest))
    obj = kplane.kubectl_json("get", "cm", "ssa", "--show-managed-fields")
    assert obj["data"]["owned"] == "two"
    managers = {e["manager"] for e in obj["metadata"]["managedFields"]}
    assert "bob" in managers


def test_patch_edit_style_and_replace(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "configmap", "patched", "--from-literal=a=1")
    kplane.kubectl("patch", "configmap", "patched", "-p", '{"data":{"b":"2"}}')
    kplane.kubectl("patch", "configmap", "patched", "--type=json",
                   "-p", '[{"op":"remove","path":"/data/a"}]')
    kplane.kubectl("patch", "configmap", "patched", "--type=merge",
                   "-p", '{"metadata":{"labels":{"tier":"x"}}}')
    obj = kplane.kubectl_json("get", "cm", "patched")
    assert obj["data"] == {"b": "2"}
    assert obj["metadata"]["labels"] == {"tier": "x"}
    obj["data"] = {"replaced": "yes"}
    kplane.kubectl("replace", "-f", "-", input=json.dumps(obj))
    assert kplane.kubectl_json("get", "cm", "patched")["data"] == {"replaced": "yes"}
    # Replacing with the stale resourceVersion is a conflict.
    stale = kplane.kubectl("replace", "-f", "-", input=json.dumps(obj), check=False)
    assert stale.returncode != 0
    assert "the object has been modified" in stale.stderr


def test_failed_json_patch_test_is_422(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "configmap", "tested", "--from-literal=a=1")
    result = kplane.kubectl("patch", "configmap", "tested", "--type=json",
                            "-p", '[{"op":"test","path":"/data/a","value":"2"}]', check=False)
    assert result.returncode != 0
    with kplane.client() as client:
        response = client.patch(
            "/api/v1/namespaces/default/configmaps/tested",
            content=b'[{"op":"test","path":"/data/a","value":"2"}]',
            headers={"content-type": "application/json-patch+json"})
    assert response.status_code == 422
    assert response.json()["kind"] == "Status"


def test_delete_waits_and_returns(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "configmap", "doomed")
    result = kplane.kubectl("delete", "configmap", "doomed", timeout=30)
    assert 'configmap "doomed" deleted' in result.stdout
    missing = kplane.kubectl("get", "configmap", "doomed", check=False)
    assert missing.returncode != 0
    assert 'configmaps "doomed" not found' in missing.stderr


def test_namespace_deletion_removes_content(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "namespace", "scratch")
    kplane.kubectl("create", "configmap", "inside", "-n", "scratch")
    kplane.kubectl("create", "secret", "generic", "s", "-n", "scratch", "--from-literal=x=y")
    kplane.kubectl("delete", "namespace", "scratch", "--timeout=30s", timeout=40)
    gone = kplane.kubectl("get", "namespace", "scratch", check=False)
    assert gone.returncode != 0
    with kplane.client() as client:
        listed = client.get("/api/v1/configmaps").json()
    assert not [i for i in listed["items"] if i["metadata"]["namespace"] == "scratch"]


def test_get_watch_streams_changes(kplane: KplaneProcess) -> None:
    command = [KUBECTL, "--kubeconfig", str(kplane.kubeconfig), "get", "configmaps", "-w",
               "--output-watch-events", "-l", "watched=yes"]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.0)
        kplane.kubectl("create", "configmap", "w1")
        kplane.kubectl("label", "configmap", "w1", "watched=yes")
        kplane.kubectl("delete", "configmap", "w1")
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, _err = watcher.communicate(timeout=10)
    lines = [line.split() for line in out.splitlines() if line.strip()]
    events = [(parts[0], parts[1]) for parts in lines if parts and parts[0] != "EVENT"]
    assert ("ADDED", "w1") in events
    assert ("DELETED", "w1") in events


def test_explain_uses_openapi(kplane: KplaneProcess) -> None:
    out = kplane.kubectl("explain", "configmap.data").stdout
    assert "KIND:" in out and "ConfigMap" in out
    assert "FIELD: data" in out or "data" in out


def test_rbac_objects_round_trip(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "role", "reader", "--verb=get,list", "--resource=configmaps")
    kplane.kubectl("create", "rolebinding", "reader-binding", "--role=reader", "--user=alice")
    kplane.kubectl("create", "clusterrole", "global-reader", "--verb=get", "--resource=secrets")
    kplane.kubectl("create", "clusterrolebinding", "global-binding",
                   "--clusterrole=global-reader", "--group=team")
    out = kplane.kubectl("get", "rolebinding", "reader-binding", "-o", "wide").stdout
    assert "Role/reader" in out
    assert "alice" in out
    role = kplane.kubectl_json("get", "role", "reader")
    assert role["rules"][0]["verbs"] == ["get", "list"]


def test_serviceaccount_lease_event(kplane: KplaneProcess) -> None:
    kplane.kubectl("create", "serviceaccount", "robot")
    assert kplane.kubectl_json("get", "sa", "robot")["metadata"]["name"] == "robot"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "leader"},
             "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}
    kplane.kubectl("apply", "-f", "-", input=json.dumps(lease))
    out = kplane.kubectl("get", "lease", "leader").stdout
    assert out.splitlines()[0].split()[:2] == ["NAME", "HOLDER"]
    assert "me" in out


@pytest.mark.parametrize("bad_name", ["Upper", "under_score", "a" * 300])
def test_invalid_names_are_422(kplane: KplaneProcess, bad_name: str) -> None:
    result = kplane.kubectl("create", "configmap", bad_name, check=False)
    assert result.returncode != 0
    assert "is invalid" in result.stderr


def test_events_written_through_either_api_show_in_both(kplane: KplaneProcess) -> None:
    new_style = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
                 "metadata": {"name": "from-v1"},
                 "eventTime": "2026-11-28T16:00:00.000000Z", "reportingController": "ctl",
                 "reportingInstance": "ctl-1", "action": "Sync", "reason": "Synced",
                 "type": "Normal", "note": "recorded through events.k8s.io",
                 "regarding": {"kind": "ConfigMap", "name": "cm1", "namespace": "default"}}
    kplane.kubectl("create", "-f", "-", input=json.dumps(new_style))
    old_style = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "from-core"},
                 "message": "recorded through core", "reason": "Old", "type": "Warning",
                 "involvedObject": {"kind": "ConfigMap", "name": "cm2",
                                    "namespace": "default"}}
    kplane.kubectl("create", "-f", "-", input=json.dumps(old_style))
    core = kplane.kubectl_json("get", "events", "from-v1")
    assert core["message"] == "recorded through events.k8s.io"
    assert core["involvedObject"]["name"] == "cm1"
    modern = kplane.kubectl_json("get", "events.v1.events.k8s.io", "from-core")
    assert modern["note"] == "recorded through core"
    assert modern["regarding"]["name"] == "cm2"
    selected = kplane.kubectl("get", "events.v1.events.k8s.io",
                              "--field-selector", "regarding.name=cm1", "-o", "name").stdout
    assert selected.split() == ["event.events.k8s.io/from-v1"]
