"""A real kopf operator reconciling a custom resource in a kplane workspace.

The operator (``tests/e2e/operators/widget_operator.py``) runs as its own process with a
kubeconfig pointed at the workspace, as ``kopf run --standalone --all-namespaces``. It must
see Widgets created after it started, write their status through the status subresource,
and follow spec changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import KplaneProcess
from tests.e2e.test_workspaces import eventually, ready_workspace

WORKSPACE = "root:kopf"
GROUP = "example.kplane.io"
CRDS = "apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = f"/clusters/{WORKSPACE}/apis/{GROUP}/v1/namespaces/default/widgets"
OPERATOR = Path(__file__).parent / "operators" / "widget_operator.py"


def widget_crd() -> dict[str, Any]:
    status = {"type": "object", "properties": {
        "phase": {"type": "string"}, "observedSize": {"type": "integer"},
        "message": {"type": "string"}}}
    spec = {"type": "object", "properties": {"size": {"type": "integer", "default": 1}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": spec, "status": status}}}}]},
    }


def workspace_kubeconfig(kplane: KplaneProcess, directory: Path) -> Path:
    config = yaml.safe_load(kplane.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"{kplane.url}/clusters/{WORKSPACE}"
    path = directory / "kopf.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        ready_workspace(session, "root", "kopf")
        created = session.post(f"/clusters/{WORKSPACE}/{CRDS}", json=widget_crd())
        assert created.status_code == 201, created.text
        eventually(lambda: session.get(f"/clusters/{WORKSPACE}/apis/{GROUP}/v1"
                                       ).status_code == 200, what="widgets served")
        yield session


@pytest.fixture
def operator(kplane: KplaneProcess, http: httpx.Client,
             tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "KUBECONFIG": str(workspace_kubeconfig(kplane, tmp_path))}
    log_path = tmp_path / "kopf.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", str(OPERATOR), "--standalone",
             "--all-namespaces"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print(log_path.read_text()[-4000:])


def status_of(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.get(f"{WIDGETS}/{name}")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json().get("status") or {}
    return status


def test_kopf_reconciles_widgets_and_writes_status(
        http: httpx.Client, operator: subprocess.Popen[bytes]) -> None:
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"},
            "spec": {"size": 3}}
    assert http.post(WIDGETS, json=body).status_code == 201
    first = eventually(lambda: status_of(http, "w1").get("phase") == "Reconciled" and
                       status_of(http, "w1"), timeout=20, what="kopf reconciled w1")
    assert first == {"phase": "Reconciled", "observedSize": 3, "message": "3 parts assembled"}
    patched = http.patch(f"{WIDGETS}/w1", headers={"Content-Type": "application/merge-patch+json"},
                         json={"spec": {"size": 5}})
    assert patched.status_code == 200, patched.text
    eventually(lambda: status_of(http, "w1").get("observedSize") == 5, timeout=15,
               what="kopf followed the spec change")
    obj = http.get(f"{WIDGETS}/w1").json()
    assert obj["metadata"]["generation"] == 2
    assert obj["status"]["message"] == "5 parts assembled"
    assert operator.poll() is None, "the operator died"
