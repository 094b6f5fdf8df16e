"""The published API: content-addressed schema names, the export, and a schema the server's
own structural checks accept (validated here with kplane's CRD checker, as the server would)."""

from __future__ import annotations

import copy

from kplane.crd.structural import check_crd_spec
from kplane_postgres import api


def test_schema_names_follow_the_content() -> None:
    spec = api.schema_spec("db.kplane.io")
    name = api.schema_name(spec)
    assert name == api.schema_name(copy.deepcopy(spec))
    assert name.startswith("v1-") and name.endswith(".postgresinstances.db.kplane.io")
    changed = copy.deepcopy(spec)
    changed["versions"][0]["schema"]["properties"]["spec"]["properties"]["new"] = {
        "type": "string"}
    assert api.schema_name(changed) != name
    assert api.schema_name(api.schema_spec("other.example.io")).endswith(
        ".postgresinstances.other.example.io")


def test_the_export_offers_the_schema_and_claims_secrets() -> None:
    body = api.export_object("postgres", "db.kplane.io", "v1-abc.postgresinstances.db.kplane.io")
    assert body["apiVersion"] == "apis.kcp.io/v1alpha2" and body["kind"] == "APIExport"
    assert body["spec"]["resources"] == [{
        "group": "db.kplane.io", "name": "postgresinstances",
        "schema": "v1-abc.postgresinstances.db.kplane.io", "storage": {"crd": {}}}]
    assert body["spec"]["permissionClaims"] == [
        {"group": "", "resource": "secrets", "verbs": ["*"]}]


def test_the_schema_is_a_valid_crd_version() -> None:
    spec = api.schema_spec("db.kplane.io")
    # The same content as a CRD: kcp puts the schema directly under `schema`.
    crd_spec = copy.deepcopy(spec)
    for version in crd_spec["versions"]:
        version["schema"] = {"openAPIV3Schema": version["schema"]}
    causes = check_crd_spec(crd_spec, name="postgresinstances.db.kplane.io")
    assert causes == []
