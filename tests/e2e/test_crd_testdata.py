"""Real-world CRDs (Gateway API, cert-manager) in a workspace, end to end.

Every CRD of ``/work/shared/testdata/crds`` goes in with ``kubectl apply --server-side`` and
must become Established; every kind is then served in every served version, every Gateway
API example object of a served kind is accepted, and the CRDs' own CEL rules are enforced
with their own messages. Client-side ``kubectl apply`` of the largest CRD must fail as it
does upstream: the last-applied annotation exceeds the 256 KiB limit on annotations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import KplaneProcess
from tests.e2e.test_workspaces import eventually, ready_workspace

TESTDATA = Path("/work/shared/testdata/crds")
CRD_FILES = sorted([*TESTDATA.glob("cert-manager/*.yaml"),
                    *TESTDATA.glob("gateway-api/crds/*.yaml")])
EXAMPLES = sorted(TESTDATA.glob("gateway-api/examples/**/*.yaml"))
# Examples also carry the workloads a route points at; those are not what is under test.
SKIPPED_KINDS = {"Service", "Deployment"}
WORKSPACE = "root:crd-data"
CRDS = "apis/apiextensions.k8s.io/v1/customresourcedefinitions"

pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="no CRD test data")


def url(rest: str, workspace: str = WORKSPACE) -> str:
    return f"/clusters/{workspace}/{rest}"


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_crds() -> list[dict[str, Any]]:
    return [doc for path in CRD_FILES for doc in load_documents(path)
            if doc.get("kind") == "CustomResourceDefinition"]


def conditions(crd: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        session.timeout = httpx.Timeout(30.0)
        ready_workspace(session, "root", "crd-data")
        yield session


@pytest.fixture(scope="module")
def installed(kplane: KplaneProcess, http: httpx.Client) -> list[dict[str, Any]]:
    """Every test-data CRD applied server-side and Established; returns them as served."""
    args = [arg for path in CRD_FILES for arg in ("-f", str(path))]
    kplane.kubectl("apply", "--server-side", *args, timeout=120,
                   server=f"{kplane.url}/clusters/{WORKSPACE}")
    names = [crd["metadata"]["name"] for crd in all_crds()]

    def all_established() -> list[dict[str, Any]] | None:
        served = [http.get(url(f"{CRDS}/{name}")).json() for name in names]
        done = all(conditions(crd).get("Established") == "True" for crd in served)
        return served if done else None

    found: list[dict[str, Any]] = eventually(all_established, timeout=30,
                                             what="test-data CRDs Established")
    return found


def served_versions(crd: dict[str, Any]) -> list[str]:
    return [v["name"] for v in crd["spec"]["versions"] if v.get("served")]


def test_every_crd_is_accepted_and_established(installed: list[dict[str, Any]]) -> None:
    assert len(installed) == len(all_crds()) == 16
    for crd in installed:
        assert conditions(crd) == {"NamesAccepted": "True", "Established": "True"}, crd[
            "metadata"]["name"]
        assert crd["status"]["acceptedNames"]["kind"] == crd["spec"]["names"]["kind"]


def test_every_kind_is_served_in_every_served_version(
        http: httpx.Client, installed: list[dict[str, Any]]) -> None:
    for crd in installed:
        spec = crd["spec"]
        for version in served_versions(crd):
            discovery = http.get(url(f"apis/{spec['group']}/{version}")).json()
            resources = {r["name"]: r for r in discovery["resources"]}
            plural = spec["names"]["plural"]
            assert resources[plural]["kind"] == spec["names"]["kind"]
            listed = http.get(url(f"apis/{spec['group']}/{version}/{plural}"))
            assert listed.status_code == 200, listed.text
            assert listed.json()["kind"] == spec["names"]["listKind"]
            schema = http.get(url(f"openapi/v3/apis/{spec['group']}/{version}"))
            assert schema.status_code == 200, schema.text


def served_kinds(http: httpx.Client) -> dict[tuple[str, str], tuple[str, bool]]:
    """(apiVersion, kind) -> (collection path under the workspace, namespaced)."""
    found: dict[tuple[str, str], tuple[str, bool]] = {
        ("v1", "Namespace"): ("api/v1/namespaces", False)}
    for group in http.get(url("apis")).json()["groups"]:
        for version in group["versions"]:
            gv = version["groupVersion"]
            for resource in http.get(url(f"apis/{gv}")).json()["resources"]:
                if "/" not in resource["name"]:
                    found[(gv, resource["kind"])] = (f"apis/{gv}/{resource['name']}",
                                                     resource["namespaced"])
    return found


def apply_object(http: httpx.Client, obj: dict[str, Any], collection: str,
                 namespaced: bool) -> httpx.Response:
    name = obj["metadata"]["name"]
    if namespaced:
        namespace = obj["metadata"].setdefault("namespace", "default")
        group_version, resource = collection.rsplit("/", 1)
        path = f"{group_version}/namespaces/{namespace}/{resource}/{name}"
    else:
        path = f"{collection}/{name}"
    return http.patch(url(path), params={"fieldManager": "examples", "force": "true"},
                      headers={"Content-Type": "application/apply-patch+yaml"},
                      content=yaml.safe_dump(obj))


def test_every_gateway_api_example_is_accepted(
        http: httpx.Client, installed: list[dict[str, Any]]) -> None:
    kinds = served_kinds(http)
    documents = [(path, doc) for path in EXAMPLES for doc in load_documents(path)
                 if doc.get("kind") not in SKIPPED_KINDS]
    # Namespaces first, as `kubectl apply -f` of a directory would need them to exist.
    documents.sort(key=lambda item: item[1].get("kind") != "Namespace")
    applied = 0
    for path, doc in documents:
        where = kinds.get((doc["apiVersion"], doc["kind"]))
        assert where is not None, f"{path.name}: {doc['apiVersion']} {doc['kind']} not served"
        response = apply_object(http, doc, *where)
        assert response.status_code in (200, 201), f"{path}: {response.text}"
        applied += 1
    assert applied > 100


def gateway(listeners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "cel"},
            "spec": {"gatewayClassName": "example", "listeners": listeners}}


def test_cel_rules_are_enforced_with_their_messages(
        http: httpx.Client, installed: list[dict[str, Any]]) -> None:
    gateways = url("apis/gateway.networking.k8s.io/v1/namespaces/default/gateways")
    listeners = [
        {"name": "web", "port": 80, "protocol": "HTTP"},
        {"name": "web", "port": 81, "protocol": "HTTP"},
        {"name": "tcp", "port": 82, "protocol": "TCP", "hostname": "example.com"},
        {"name": "tls", "port": 443, "protocol": "HTTPS",
         "tls": {"mode": "Passthrough"}},
    ]
    response = http.post(gateways, json=gateway(listeners))
    assert response.status_code == 422, response.text
    messages = {c["message"] for c in response.json()["details"]["causes"]}
    prefix = 'Invalid value: "array": '
    assert {prefix + "Listener name must be unique within the Gateway",
            prefix + "hostname must not be specified for protocols ['TCP', 'UDP']",
            prefix + "tls mode must be Terminate for protocol HTTPS"} <= messages
    fixed = [{"name": "web", "port": 80, "protocol": "HTTP"}]
    assert http.post(gateways, json=gateway(fixed)).status_code == 201


def two_version_crd(path: Path) -> dict[str, Any]:
    """The CRD with a second served version, as cert-manager once shipped them.

    This test data's CRDs have one version each, and even the largest serializes to less than
    256 KiB of compact JSON, so client-side apply of it alone succeeds upstream too; two
    copies of its schema do not fit.
    """
    crd = load_documents(path)[0]
    legacy = {**crd["spec"]["versions"][0], "name": "v1alpha2", "storage": False}
    crd["spec"]["versions"].append(legacy)
    return crd


def test_client_side_apply_of_a_large_crd_hits_the_annotation_limit(
        kplane: KplaneProcess, http: httpx.Client, tmp_path: Path) -> None:
    ready_workspace(http, "root", "crd-csa")
    server = f"{kplane.url}/clusters/root:crd-csa"
    largest = max(TESTDATA.glob("cert-manager/*.yaml"), key=lambda path: path.stat().st_size)
    manifest = tmp_path / "large-crd.json"
    crd = two_version_crd(largest)
    manifest.write_text(json.dumps(crd))
    assert manifest.stat().st_size > 262144
    result = kplane.kubectl("apply", "-f", str(manifest), check=False, server=server)
    assert result.returncode != 0
    assert "metadata.annotations: Too long: must have at most 262144 bytes" in result.stderr
    name = crd["metadata"]["name"]
    assert http.get(url(f"{CRDS}/{name}", "root:crd-csa")).status_code == 404
    kplane.kubectl("apply", "--server-side", "-f", str(manifest), server=server)
    served = eventually(lambda: conditions(
        http.get(url(f"{CRDS}/{name}", "root:crd-csa")).json()).get("Established") == "True",
        what="large CRD Established")
    assert served
