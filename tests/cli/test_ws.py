"""``kplane ws`` / ``kubectl ws``: path arithmetic, the kubeconfig context dance, the tree,
and end to end against a real server with the real kubectl and its plugin mechanism."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kplane.auth.kubeconfig import admin_kubeconfig
from kplane.auth.pki import Pki, ensure_pki
from kplane.cli import kubectl_ws, ws
from kplane.cli.client import ApiClient, ApiError, CliError, Response
from kplane.cli.ws import (
    CURRENT_ENTRY,
    PREVIOUS_ENTRY,
    TreeNode,
    collect_tree,
    ensure_workspace_exists,
    enter_workspace,
    parse_type_reference,
    render_tree,
    resolve_target,
    swap_with_previous,
    wait_until_ready,
)
from tests.e2e.server import KUBECTL, KplaneProcess, free_port

WORKSPACES = "/apis/tenancy.kcp.io/v1alpha1/workspaces"


def admin_config(server: str = "https://127.0.0.1:6443/clusters/root") -> dict[str, Any]:
    """The shape of the admin kubeconfig ``kplane serve`` writes (fake key material)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "root", "cluster": {"server": server,
                                                  "certificate-authority-data": "Q0E="}}],
        "users": [{"name": "kplane-admin", "user": {"client-certificate-data": "Q0VSVA==",
                                                     "client-key-data": "S0VZ"}}],
        "contexts": [{"name": "root", "context": {"cluster": "root", "user": "kplane-admin",
                                                  "namespace": "team"}}],
        "current-context": "root",
    }


def entries(config: dict[str, Any], section: str) -> dict[str, Any]:
    return {item["name"]: item[section[:-1]] for item in config[section]}


def server_of(config: dict[str, Any]) -> str:
    context = entries(config, "contexts")[config["current-context"]]
    server: str = entries(config, "clusters")[context["cluster"]]["server"]
    return server


# --- path arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("root", "acme", "root:acme"),
        ("root:acme", "team", "root:acme:team"),
        ("root:acme", "team:sub", "root:acme:team:sub"),
        ("root:acme", "team/sub", "root:acme:team:sub"),
        ("root:acme:team", "..", "root:acme"),
        ("root:acme:team", "..:..", "root"),
        ("root:acme:team", "../other", "root:acme:other"),
        ("root:acme", "./team", "root:acme:team"),
        ("root:acme", ":root:other", "root:other"),
        ("root:acme", ":root", "root"),
        ("root:acme", "root:other", "root:other"),
        ("root:acme", "root", "root"),
        ("root:acme:team", ":", "root"),
        ("root:acme", ":root:x:..:y", "root:y"),
        (None, ":root:acme", "root:acme"),
        (None, "root:acme", "root:acme"),
    ],
)
def test_resolve_target(current: str | None, target: str, expected: str) -> None:
    assert resolve_target(current, target) == expected


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        ("root", "..", "cannot go up from the root workspace"),
        ("root:a", "..:..:..", "cannot go up from the root workspace"),
        ("root", "~", "no home workspaces"),
        ("root", "~:x", "no home workspaces"),
        ("root", "Acme", 'invalid workspace path "Acme"'),
        ("root", "a_b", 'invalid workspace path "a_b"'),
        ("root", "a::b", 'invalid workspace path "a::b"'),
        (None, "acme", "points at no workspace"),
    ],
)
def test_resolve_target_errors(current: str | None, target: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        resolve_target(current, target)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("universal", {"name": "universal"}),
        ("Team", {"name": "team"}),
        ("root:team", {"name": "team", "path": "root"}),
        ("root:acme:special", {"name": "special", "path": "root:acme"}),
    ],
)
def test_parse_type_reference(text: str, expected: dict[str, str]) -> None:
    assert parse_type_reference(text) == expected


# --- the kubeconfig context dance -------------------------------------------------------


def test_entering_writes_dedicated_entries_and_keeps_the_users_own() -> None:
    original = admin_config()
    before = copy.deepcopy(original)
    entered = enter_workspace(original, server="https://127.0.0.1:6443/clusters/root:acme")
    assert original == before
    clusters, contexts = entries(entered, "clusters"), entries(entered, "contexts")
    assert clusters["root"] == before["clusters"][0]["cluster"]
    assert clusters[CURRENT_ENTRY] == {"server": "https://127.0.0.1:6443/clusters/root:acme",
                                       "certificate-authority-data": "Q0E="}
    assert contexts["root"] == before["contexts"][0]["context"]
    assert contexts[CURRENT_ENTRY] == {"cluster": CURRENT_ENTRY, "user": "kplane-admin",
                                       "namespace": "team"}
    assert contexts[PREVIOUS_ENTRY] == {"cluster": "root", "user": "kplane-admin",
                                        "namespace": "team"}
    assert PREVIOUS_ENTRY not in clusters
    assert entered["current-context"] == CURRENT_ENTRY


