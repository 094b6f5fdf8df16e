"""Request limits and the audit log, end to end, on a server with tight in-flight budgets.

The server runs with ``--max-requests-inflight 1 --max-mutating-requests-inflight 1`` and
``--audit-log-path``: a burst of concurrent requests must meet 429 with ``Retry-After``
while open watches never count, oversized bodies get 413, deep JSON and YAML aliases 400,
and every request leaves one ``audit.k8s.io/v1`` Event line at level Metadata naming the
user, verb, resource, workspace and response code.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import KplaneProcess, free_port
from tests.e2e.test_authorization import mint_kubeconfig, minted_cert, user_client
from tests.e2e.test_workspaces import eventually, ready_workspace

WS = "root:limits"
CONFIGMAPS = f"/clusters/{WS}/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    base = tmp_path_factory.mktemp("limits")
    server = KplaneProcess(data_dir=base / "data", port=free_port(), extra_args=[
        "--audit-log-path", str(base / "audit" / "audit.log"),
        "--max-requests-inflight", "1", "--max-mutating-requests-inflight", "1"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def audit_path(kplane: KplaneProcess) -> Path:
    return kplane.data_dir.parent / "audit" / "audit.log"


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    # Retries absorb the 429s that the tiny budget gives the fixtures' own requests.
    with kplane.client() as session:
        eventually(lambda: _retrying(lambda: ready_workspace(session, "root", "limits")),
                   what="workspace")
        yield session


def _retrying(call: Any) -> Any:
    try:
        return call() or True
    except AssertionError as failure:
        if "429" in str(failure) or "Too many requests" in str(failure):
            return False
        raise


def _status(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, (response.status_code, response.text[:300])
    status: dict[str, Any] = response.json()
    assert (status["kind"], status["status"], status["code"], status["reason"]) == (
        "Status", "Failure", code, reason), status
    return status


def test_a_burst_beyond_the_budget_meets_429_with_retry_after(kplane: KplaneProcess,
                                                              http: httpx.Client) -> None:
    _burst(kplane)


def _burst(kplane: KplaneProcess) -> None:
    """While one read holds the only read slot, 24 simultaneous lists get 429; once it is
    free, a list passes again.

    Reads served from the cache never wait, so the slot is held on purpose by a read that
    must wait: one asking for a resourceVersion from the future (504 after a few seconds).
    """
    holder_started = threading.Event()

    def hold() -> httpx.Response:
        with kplane.client() as client:
            holder_started.set()
            return client.get(f"/clusters/{WS}/api/v1/configmaps",
                              params={"resourceVersion": "999999999"})

    barrier = threading.Barrier(24)

    def one(_: int) -> httpx.Response:
        with kplane.client() as client:
            barrier.wait()
            return client.get(f"/clusters/{WS}/api/v1/configmaps")

    with ThreadPoolExecutor(max_workers=25) as pool:
        holder = pool.submit(hold)
        assert holder_started.wait(timeout=10)
        time.sleep(0.5)  # the holder's request is now waiting inside the server
        responses = list(pool.map(one, range(24)))
        assert holder.result().status_code == 504
    codes = sorted({r.status_code for r in responses})
    assert codes == [429], codes
    for response in responses:
        _status(response, 429, "TooManyRequests")
        assert response.headers["Retry-After"] == "1"
    with kplane.client() as client:
        assert client.get(f"/clusters/{WS}/api/v1/configmaps").status_code == 200


def test_mutating_requests_have_a_budget_of_their_own(kplane: KplaneProcess,
                                                     http: httpx.Client) -> None:
    barrier = threading.Barrier(24)

    def create(index: int) -> httpx.Response:
        with kplane.client() as client:
            barrier.wait()
            return client.post(CONFIGMAPS, json={"metadata": {"name": f"burst-{index}"}})

    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = sorted(r.status_code for r in pool.map(create, range(24)))
    assert 429 in codes and 201 in codes, codes
    assert set(codes) <= {201, 429}, codes


def test_open_watches_do_not_use_the_budget(kplane: KplaneProcess, http: httpx.Client) -> None:
    with kplane.client() as watcher, watcher.stream(
            "GET", CONFIGMAPS, params={"watch": "1", "timeoutSeconds": "5"}) as stream:
        assert stream.status_code == 200
        for _ in range(5):
            assert http.get(CONFIGMAPS).status_code == 200


def test_a_body_over_3_mib_gets_413(http: httpx.Client) -> None:
    body = json.dumps({"metadata": {"name": "huge"}, "data": {"k": "x" * (3 * 1024 * 1024)}})
    response = http.post(CONFIGMAPS, content=body,
                         headers={"Content-Type": "application/json"})
    _status(response, 413, "RequestEntityTooLarge")
    assert http.get(f"{CONFIGMAPS}/huge").status_code == 404


def test_json_deeper_than_100_levels_gets_400(http: httpx.Client) -> None:
    deep = "[" * 101 + "]" * 101
    body = '{"metadata": {"name": "deep"}, "data": {"k": "v"}, "x": ' + deep + "}"
    response = http.post(CONFIGMAPS, content=body, headers={"Content-Type": "application/json"})
    _status(response, 400, "BadRequest")
    shallow = "[" * 20 + "]" * 20
    ok = http.post(CONFIGMAPS, content=body.replace(deep, shallow).replace("deep", "shallow"),
                   headers={"Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text


def test_yaml_aliases_get_400(http: httpx.Client) -> None:
    bomb = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n"
            "  labels: &a {x: y}\n  annotations: *a\ndata:\n  k: v\n")
    response = http.post(CONFIGMAPS, content=bomb, headers={"Content-Type": "application/yaml"})
    _status(response, 400, "BadRequest")
    assert http.get(f"{CONFIGMAPS}/bomb").status_code == 404


def _audit_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _lines_after(path: Path, count: int, *, expected: int) -> list[dict[str, Any]]:
    """The events written after the first ``count`` lines, once ``expected`` are there."""
    events: list[dict[str, Any]] = eventually(
        lambda: (new := _audit_events(path)[count:]) and len(new) >= expected and new,
        what=f"{expected} audit lines")
    return events


def test_every_request_is_audited_at_metadata_level(kplane: KplaneProcess, http: httpx.Client,
                                                    audit_path: Path, tmp_path: Path) -> None:
    marker = "audited-cm"
    config = mint_kubeconfig(kplane, workspace=WS, user="mallory", out=tmp_path / "m.kubeconfig")
    count = len(_audit_events(audit_path))
    created = http.post(CONFIGMAPS, json={"metadata": {"name": marker}, "data": {"k": "v"}})
    assert created.status_code == 201, created.text
    with user_client(kplane, minted_cert(kplane, config)) as mallory:
        refused = mallory.delete(f"{CONFIGMAPS}/{marker}")
    assert refused.status_code == 403
    with user_client(kplane) as anonymous:
        assert anonymous.get(CONFIGMAPS).status_code == 401
    create, delete, unauthenticated = _lines_after(audit_path, count, expected=3)[:3]
    for event in (create, delete, unauthenticated):
        assert (event["kind"], event["apiVersion"], event["level"], event["stage"]) == (
            "Event", "audit.k8s.io/v1", "Metadata", "ResponseComplete")
        assert event["auditID"] and event["requestReceivedTimestamp"].endswith("Z")
        assert event["sourceIPs"] == ["127.0.0.1"]
        assert "requestObject" not in event and "responseObject" not in event
    assert (create["verb"], create["requestURI"], create["responseStatus"]["code"]) == (
        "create", CONFIGMAPS, 201)
    assert "system:masters" in create["user"]["groups"]
    assert create["objectRef"]["resource"] == "configmaps"
    assert create["objectRef"]["namespace"] == "default"
    assert create["annotations"]["kcp.io/path"] == WS
    cluster = create["annotations"]["kcp.io/cluster"]
    assert len(cluster) == 16 and cluster.isalnum()
    assert delete["verb"] == "delete" and delete["responseStatus"]["code"] == 403
    assert delete["user"] == {"username": "mallory", "groups": ["system:authenticated"]}
    assert delete["objectRef"] == {"resource": "configmaps", "namespace": "default",
                                   "name": marker, "apiVersion": "v1"}
    assert delete["annotations"] == {"kcp.io/cluster": cluster, "kcp.io/path": WS}
    assert unauthenticated["responseStatus"]["code"] == 401
    assert unauthenticated["user"]["username"] == "system:anonymous"


def test_a_create_event_names_the_created_object(http: httpx.Client,
                                                 audit_path: Path) -> None:
    # Upstream fills objectRef.name (and namespace) from the request object on create,
    # even at level Metadata; without it no one can tell from the log what was created.
    count = len(_audit_events(audit_path))
    created = http.post(CONFIGMAPS, json={"metadata": {"name": "named-in-audit"}})
    assert created.status_code == 201, created.text
    (event,) = _lines_after(audit_path, count, expected=1)[:1]
    assert event["objectRef"].get("name") == "named-in-audit", event["objectRef"]


def test_a_request_refused_for_load_is_audited_with_its_user_and_workspace(
        kplane: KplaneProcess, http: httpx.Client, audit_path: Path) -> None:
    # Upstream authenticates before the in-flight limit, so a 429 is attributed to who sent
    # it, in the workspace it was sent to.
    _burst(kplane)
    refused = [e for e in _audit_events(audit_path) if e["responseStatus"]["code"] == 429]
    assert refused
    for event in refused:
        assert event["user"]["username"] != "system:anonymous", event
        assert event["annotations"]["kcp.io/path"] == WS, event
