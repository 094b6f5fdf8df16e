"""Unit tests of ``kplane class``: names, the template, URLs, tables and the argument parser.

The commands against a real server are covered in ``tests/e2e/test_classes.py``.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kplane.cli import class_template as template
from kplane.cli import classes
from kplane.cli.client import CliError


def test_numbered_trainees_are_zero_padded() -> None:
    assert classes.trainee_names(count=3, names_file=None) == [
        "trainee-01", "trainee-02", "trainee-03"]
    assert classes.trainee_names(count=100, names_file=None)[0] == "trainee-001"


def test_trainees_file_skips_blanks_and_comments(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("alice\n\n# absent\n  bob  \n")
    assert classes.trainee_names(count=None, names_file=names) == ["alice", "bob"]


@pytest.mark.parametrize(("text", "message"), [("Alice\n", "invalid workspace name"),
                                               ("bob\nbob\n", "listed twice: bob"),
                                               ("\n", "lists no trainees")])
def test_bad_trainee_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    names = tmp_path / "names.txt"
    names.write_text(text)
    with pytest.raises(CliError, match=message):
        classes.trainee_names(count=None, names_file=names)


def test_user_names_longer_than_a_certificate_cn_are_refused() -> None:
    classes.check_user_names("c" * 31, ["t" * 32])
    with pytest.raises(CliError, match="longer than 64"):
        classes.check_user_names("c" * 32, ["t" * 32])


def test_template_must_fit_in_the_quota() -> None:
    classes.check_quota_fits(objects=17, max_objects=20)
    with pytest.raises(CliError, match="that is 21, more than --max-objects 20"):
        classes.check_quota_fits(objects=18, max_objects=20)


def test_times_are_rfc3339_utc_and_round_trip() -> None:
    moment = datetime(2026, 11, 28, 18, 0, 5, 123, tzinfo=UTC)
    assert classes.format_time(moment) == "2026-11-28T18:00:05Z"
    assert classes.parse_time("2026-11-28T18:00:05Z") == moment.replace(microsecond=0)
    assert classes.parse_time("not a time") is None


def test_last_change_is_the_newest_managed_fields_time() -> None:
    metadata = {"creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"time": "2026-01-01T00:05:00Z"},
                                  {"time": "2026-01-01T00:02:00Z"}, {}]}
    assert classes.last_change(metadata) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert classes.last_change({}) is None


def test_describe_age_says_in_or_ago() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert classes.describe_age(now + timedelta(hours=7, minutes=59), now=now) == \
        "2026-01-01T19:59:00Z (in 7h59m)"
    assert classes.describe_age(now - timedelta(seconds=42), now=now) == \
        "2026-01-01T11:59:18Z (42s ago)"
    assert classes.describe_age(None, now=now) == "<none>"


def test_render_table_pads_all_but_the_last_column() -> None:
    assert classes.render_table(["A", "LONGER"], [["xyz", "1"], ["w", "22"]]) == (
        "A     LONGER\nxyz   1\nw     22\n")


def test_binding_makes_only_the_trainee_cluster_admin() -> None:
    binding = classes.binding_body("c1:alice")
    assert binding["metadata"]["name"] == "trainee-admin"
    assert binding["roleRef"]["name"] == "cluster-admin"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": "c1:alice"}]


def test_class_workspace_carries_label_expiry_and_quota() -> None:
    body = classes.class_workspace_body(
        class_name="c1", expires_at=datetime(2026, 11, 28, 18, tzinfo=UTC), max_objects=42)
    assert body["metadata"]["labels"] == {"kplane.io/class": "c1"}
    assert body["metadata"]["annotations"] == {"kplane.io/expires-at": "2026-11-28T18:00:00Z",
                                               "kplane.io/max-objects": "42"}


def test_progress_counts_stages_without_a_terminal() -> None:
    progress = classes.Progress(total=2, stream=io.StringIO())
    progress.advance("created")
    progress.advance("created")
    progress.advance("ready")
    assert progress.line() == "created 2/2, ready 1/2"


def test_zip_holds_every_kubeconfig(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        files.append(tmp_path / f"{name}.kubeconfig")
        files[-1].write_text(name)
    archive = classes.write_zip(tmp_path, class_name="c1", files=files)
    assert archive.name == "c1-kubeconfigs.zip"
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["a.kubeconfig", "b.kubeconfig"]
        assert opened.read("b.kubeconfig") == b"b"


# --- the template ------------------------------------------------------------------------


def test_template_folder_reads_manifests_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Secret, metadata: {name: third}}\n")
    (tmp_path / "a.json").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}}')
    (tmp_path / "notes.txt").write_text("ignored")
    names = [obj["metadata"]["name"] for obj in template.load_template(tmp_path)]
    assert names == ["first", "second", "third"]


@pytest.mark.parametrize(("text", "message"), [
    ("kind: ConfigMap\nmetadata: {name: x}\n", "without apiVersion or kind"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", "generateName"),
    ("- a\n", "must be an object"),
    ("a: [\n", "not valid YAML"),
])
def test_unusable_manifests_are_refused(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        template.parse_manifests(text, source="t.yaml")


RESOURCES: template.ResourceMap = template.resources_of(
    {"resources": [{"name": "configmaps", "kind": "ConfigMap", "namespaced": True,
                    "verbs": ["list"]},
                   {"name": "configmaps/status", "kind": "ConfigMap", "namespaced": True},
                   {"name": "namespaces", "kind": "Namespace", "namespaced": False,
                    "verbs": ["get", "list"]}]}, api_version="v1")


def test_discovery_maps_kinds_to_resources_without_subresources() -> None:
    discovered = dict(RESOURCES)
    assert discovered == {
        ("v1", "ConfigMap"): template.ResourceInfo("configmaps", namespaced=True),
        ("v1", "Namespace"): template.ResourceInfo("namespaces", namespaced=False)}


def test_apply_sends_namespaces_first_and_defaults_the_namespace() -> None:
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
               {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "lab", "namespace": "ignored"}}]
    waves = template.apply_waves(objects, RESOURCES)
    assert [[obj["metadata"] for obj, _info in wave] for wave in waves] == [
        [{"name": "lab"}], [{"name": "c", "namespace": "default"}]]
    (configmap, info), = waves[1]
    assert template.apply_path("root:c:t", configmap, info) == (
        "/clusters/root:c:t/api/v1/namespaces/default/configmaps/c"
        "?fieldManager=kplane-class&force=true")
    assert template.object_path("root:c:t", *waves[0][0]) == (
        "/clusters/root:c:t/api/v1/namespaces/lab")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(CliError, match='no resource serves kind "Widget" in v1'):
        template.apply_waves([{"apiVersion": "v1", "kind": "Widget",
                               "metadata": {"name": "w"}}], RESOURCES)


def test_listable_resources_and_discovery_paths() -> None:
    listing = {"resources": [{"name": "roles", "verbs": ["list"]},
                             {"name": "selfsubjectreviews", "verbs": ["create"]}]}
    assert template.listable_resources(listing, api_version="rbac.authorization.k8s.io/v1") \
        == ["/apis/rbac.authorization.k8s.io/v1/roles"]
    assert template.discovery_path("root", "v1") == "/clusters/root/api/v1"
    assert template.discovery_path("root", "apps/v1") == "/clusters/root/apis/apps/v1"


# --- the command line --------------------------------------------------------------------


def parse(*words: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kplane")
    classes.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(words)


def test_create_parses_its_options() -> None:
    args = parse("class", "create", "k8s-101", "--trainees", "30", "--expires", "2h",
                 "--max-objects", "100", "--out", "dir")
    assert (args.name, args.trainees, args.expires, args.max_objects, args.out) == (
        "k8s-101", 30, "2h", 100, Path("dir"))
    assert args.class_handler is classes._run_create
    assert args.data_dir == Path(".kplane") and args.kubeconfig is None


def test_create_needs_exactly_one_way_to_name_trainees() -> None:
    with pytest.raises(SystemExit):
        parse("class", "create", "c", "--trainees", "3", "--trainees-file", "f")
    with pytest.raises(SystemExit):
        parse("class", "create", "c")


def test_reset_needs_one_trainee_or_all(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    args = parse("class", "reset", "c", "--kubeconfig", str(tmp_path / "missing"))
    assert classes.run(args) == 1
    assert "does not exist" in capsys.readouterr().err