def test_entering_again_moves_the_current_cluster_to_previous() -> None:
    first = enter_workspace(admin_config(), server="https://h/clusters/root:a")
    second = enter_workspace(first, server="https://h/clusters/root:a:b")
    clusters, contexts = entries(second, "clusters"), entries(second, "contexts")
    assert clusters[CURRENT_ENTRY]["server"] == "https://h/clusters/root:a:b"
    assert clusters[PREVIOUS_ENTRY]["server"] == "https://h/clusters/root:a"
    assert contexts[PREVIOUS_ENTRY]["cluster"] == PREVIOUS_ENTRY
    assert clusters["root"]["server"] == "https://127.0.0.1:6443/clusters/root"
    assert [item["name"] for item in second["clusters"]] == ["root", CURRENT_ENTRY,
                                                             PREVIOUS_ENTRY]


def test_swapping_returns_to_the_previous_workspace_and_back() -> None:
    first = enter_workspace(admin_config(), server="https://h/clusters/root:a")
    second = enter_workspace(first, server="https://h/clusters/root:a:b")
    back = swap_with_previous(second)
    assert server_of(back) == "https://h/clusters/root:a"
    assert entries(back, "contexts")[PREVIOUS_ENTRY]["cluster"] == PREVIOUS_ENTRY
    assert entries(back, "clusters")[PREVIOUS_ENTRY]["server"] == "https://h/clusters/root:a:b"
    assert swap_with_previous(back) == second


def test_swapping_after_one_step_returns_to_the_users_own_context() -> None:
    entered = enter_workspace(admin_config(), server="https://h/clusters/root:a")
    back = swap_with_previous(entered)
    assert back["current-context"] == CURRENT_ENTRY
    assert entries(back, "contexts")[CURRENT_ENTRY]["cluster"] == "root"
    assert server_of(back) == "https://127.0.0.1:6443/clusters/root"
    assert server_of(swap_with_previous(back)) == "https://h/clusters/root:a"


def test_swapping_without_a_previous_workspace_fails() -> None:
    with pytest.raises(CliError, match="no previous workspace"):
        swap_with_previous(admin_config())


# --- fake server for the HTTP-driven helpers ---------------------------------------------


class FakeApi(ApiClient):
    """Answers GETs from a table of path -> body or error code; records every request."""

    def __init__(self, routes: dict[str, dict[str, Any] | int]) -> None:
        super().__init__(base_url="https://fake", tls=None)
        self.routes = routes
        self.requests: list[str] = []

    def request(self, method: str, path: str,
                body: Any = None) -> Response:
        self.requests.append(f"{method} {path}")
        answer = self.routes.get(path, 404)
        if isinstance(answer, int):
            raise ApiError(code=answer, reason="", message=f"HTTP {answer}")
        return Response(status=200, body=answer)


def test_unknown_workspace_is_reported_from_the_parent() -> None:
    api = FakeApi({f"/clusters/root{WORKSPACES}": {"items": []}, "/clusters/root:nope/api": {}})
    with pytest.raises(CliError, match=r'^workspace "root:nope" not found$'):
        ensure_workspace_exists(api, "root:nope")


def test_existing_workspace_passes_both_checks() -> None:
    api = FakeApi({f"/clusters/root{WORKSPACES}/a": {}, "/clusters/root:a/api": {}})
    ensure_workspace_exists(api, "root:a")
    assert api.requests == [f"GET /clusters/root{WORKSPACES}/a", "GET /clusters/root:a/api"]


def test_forbidden_parent_falls_back_to_discovery_in_the_workspace() -> None:
    api = FakeApi({f"/clusters/root{WORKSPACES}/a": 403, "/clusters/root:a/api": {}})
    ensure_workspace_exists(api, "root:a")


def test_forbidden_workspace_is_access_denied() -> None:
    api = FakeApi({f"/clusters/root{WORKSPACES}/a": 403, "/clusters/root:a/api": 403})
    with pytest.raises(CliError, match=r'^access to workspace "root:a" denied$'):
        ensure_workspace_exists(api, "root:a")


