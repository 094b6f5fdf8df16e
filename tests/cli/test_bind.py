"""``kplane bind``: parsing, the APIBinding it writes, waiting for Bound, and end to end
against a real kplane with a provider workspace (APIResourceSchema + APIExport) and a
consumer, checked with the real kubectl."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kplane.cli import bind
from kplane.cli.bind import (
    Claim,
    ExportReference,
    binding_body,
    bound_resources,
    create_or_adopt,
    describe_conditions,
    export_claims,
    parse_claim,
    parse_export_reference,
    wait_until_bound,
)
from kplane.cli.client import ApiClient, ApiError, CliError, Response
from kplane.cli.main import build_parser
from tests.e2e.server import KplaneProcess, free_port

APIS = "/apis/apis.kcp.io/v1alpha2"
BINDINGS = f"{APIS}/apibindings"

# --- parsing and building -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "path", "name"), [
    ("root:providers:postgres", "root:providers", "postgres"),
    (":root:providers:postgres", "root:providers", "postgres"),
    ("root:db.example.io", "root", "db.example.io"),
    ("abcdef0123456789:pg", "abcdef0123456789", "pg"),
    ("postgres", "", "postgres"),
])
def test_export_references(text: str, path: str, name: str) -> None:
    reference = parse_export_reference(text)
    assert reference == ExportReference(path=path, name=name)
    assert str(reference) == (f"{path}:{name}" if path else name)


@pytest.mark.parametrize("text", ["", "root:", "root:Bad_Name", "root::pg", "Root:pg", ":"])
def test_bad_export_references(text: str) -> None:
    with pytest.raises(CliError, match="invalid"):
        parse_export_reference(text)


@pytest.mark.parametrize(("text", "claim"), [
    ("secrets.core", Claim(group="", resource="secrets")),
    ("configmaps.core", Claim(group="", resource="configmaps")),
    ("widgets.example.io", Claim(group="example.io", resource="widgets")),
])
def test_claims(text: str, claim: Claim) -> None:
    assert parse_claim(text) == claim
    assert str(claim) == text


@pytest.mark.parametrize("text", ["secrets", "secrets.", ".core", ""])
def test_bad_claims(text: str) -> None:
    with pytest.raises(CliError, match=r"expected <resource>\.<group>"):
        parse_claim(text)


def test_binding_body_accepts_each_claim() -> None:
    secrets, widgets = Claim("", "secrets"), Claim("example.io", "widgets")
    body = binding_body(name="pg", export=ExportReference("root:providers", "postgres"),
                        claims=[secrets, widgets], identity_hashes={widgets: "abc"})
    assert body == {
        "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
        "metadata": {"name": "pg"},
        "spec": {
            "reference": {"export": {"path": "root:providers", "name": "postgres"}},
            "permissionClaims": [
                {"group": "", "resource": "secrets", "state": "Accepted", "verbs": ["*"],
                 "selector": {"matchAll": True}},
                {"group": "example.io", "resource": "widgets", "identityHash": "abc",
                 "state": "Accepted", "verbs": ["*"], "selector": {"matchAll": True}},
            ],
        },
    }


def test_binding_body_without_claims_or_path() -> None:
    body = binding_body(name="x", export=ExportReference("", "x"), claims=[])
    assert body["spec"] == {"reference": {"export": {"name": "x"}}}


def test_status_descriptions() -> None:
    binding = {"status": {
        "phase": "Binding",
        "conditions": [
            {"type": "APIExportValid", "status": "True"},
            {"type": "BindingUpToDate", "status": "False", "reason": "NamingConflicts",
             "message": "widgets.example.io is held by CRD widgets.example.io"},
            {"type": "Ready", "status": "Unknown"},
        ],
        "boundResources": [{"group": "example.io", "resource": "widgets"},
                           {"group": "", "resource": "things"}],
    }}
    assert describe_conditions(binding) == [
        "BindingUpToDate=False (NamingConflicts): widgets.example.io is held by CRD "
        "widgets.example.io",
        "Ready=Unknown",
    ]
    assert describe_conditions({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Bound"}]}}) == ["Ready=True (Bound)"]
    assert describe_conditions({}) == []
    assert bound_resources(binding) == ["widgets.example.io", "things.core"]
    assert export_claims({"spec": {"permissionClaims": [
        {"group": "", "resource": "secrets"},
        {"group": "a.io", "resource": "bs", "identityHash": "h"}]}}) == {
        Claim("", "secrets"): "", Claim("a.io", "bs"): "h"}


# --- waiting, with a scripted server ----------------------------------------------------------


class Scripted(ApiClient):
    """Answers GETs of one binding with the next of a list of bodies (the last repeats);
    POSTs with a status code or the body sent."""

    def __init__(self, bodies: list[dict[str, Any]], *, post: int | None = None) -> None:
        super().__init__(base_url="https://fake", tls=None)
        self.bodies = bodies
        self.post_answer = post
        self.requests: list[str] = []

    def request(self, method: str, path: str, body: Any = None) -> Response:
        self.requests.append(f"{method} {path}")
        if method == "POST":
            if self.post_answer is not None:
                raise ApiError(code=self.post_answer, reason="", message="exists")
            return Response(status=201, body=dict(body))
        if method == "PUT":
            self.put = dict(body)
            return Response(status=200, body=dict(body))
        answer = self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]
        return Response(status=200, body=answer)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def phase(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "pg"}, "status": {"phase": name, **status}}


def test_waiting_prints_each_phase_until_bound(capsys: pytest.CaptureFixture[str]) -> None:
    api = Scripted([phase(""), phase(""), phase("Binding"), phase("Bound")])
    clock = FakeClock()
    bound = wait_until_bound(api, workspace="root:c", name="pg", timeout=60, out=sys.stdout,
                             clock=clock, sleep=clock.sleep)
    assert bound["status"]["phase"] == "Bound"
    assert capsys.readouterr().out == "  phase: (none yet)\n  phase: Binding\n"
    assert api.requests == [f"GET /clusters/root:c{BINDINGS}/pg"] * 4


def test_waiting_gives_up_with_the_conditions() -> None:
    stuck = phase("Binding", conditions=[
        {"type": "APIExportValid", "status": "False", "reason": "APIExportNotFound",
         "message": "APIExport root:p:pg not found"}])
    clock = FakeClock()
    with pytest.raises(CliError) as error:
        wait_until_bound(Scripted([stuck]), workspace="root:c", name="pg", timeout=2,
                         out=sys.stdout, clock=clock, sleep=clock.sleep)
    assert str(error.value) == (
        'APIBinding "pg" is not bound after 2s (phase "Binding"):\n'
        "  APIExportValid=False (APIExportNotFound): APIExport root:p:pg not found")
    assert clock.now == pytest.approx(2.0)


def test_waiting_until_the_accepted_claims_are_applied() -> None:
    secrets = {"group": "", "resource": "secrets"}
    api = Scripted([phase("Bound"), phase("Bound", appliedPermissionClaims=[secrets])])
    clock = FakeClock()
    done = wait_until_bound(api, workspace="root:c", name="pg", timeout=60, out=sys.stdout,
                            expected_claims=[Claim("", "secrets")], clock=clock,
                            sleep=clock.sleep)
    assert done["status"]["appliedPermissionClaims"] == [secrets]
    assert len(api.requests) == 2
    with pytest.raises(CliError, match=r"permission claims not applied yet: secrets\.core"):
        wait_until_bound(Scripted([phase("Bound")]), workspace="root:c", name="pg",
                         timeout=1, out=sys.stdout, expected_claims=[Claim("", "secrets")],
                         clock=clock, sleep=clock.sleep)


def test_an_existing_binding_of_the_same_export_is_adopted() -> None:
    export = ExportReference("root:p", "pg")
    existing = {"metadata": {"name": "pg", "resourceVersion": "7"},
                "spec": {"reference": {"export": {"path": "root:p", "name": "pg"}},
                         "permissionClaims": [
                             {"group": "", "resource": "secrets", "state": "Accepted"},
                             {"group": "", "resource": "configmaps", "state": "Rejected"}]}}
    unchanged = Scripted([existing], post=409)
    found, existed = create_or_adopt(
        unchanged, workspace="root:c", export=export,
        body=binding_body(name="pg", export=export, claims=[Claim("", "secrets")]))
    assert existed and found is existing
    assert [r.split()[0] for r in unchanged.requests] == ["POST", "GET"]

    # Asking for more claims accepts them on the existing binding, keeping the others.
    more = Scripted([existing], post=409)
    found, existed = create_or_adopt(
        more, workspace="root:c", export=export,
        body=binding_body(name="pg", export=export, claims=[Claim("", "configmaps")]))
    assert existed
    assert more.requests[-1] == f"PUT /clusters/root:c{BINDINGS}/pg"
    assert found["metadata"]["resourceVersion"] == "7"
    assert [(c["resource"], c["state"]) for c in found["spec"]["permissionClaims"]] == [
        ("secrets", "Accepted"), ("configmaps", "Accepted")]
    other = ExportReference("root:q", "pg")
    with pytest.raises(CliError, match='binds "root:p:pg", not "root:q:pg": choose another '
                                       "name with --name"):
        create_or_adopt(Scripted([existing], post=409), workspace="root:c",
                        body=binding_body(name="pg", export=other, claims=[]), export=other)


def test_the_command_is_wired_into_kplane() -> None:
    args = build_parser().parse_args(
        ["bind", "root:p:pg", "--accept-permission-claim", "secrets.core",
         "--accept-permission-claim", "configmaps.core", "--name", "mine", "--timeout", "5",
         "--kubeconfig", "k"])
    assert args.handler is bind.run
    assert (args.export, args.claims, args.name, args.timeout, args.kubeconfig) == (
        "root:p:pg", ["secrets.core", "configmaps.core"], "mine", 5.0, "k")


@pytest.mark.parametrize(("argv", "message"), [
    (["root:p:pg", "--accept-permission-claim", "secrets"], "invalid permission claim"),
    (["root:p:Pg"], "invalid APIExport reference"),
    (["root:p:pg", "--name", "Not_Valid"], "invalid APIBinding name"),
    (["root:p:pg", "--timeout", "-1"], "--timeout must not be negative"),
    (["root:p:pg", "--kubeconfig", "/nonexistent/kubeconfig"], "does not exist"),
])
def test_bad_arguments_exit_1_with_a_message(argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bind", *argv])
    assert bind.run(args) == 1
    assert message in capsys.readouterr().err


# --- end to end --------------------------------------------------------------------------------

SCHEMA = {
    "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
    "metadata": {"name": "v1.gadgets.bind.example.io"},
    "spec": {
        "group": "bind.example.io",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                  "listKind": "GadgetList"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "subresources": {"status": {}},
                      "schema": {"type": "object", "properties": {
                          "spec": {"type": "object", "properties": {
                              "size": {"type": "integer"}}}}}}],
    },
}
EXPORT = {
    "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport", "metadata": {"name": "gadgets"},
    "spec": {"resources": [{"group": "bind.example.io", "name": "gadgets",
                            "schema": "v1.gadgets.bind.example.io", "storage": {"crd": {}}}],
             "permissionClaims": [{"group": "", "resource": "secrets", "verbs": ["*"]}]},
}
PROVIDER, CONSUMER, OTHER = "root:bind-provider", "root:bind-consumer", "root:bind-other"
LATE = "root:bind-late"


def eventually(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s")


@pytest.fixture(scope="module")
def kplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    server = KplaneProcess(data_dir=tmp_path_factory.mktemp("bind") / "data", port=free_port())
    server.start()
    try:
        with server.client() as http:
            for path in (PROVIDER, CONSUMER, OTHER, LATE):
                name = path.split(":")[-1]
                created = http.post("/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces",
                                    json={"metadata": {"name": name}})
                assert created.status_code == 201, created.text
                eventually(lambda n=name: http.get(  # type: ignore[misc]
                    f"/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/{n}"
                ).json().get("status", {}).get("phase") == "Ready", f"{name} Ready")
            for collection, body in (("/apis/apis.kcp.io/v1alpha1/apiresourceschemas", SCHEMA),
                                     (f"{APIS}/apiexports", EXPORT)):
                made = http.post(f"/clusters/{PROVIDER}{collection}", json=body)
                assert made.status_code == 201, made.text
        yield server
    finally:
        server.stop()


def kubeconfig_for(kplane: KplaneProcess, workspace: str, directory: Path) -> Path:
    config = yaml.safe_load(kplane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"{kplane.url}/clusters/{workspace}"
    path = directory / f"{workspace.replace(':', '-')}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def kplane_cli(*args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kplane.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def get_binding(http: httpx.Client, workspace: str, name: str) -> dict[str, Any]:
    response = http.get(f"/clusters/{workspace}{BINDINGS}/{name}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_bind_creates_a_binding_waits_for_bound_and_the_kind_is_served(
        kplane: KplaneProcess, tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(kplane, CONSUMER, tmp_path)
    # $KUBECONFIG is honoured, as kubectl and `kplane ws` do.
    result = kplane_cli("bind", f"{PROVIDER}:gadgets", "--accept-permission-claim",
                        "secrets.core", env={"KUBECONFIG": str(kubeconfig)})
    assert result.returncode == 0, result.stderr
    assert f'APIBinding "gadgets" in {CONSUMER} created.' in result.stdout
    assert result.stdout.splitlines()[-2:] == [
        f'APIBinding "gadgets" in {CONSUMER} is bound to "{PROVIDER}:gadgets": '
        "gadgets.bind.example.io.",
        "Accepted permission claims in effect: secrets.core."]

    with kplane.client() as http:
        binding = get_binding(http, CONSUMER, "gadgets")
    assert binding["spec"]["reference"]["export"] == {"path": PROVIDER, "name": "gadgets"}
    claims = binding["spec"]["permissionClaims"]
    assert [(c["group"], c["resource"], c["state"]) for c in claims] == [
        ("", "secrets", "Accepted")]
    assert binding["status"]["phase"] == "Bound"
    assert [(c["group"], c["resource"]) for c in binding["status"]["appliedPermissionClaims"]
            ] == [("", "secrets")]

    server = f"{kplane.url}/clusters/{CONSUMER}"
    resources = kplane.kubectl("api-resources", "--api-group", "bind.example.io",
                               "-o", "wide", server=server).stdout
    assert "gadgets" in resources and "Gadget" in resources
    kplane.kubectl("apply", "-f", "-", server=server, input=json.dumps({
        "apiVersion": "bind.example.io/v1", "kind": "Gadget",
        "metadata": {"name": "g1", "namespace": "default"}, "spec": {"size": 3}}))
    assert kplane.kubectl("get", "gadgets", "-n", "default", "-o", "name",
                          server=server).stdout.strip() == "gadget.bind.example.io/g1"
    # The provider's own workspace does not serve the kind: only the binding does.
    absent = kplane.kubectl("api-resources", "--api-group", "bind.example.io",
                            server=f"{kplane.url}/clusters/{PROVIDER}").stdout
    assert "gadgets" not in absent

    # Binding again is a no-op that still reports the result.
    again = kplane_cli("bind", f"{PROVIDER}:gadgets", "--kubeconfig", str(kubeconfig),
                       "--accept-permission-claim", "secrets.core")
    assert again.returncode == 0, again.stderr
    assert "is bound to" in again.stdout and "created" not in again.stdout


def test_a_binding_that_cannot_bind_times_out_with_its_conditions(
        kplane: KplaneProcess, tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(kplane, OTHER, tmp_path)
    first = kplane_cli("bind", f"{PROVIDER}:gadgets", "--kubeconfig", str(kubeconfig))
    assert first.returncode == 0, first.stderr
    # A second binding of the same resource collides with the first: it never gets Bound.
    second = kplane_cli("bind", f"{PROVIDER}:gadgets", "--name", "gadgets-again",
                        "--kubeconfig", str(kubeconfig), "--timeout", "2")
    assert second.returncode == 1
    assert 'APIBinding "gadgets-again" in root:bind-other created.' in second.stdout
    assert 'error: APIBinding "gadgets-again" is not bound after 2s' in second.stderr
    assert "NamingConflicts" in second.stderr


def test_an_export_that_does_not_exist_is_refused(kplane: KplaneProcess, tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(kplane, OTHER, tmp_path)
    result = kplane_cli("bind", "root:nowhere:missing", "--kubeconfig", str(kubeconfig),
                        "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    with kplane.client() as http:
        assert http.get(f"/clusters/{OTHER}{BINDINGS}/missing").status_code == 404


def test_a_name_taken_by_a_binding_of_another_export_is_reported(
        kplane: KplaneProcess, tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(kplane, CONSUMER, tmp_path)
    result = kplane_cli("bind", f"{OTHER}:gadgets", "--name", "gadgets",
                        "--kubeconfig", str(kubeconfig), "--timeout", "1")
    assert result.returncode == 1
    assert f'already exists and binds "{PROVIDER}:gadgets"' in result.stderr


def test_binding_again_accepts_more_claims(kplane: KplaneProcess, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The handler in-process, as ``kplane`` calls it (the code path of the subprocess)."""
    kubeconfig = str(kubeconfig_for(kplane, LATE, tmp_path))
    args = argparse.Namespace(export=f"{PROVIDER}:gadgets", claims=[], name=None,
                              kubeconfig=kubeconfig, timeout=30.0)
    assert bind.run(args) == 0
    assert "Accepted permission claims" not in capsys.readouterr().out
    with kplane.client() as http:
        assert not get_binding(http, LATE, "gadgets")["status"].get("appliedPermissionClaims")

    args.claims = ["secrets.core", "configmaps.core"]
    assert bind.run(args) == 0
    captured = capsys.readouterr()
    assert "accepting the permission claims asked for" in captured.out
    assert "Accepted permission claims in effect: secrets.core." in captured.out
    # The export makes no claim on ConfigMaps: bind says so and goes ahead.
    assert captured.err == (
        f'warning: APIExport "{PROVIDER}:gadgets" does not claim configmaps.core\n')
    with kplane.client() as http:
        binding = get_binding(http, LATE, "gadgets")
    assert [(c["resource"], c["state"]) for c in binding["spec"]["permissionClaims"]] == [
        ("secrets", "Accepted"), ("configmaps", "Accepted")]
    assert [c["resource"] for c in binding["status"]["appliedPermissionClaims"]] == ["secrets"]