def test_system_cluster_names_are_checked_by_discovery_alone() -> None:
    api = FakeApi({"/clusters/system:admin/api": {}})
    ensure_workspace_exists(api, "system:admin")
    assert api.requests == ["GET /clusters/system:admin/api"]


def test_root_is_checked_by_discovery_alone() -> None:
    api = FakeApi({"/clusters/root/api": {}})
    ensure_workspace_exists(api, "root")
    assert api.requests == ["GET /clusters/root/api"]


def test_waiting_returns_the_ready_workspace() -> None:
    phases = iter(["Scheduling", "Initializing", "Ready"])

    class Phases(FakeApi):
        def request(self, method: str, path: str, body: Any = None) -> Response:
            return Response(status=200, body={"status": {"phase": next(phases)}})

    sleeps: list[float] = []
    ready = wait_until_ready(Phases({}), parent="root", name="a", timeout=60,
                             clock=lambda: 0.0, sleep=sleeps.append)
    assert ready == {"status": {"phase": "Ready"}}
    assert len(sleeps) == 2


def test_waiting_gives_up_at_the_deadline() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    api = FakeApi({f"/clusters/root{WORKSPACES}/a": {"status": {"phase": "Initializing"}}})
    with pytest.raises(CliError) as caught:
        wait_until_ready(api, parent="root", name="a", timeout=1.5,
                         clock=lambda: now[0], sleep=sleep)
    assert str(caught.value) == ('timed out after 1.5s waiting for workspace "a" to be ready '
                                 "(phase: Initializing)")
    assert 1.5 <= now[0] < 2.0


def _workspace(name: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def test_tree_recurses_and_skips_workspaces_being_deleted() -> None:
    api = FakeApi({
        f"/clusters/root{WORKSPACES}": {"items": [_workspace("acme"),
                                                  _workspace("gone", deleting=True),
                                                  _workspace("zeta")]},
        f"/clusters/root:acme{WORKSPACES}": {"items": [_workspace("team")]},
        f"/clusters/root:acme:team{WORKSPACES}": {"items": []},
        f"/clusters/root:zeta{WORKSPACES}": 404,
    })
    tree = collect_tree(api, path="root", label="root", full=False)
    assert tree == TreeNode("root", [TreeNode("acme", [TreeNode("team")]), TreeNode("zeta")])
    full = collect_tree(api, path="root", label="root", full=True)
    assert full.children[0].children[0].label == "root:acme:team"


def test_tree_rendering_matches_kcp() -> None:
    tree = TreeNode("root", [
        TreeNode("acme", [TreeNode("team-1", [TreeNode("deep")]), TreeNode("team-2")]),
        TreeNode("zeta"),
    ])
    assert render_tree(tree) == (
        ".\n"
        "└── root\n"
        "    ├── acme\n"
        "    │   ├── team-1\n"
        "    │   │   └── deep\n"
        "    │   └── team-2\n"
        "    └── zeta\n"
    )


def test_lone_workspace_renders_as_one_branch() -> None:
    assert render_tree(TreeNode("team")) == ".\n└── team\n"


# --- commands without a server --------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"), hosts=["127.0.0.1"])


@pytest.fixture
def offline_port() -> int:
    """A port nothing listens on."""
    return free_port()


@pytest.fixture
def kubeconfig(tmp_path: Path, pki: Pki, offline_port: int) -> Path:
    """An admin kubeconfig with real key material, for a server that is not running."""
    path = tmp_path / "config"
    config = admin_kubeconfig(pki, server_url=f"https://127.0.0.1:{offline_port}")
    path.write_text(yaml.safe_dump(config))
    return path


def run_ws(*argv: str) -> int:
    return kubectl_ws.main(list(argv))


def test_no_command_prints_the_current_workspace(kubeconfig: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ws("--kubeconfig", str(kubeconfig)) == 0
    assert capsys.readouterr().out == 'Current workspace is "root".\n'


@pytest.mark.parametrize("words", [["current"], ["."], ["use", "."]])
def test_current_spellings(kubeconfig: Path, capsys: pytest.CaptureFixture[str],
                           words: list[str]) -> None:
    assert run_ws(*words, "--kubeconfig", str(kubeconfig)) == 0
    assert capsys.readouterr().out == 'Current workspace is "root".\n'


def test_short_output_for_shell_prompts(kubeconfig: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ws("current", "--short", "--kubeconfig", str(kubeconfig)) == 0
    assert capsys.readouterr().out == "root\n"


def test_kubeconfig_from_the_environment(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert run_ws() == 0
    assert capsys.readouterr().out == 'Current workspace is "root".\n'


def test_url_outside_any_workspace_is_shown_as_is(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(admin_config("https://k8s.example:443")))
    assert run_ws("--kubeconfig", str(path)) == 0
    assert capsys.readouterr().out == 'Current workspace is the URL "https://k8s.example:443".\n'


def test_dash_swaps_offline_and_rewrites_the_file(kubeconfig: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    entered = enter_workspace(yaml.safe_load(kubeconfig.read_text()),
                              server="https://127.0.0.1:1/clusters/root:a")
    kubeconfig.write_text(yaml.safe_dump(entered))
    assert run_ws("-", "--kubeconfig", str(kubeconfig)) == 0
    assert capsys.readouterr().out == 'Current workspace is "root".\n'
    assert run_ws("use", "-", "--kubeconfig", str(kubeconfig)) == 0
    assert capsys.readouterr().out == 'Current workspace is "root:a".\n'
    swapped_twice = yaml.safe_load(kubeconfig.read_text())
    assert server_of(swapped_twice) == "https://127.0.0.1:1/clusters/root:a"
    assert entries(swapped_twice, "contexts") == entries(entered, "contexts")
    assert entries(swapped_twice, "clusters")["root"] == entries(entered, "clusters")["root"]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["-"], "error: no previous workspace found in the kubeconfig\n"),
        (["~"], "error: kplane has no home workspaces: give a workspace path instead of '~'\n"),
        (["use", ".."], "error: cannot go up from the root workspace\n"),
        (["create", "Not_Valid"],
         'error: invalid workspace name "Not_Valid": a name consists of lower case '
         "alphanumeric characters or '-', and starts and ends with an alphanumeric character\n"),
        (["create", "a", "--type", "universal", "--ignore-existing"],
         "error: --ignore-existing needs no --type or an absolute one (root:...)\n"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(kubeconfig: Path, words: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = kubeconfig.read_text()
    assert run_ws(*words, "--kubeconfig", str(kubeconfig)) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)
    assert kubeconfig.read_text() == before


@pytest.mark.parametrize("words", [["use", "acme"], ["create", "acme"], ["tree"]])
def test_unreachable_server_is_one_line_and_exit_1(kubeconfig: Path, offline_port: int,
                                                   words: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ws(*words, "--kubeconfig", str(kubeconfig)) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"error: cannot reach the server at https://127.0.0.1:{offline_port}: "
                            "Connection refused\n")


def test_missing_kubeconfig_is_one_line_and_exit_1(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ws("--kubeconfig", str(tmp_path / "none")) == 1
    assert capsys.readouterr().err == f"error: kubeconfig '{tmp_path / 'none'}' does not exist\n"


def test_kplane_ws_parser_registers_the_same_commands(kubeconfig: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="kplane")
    ws.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ws", "--kubeconfig", str(kubeconfig), "current"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out == 'Current workspace is "root".\n'


# --- end to end: a real server, the real kubectl, kubectl's plugin mechanism -------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KplaneProcess]:
    base = tmp_path_factory.mktemp("kplane-ws")
    process = KplaneProcess(data_dir=base / "data", port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def user_kubeconfig(server: KplaneProcess, tmp_path: Path) -> Path:
    """A copy of the admin kubeconfig for one test to rewrite."""
    path = tmp_path / "config"
    shutil.copyfile(server.kubeconfig, path)
    return path


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """A PATH on which kubectl finds ``kubectl-ws``: the installed script or a shim."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    installed = shutil.which("kubectl-ws", path=str(Path(sys.executable).parent))
    if installed is None:
        shim = bin_dir / "kubectl-ws"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kplane.cli.kubectl_ws "$@"\n')
        shim.chmod(0o755)
    else:
        os.symlink(installed, bin_dir / "kubectl-ws")
    return os.pathsep.join([str(bin_dir), str(Path(KUBECTL).parent),
                            os.environ.get("PATH", "")])


def kubectl(*args: str, kubeconfig: Path, path: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "KUBECACHEDIR": str(kubeconfig.parent / "kubecache")}
    if path is not None:
        env["PATH"] = path
    result = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env,
                            timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


def ws_out(capsys: pytest.CaptureFixture[str], *words: str, kubeconfig: Path) -> str:
    code = run_ws(*words, "--kubeconfig", str(kubeconfig))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.e2e
def test_create_enter_and_navigate_workspaces(user_kubeconfig: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    created = ws_out(capsys, "create", "nav", kubeconfig=user_kubeconfig)
    assert created.splitlines()[-1] == 'Workspace "nav" (type root:universal) is ready to use.'
    assert created.splitlines()[0] in (
        'Workspace "nav" (type root:universal) created. Waiting for it to be ready...',
        'Workspace "nav" (type root:universal) created.')
    assert ws_out(capsys, kubeconfig=user_kubeconfig) == 'Current workspace is "root".\n'

    assert ws_out(capsys, "use", "nav", kubeconfig=user_kubeconfig) == \
        'Current workspace is "root:nav".\n'
    entered = ws_out(capsys, "create", "team", "--type", "root:universal", "--enter",
                     kubeconfig=user_kubeconfig)
    assert entered.splitlines()[-2:] == [
        'Workspace "team" (type root:universal) is ready to use.',
        'Current workspace is "root:nav:team".']

    namespaces = kubectl("get", "namespaces", "-o", "name", kubeconfig=user_kubeconfig)
    assert "namespace/default" in namespaces.stdout.split()

    assert ws_out(capsys, "..", kubeconfig=user_kubeconfig) == 'Current workspace is "root:nav".\n'
    assert ws_out(capsys, "-", kubeconfig=user_kubeconfig) == \
        'Current workspace is "root:nav:team".\n'
    assert ws_out(capsys, ":", kubeconfig=user_kubeconfig) == 'Current workspace is "root".\n'
    assert ws_out(capsys, "root:nav:team", kubeconfig=user_kubeconfig) == \
        'Current workspace is "root:nav:team".\n'
    assert ws_out(capsys, ":root:nav", kubeconfig=user_kubeconfig) == \
        'Current workspace is "root:nav".\n'
    assert ws_out(capsys, "tree", kubeconfig=user_kubeconfig) == ".\n└── nav\n    └── team\n"

    config = yaml.safe_load(user_kubeconfig.read_text())
    assert config["current-context"] == CURRENT_ENTRY
    clusters = entries(config, "clusters")
    assert clusters["root"]["server"].endswith("/clusters/root")
    assert clusters[CURRENT_ENTRY]["server"].endswith("/clusters/root:nav")


@pytest.mark.e2e
def test_ignore_existing_and_tree_from_root(user_kubeconfig: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ws_out(capsys, "create", "tree-a", kubeconfig=user_kubeconfig)
    ws_out(capsys, "create", "tree-b", kubeconfig=user_kubeconfig)
    again = ws_out(capsys, "create", "tree-a", "--ignore-existing", kubeconfig=user_kubeconfig)
    assert again == ('Workspace "tree-a" (type root:universal) already exists.\n'
                     'Workspace "tree-a" (type root:universal) is ready to use.\n')

    assert run_ws("create", "tree-a", "--kubeconfig", str(user_kubeconfig)) == 1
    assert capsys.readouterr().err.startswith("error: ")

    lines = ws_out(capsys, "tree", kubeconfig=user_kubeconfig).splitlines()
    assert lines[:2] == [".", "└── root"]
    assert "    ├── tree-a" in lines
    assert any(line.endswith("── tree-b") for line in lines)


@pytest.mark.e2e
def test_unknown_workspace_is_refused_and_the_kubeconfig_untouched(
        user_kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = user_kubeconfig.read_text()
    for target, path in (("nope", "root:nope"), (":root:nope:deeper", "root:nope:deeper")):
        assert run_ws("use", target, "--kubeconfig", str(user_kubeconfig)) == 1
        assert capsys.readouterr().err == f'error: workspace "{path}" not found\n'
    assert user_kubeconfig.read_text() == before


@pytest.mark.e2e
def test_kubectl_ws_plugin(user_kubeconfig: Path, plugin_path: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    ws_out(capsys, "create", "plugged", kubeconfig=user_kubeconfig)
    used = kubectl("ws", "use", "plugged", kubeconfig=user_kubeconfig, path=plugin_path)
    assert used.stdout == 'Current workspace is "root:plugged".\n'
    assert kubectl("ws", ".", kubeconfig=user_kubeconfig, path=plugin_path).stdout == \
        'Current workspace is "root:plugged".\n'
    namespaces = kubectl("get", "ns", "-o", "name", kubeconfig=user_kubeconfig)
    assert "namespace/default" in namespaces.stdout.split()
    assert kubectl("ws", "..", kubeconfig=user_kubeconfig, path=plugin_path).stdout == \
        'Current workspace is "root".\n'

    missing = kubectl("ws", "use", "absent", kubeconfig=user_kubeconfig, path=plugin_path,
                      check=False)
    assert missing.returncode == 1
    assert missing.stderr == 'error: workspace "root:absent" not found\n'
