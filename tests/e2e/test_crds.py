"""CustomResourceDefinitions per workspace, end to end, with kubectl, the Python client and HTTPS.

One server, two workspaces. A ``Widget`` CRD exercises what upstream's apiextensions server
promises: establishing and discovery, structural checks on the CRD itself, schema validation
of objects (every error at once), pruning, defaulting, ``fieldValidation``, CEL rules with
their messages and transition rules, subresources, generation, printer columns, short names,
categories, selectable fields, several versions, patch types, ``kubectl explain``, deletion
with cleanup, and isolation between workspaces.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import dynamic
from kubernetes.client.exceptions import ApiException

from tests.e2e.server import KplaneProcess
from tests.e2e.test_workspaces import admin_api, eventually, ready_workspace

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

GROUP = "example.kplane.io"
CRDS = "apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = f"apis/{GROUP}/v1/namespaces/default/widgets"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
A, B = "root:crd-a", "root:crd-b"


def widget_schema() -> dict[str, Any]:
    spec = {
        "type": "object",
        "required": ["color"],
        "x-kubernetes-validations": [
            {"rule": "self.size <= 5 || self.color == 'red'", "message": "big widgets must be red"},
            {"rule": "!has(self.replicas) || self.replicas <= 3",
             "messageExpression": "'replicas ' + string(self.replicas) + ' is more than 3'"},
        ],
        "properties": {
            "size": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            "replicas": {"type": "integer"},
            "color": {"type": "string", "enum": ["red", "green"]},
            "mode": {"x-kubernetes-int-or-string": True},
            "id": {"type": "string", "format": "uuid"},
            "note": {"type": "string", "nullable": True},
            "owner": {"type": "string",
                      "x-kubernetes-validations": [
                          {"rule": "self == oldSelf", "message": "owner is immutable"}]},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "x-kubernetes-preserve-unknown-fields": True},
            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                     "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"], "properties": {
                          "name": {"type": "string"}, "port": {"type": "integer"}}}},
        },
    }
    status = {"type": "object", "properties": {"ready": {"type": "boolean"},
                                               "message": {"type": "string"}}}
    return {"type": "object", "properties": {"spec": spec, "status": status}}


def widget_version(name: str, *, storage: bool) -> dict[str, Any]:
    return {
        "name": name, "served": True, "storage": storage,
        "schema": {"openAPIV3Schema": widget_schema()},
        "subresources": {"status": {}},
        "selectableFields": [{"jsonPath": ".spec.color"}],
        "additionalPrinterColumns": [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
        ],
    }


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList", "shortNames": ["wg"],
                      "categories": ["gadgets"]},
            "versions": [widget_version("v1", storage=True),
                         widget_version("v1beta1", storage=False)],
        },
    }


def gizmo_crd(*, field: str) -> dict[str, Any]:
    """A cluster-scoped kind whose only spec field is named ``field``."""
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "properties": {field: {"type": "string"}}}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gizmos.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Cluster",
                 "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema}}]},
    }


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"color": "green", **spec}}


def url(workspace: str, rest: str) -> str:
    return f"/clusters/{workspace}/{rest}"


def established(http: httpx.Client, workspace: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        crd: dict[str, Any] = http.get(url(workspace, f"{CRDS}/{name}")).json()
        conditions = {c["type"]: c["status"]
                      for c in (crd.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Established") == "True"
        return crd if ready and conditions.get("NamesAccepted") == "True" else None

    found: dict[str, Any] = eventually(check, what=f"{name} Established in {workspace}")
    return found


def create_crd(http: httpx.Client, workspace: str, crd: dict[str, Any]) -> dict[str, Any]:
    response = http.post(url(workspace, CRDS), json=crd)
    assert response.status_code == 201, response.text
    return established(http, workspace, crd["metadata"]["name"])


def causes(response: httpx.Response) -> set[tuple[str, str]]:
    details = response.json().get("details") or {}
    return {(c.get("field", ""), c["message"]) for c in details.get("causes") or []}


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as session:
        ready_workspace(session, "root", "crd-a")
        ready_workspace(session, "root", "crd-b")
        yield session


@pytest.fixture(scope="module")
def widgets(http: httpx.Client) -> dict[str, Any]:
    return create_crd(http, A, widget_crd())


def post_widget(http: httpx.Client, body: dict[str, Any], query: str = "") -> httpx.Response:
    return http.post(url(A, WIDGETS) + query, json=body)


# Establishing, discovery, OpenAPI ------------------------------------------------------------


def test_crd_is_established_with_accepted_names(widgets: dict[str, Any]) -> None:
    status = widgets["status"]
    assert status["acceptedNames"]["kind"] == "Widget"
    assert status["acceptedNames"]["shortNames"] == ["wg"]
    assert status["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in widgets["metadata"]["finalizers"]


def test_discovery_lists_the_kind_in_its_workspace(http: httpx.Client,
                                                   widgets: dict[str, Any]) -> None:
    groups = http.get(url(A, "apis")).json()["groups"]
    ours = next(g for g in groups if g["name"] == GROUP)
    assert [v["version"] for v in ours["versions"]] == ["v1", "v1beta1"]
    assert ours["preferredVersion"]["version"] == "v1"
    resources = {r["name"]: r for r in
                 http.get(url(A, f"apis/{GROUP}/v1")).json()["resources"]}
    assert set(resources) == {"widgets", "widgets/status"}
    main = resources["widgets"]
    assert (main["kind"], main["namespaced"], main["singularName"]) == ("Widget", True, "widget")
    assert main["shortNames"] == ["wg"]
    assert main["categories"] == ["gadgets"]
    assert set(main["verbs"]) >= {"create", "delete", "deletecollection", "get", "list",
                                  "patch", "update", "watch"}


def test_openapi_v3_publishes_the_schema(http: httpx.Client,
                                              widgets: dict[str, Any]) -> None:
    paths = http.get(url(A, "openapi/v3")).json()["paths"]
    assert f"apis/{GROUP}/v1" in paths
    document = http.get(url(A, f"openapi/v3/apis/{GROUP}/v1")).json()
    schema = document["components"]["schemas"]["io.kplane.example.v1.Widget"]
    spec = schema["properties"]["spec"]
    assert spec["properties"]["size"]["maximum"] == 10
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "version": "v1", "kind": "Widget"}]
    operations = document["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/widgets/{{name}}"]
    assert "fieldValidation" in {p["name"] for p in operations["patch"]["parameters"]}


# Checks on the CRD itself ----------------------------------------------------------------------


def test_structural_problems_are_each_named(http: httpx.Client) -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = f"wrong.{GROUP}"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["untyped"] = {"description": "no type"}
    schema["properties"]["spec"]["properties"]["tags"]["uniqueItems"] = True
    crd["spec"]["versions"][1]["storage"] = True
    response = http.post(url(A, CRDS), json=crd)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        f'CustomResourceDefinition.apiextensions.k8s.io "wrong.{GROUP}" is invalid: ')
    fields = {field for field, _ in causes(response)}
    base = "spec.versions[0].schema.openAPIV3Schema.properties[spec]"
    assert {"metadata.name", f"{base}.properties[untyped].type",
            f"{base}.properties[tags].uniqueItems", "spec.versions"} <= fields


def test_a_cel_rule_that_does_not_compile_is_refused(http: httpx.Client) -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = f"badrules.{GROUP}"
    crd["spec"]["names"] = {"plural": "badrules", "kind": "BadRule"}
    crd["spec"]["versions"] = [crd["spec"]["versions"][0]]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["x-kubernetes-validations"] = [{"rule": "self.size >"}]
    response = http.post(url(A, CRDS), json=crd)
    assert response.status_code == 422, response.text
    fields = {field for field, _ in causes(response)}
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec]"
            ".x-kubernetes-validations[0].rule") in fields


def test_a_pattern_that_does_not_compile_is_refused(http: httpx.Client) -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = f"badpatterns.{GROUP}"
    crd["spec"]["names"] = {"plural": "badpatterns", "kind": "BadPattern"}
    crd["spec"]["versions"] = [crd["spec"]["versions"][0]]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["code"] = {"type": "string", "pattern": "(["}
    response = http.post(url(A, CRDS), json=crd)
    assert response.status_code == 422, response.text
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[code]"
            ".pattern", 'Invalid value: "([": must be a valid regular expression, but '
            "isn't: error parsing regexp: missing ]: [") in causes(response)


def test_malformed_subresources_are_refused_and_negative_bounds_kept(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    """Through the official client: a status subresource that is not an object and a scale
    selector outside .spec/.status get 422 Invalid, as upstream refuses them; a negative
    maxLength is accepted, as upstream accepts it, and then refuses every object with 422."""
    crd = scaler_crd()
    crd["metadata"]["name"] = f"strictscalers.{GROUP}"
    crd["spec"]["names"] = {"plural": "strictscalers", "kind": "StrictScaler"}
    version = crd["spec"]["versions"][0]
    version["subresources"]["status"] = "x"
    version["subresources"]["scale"]["labelSelectorPath"] = ".metadata.labels"
    where = "spec.versions[0].subresources"
    with admin_api(kplane, A) as api:
        # The dynamic client sends the body as written (the typed one checks types itself).
        crds = dynamic.DynamicClient(api).resources.get(  # type: ignore[no-untyped-call]
            api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
        with pytest.raises(ApiException) as refused:
            crds.create(body=crd)
        assert refused.value.status == 422
        status = json.loads(refused.value.body or "{}")
        assert status["reason"] == "Invalid"
        assert {(c["field"], c["message"]) for c in status["details"]["causes"]} == {
            (f"{where}.status", 'Invalid value: "x": must be an object'),
            (f"{where}.scale.labelSelectorPath", 'Invalid value: ".metadata.labels": should '
                                                 "be a json path under either .spec or .status")}
        crd["metadata"]["name"] = f"shortnotes.{GROUP}"
        crd["spec"]["names"] = {"plural": "shortnotes", "kind": "ShortNote"}
        del version["subresources"]
        version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["note"] = {
            "type": "string", "maxLength": -1}
        crds.create(body=crd)
    established(http, A, crd["metadata"]["name"])
    note = http.post(url(A, f"apis/{GROUP}/v1/namespaces/default/shortnotes"),
                     json={"apiVersion": f"{GROUP}/v1", "kind": "ShortNote",
                           "metadata": {"name": "n1"}, "spec": {"note": "hi"}})
    assert note.status_code == 422, note.text
    assert ("spec.note", "Too long: must have at most -1 bytes") in causes(note)


def test_patterns_match_in_linear_time(http: httpx.Client) -> None:
    # A backtracking engine would spend hours on this value, and every tenant would wait.
    crd = widget_crd()
    crd["metadata"]["name"] = f"greedies.{GROUP}"
    crd["spec"]["names"] = {"plural": "greedies", "kind": "Greedy"}
    crd["spec"]["versions"] = [crd["spec"]["versions"][0]]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["word"] = {"type": "string", "pattern": "^(a+)+$"}
    created = http.post(url(A, CRDS), json=crd)
    assert created.status_code == 201, created.text
    established(http, A, f"greedies.{GROUP}")
    path = url(A, f"apis/{GROUP}/v1/namespaces/default/greedies")
    body: dict[str, Any] = {"apiVersion": f"{GROUP}/v1", "kind": "Greedy",
                            "metadata": {"name": "g"},
                            "spec": {"color": "green", "word": "a" * 60 + "!"}}
    response = http.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["details"]["causes"][0]["field"] == "spec.word"
    body["spec"]["word"] = "a" * 60
    assert http.post(path, json=body).status_code == 201


# Validation of objects --------------------------------------------------------------------------


def test_every_schema_error_is_reported_at_once(http: httpx.Client,
                                                widgets: dict[str, Any]) -> None:
    body = widget("bad", size=11, color="blue", id="nope", mode=True, tags=["a", "a"],
                  ports=[{"name": "http", "port": 1}, {"name": "http", "port": 2}])
    response = post_widget(http, body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(
        f'Widget.{GROUP} "bad" is invalid: ')
    found = causes(response)
    assert ("spec.size", "Invalid value: 11: spec.size in body should be less than or equal "
            "to 10") in found
    assert ("spec.color", 'Unsupported value: "blue": supported values: "red", "green"') in found
    assert ("spec.id", 'Invalid value: "nope": spec.id in body must be of type uuid: "nope"'
            ) in found
    assert ("spec.tags[1]", 'Duplicate value: "a"') in found
    assert any(field == "spec.ports[1]" and message.startswith("Duplicate value")
               for field, message in found)
    assert any(field == "spec.mode" for field, _ in found)


def test_required_fields_and_embedded_resources(http: httpx.Client,
                                                widgets: dict[str, Any]) -> None:
    body = widget("req", template={"spec": {}})
    del body["spec"]["color"]
    response = post_widget(http, body)
    assert response.status_code == 422, response.text
    found = causes(response)
    assert ("spec.color", "Required value") in found
    assert ("spec.template.apiVersion", "Required value: must not be empty") in found
    assert ("spec.template.kind", "Required value: must not be empty") in found


def test_int_or_string_nullable_and_preserved_fields(http: httpx.Client,
                                                     widgets: dict[str, Any]) -> None:
    body = widget("flex", mode="50%", note=None, extra={"any": {"thing": [1, 2]}},
                  template={"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "inner"}, "data": {"k": "v"}})
    response = post_widget(http, body)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["mode"] == "50%"
    assert "note" in spec and spec["note"] is None
    assert spec["extra"] == {"any": {"thing": [1, 2]}}
    assert spec["template"]["data"] == {"k": "v"}
    numeric = post_widget(http, widget("flex-int", mode=3))
    assert numeric.status_code == 201, numeric.text
    assert numeric.json()["spec"]["mode"] == 3


def test_unknown_fields_are_pruned_and_defaults_applied(http: httpx.Client,
                                                        widgets: dict[str, Any]) -> None:
    body = widget("pruned", bogus=1)
    body["unknownTop"] = "x"
    response = post_widget(http, body, "?fieldValidation=Ignore")
    assert response.status_code == 201, response.text
    created = response.json()
    assert "bogus" not in created["spec"]
    assert "unknownTop" not in created
    assert created["spec"]["size"] == 1
    assert "Warning" not in response.headers
    stored = http.get(url(A, f"{WIDGETS}/pruned")).json()
    assert stored["spec"] == {"color": "green", "size": 1}


def test_field_validation_warn_and_strict(http: httpx.Client, widgets: dict[str, Any]) -> None:
    warned = post_widget(http, widget("warned", bogus=1))
    assert warned.status_code == 201, warned.text
    assert warned.headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""'
    strict = post_widget(http, widget("strict", bogus=1), "?fieldValidation=Strict")
    assert strict.status_code == 400, strict.text
    assert 'unknown field "spec.bogus"' in strict.json()["message"]
    assert http.get(url(A, f"{WIDGETS}/strict")).status_code == 404


def test_cel_rules_with_messages(http: httpx.Client, widgets: dict[str, Any]) -> None:
    response = post_widget(http, widget("cel", size=7, replicas=5))
    assert response.status_code == 422, response.text
    found = causes(response)
    assert ("spec", 'Invalid value: "object": big widgets must be red') in found
    assert ("spec", 'Invalid value: "object": replicas 5 is more than 3') in found
    assert post_widget(http, widget("cel-ok", size=7, color="red")).status_code == 201


def test_transition_rule_compares_with_old_self(http: httpx.Client,
                                                widgets: dict[str, Any]) -> None:
    created = post_widget(http, widget("owned", owner="alice"))
    assert created.status_code == 201, created.text
    changed = http.patch(url(A, f"{WIDGETS}/owned"), headers=MERGE,
                         json={"spec": {"owner": "bob"}})
    assert changed.status_code == 422, changed.text
    assert ("spec.owner", 'Invalid value: "string": owner is immutable') in causes(changed)
    same = http.patch(url(A, f"{WIDGETS}/owned"), headers=MERGE, json={"spec": {"size": 2}})
    assert same.status_code == 200, same.text


# Subresources, generation, versions ---------------------------------------------------------


def test_a_deletion_held_by_a_finalizer_bumps_the_generation(
        http: httpx.Client, widgets: dict[str, Any]) -> None:
    # Controllers that only react to generation changes must still see the deletion.
    body = widget("held")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    assert post_widget(http, body).json()["metadata"]["generation"] == 1
    item = url(A, f"{WIDGETS}/held")
    deleted = http.delete(item)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["metadata"]["deletionTimestamp"]
    assert deleted.json()["metadata"]["generation"] == 2
    assert http.delete(item).json()["metadata"]["generation"] == 2  # only the first time
    released = http.patch(item, headers=MERGE, json={"metadata": {"finalizers": None}})
    assert released.status_code == 200, released.text
    assert http.get(item).status_code == 404


def test_status_subresource_and_generation(http: httpx.Client, widgets: dict[str, Any]) -> None:
    body = widget("gen")
    body["status"] = {"ready": True}
    created = post_widget(http, body).json()
    assert created["metadata"]["generation"] == 1
    assert "status" not in created
    item = url(A, f"{WIDGETS}/gen")
    labelled = http.patch(item, headers=MERGE, json={"metadata": {"labels": {"a": "b"}}})
    assert labelled.json()["metadata"]["generation"] == 1
    status = http.patch(f"{item}/status", headers=MERGE,
                        json={"status": {"ready": True}, "spec": {"size": 9}})
    assert status.status_code == 200, status.text
    assert status.json()["status"] == {"ready": True}
    assert status.json()["spec"]["size"] == 1
    assert status.json()["metadata"]["generation"] == 1
    main = http.patch(item, headers=MERGE, json={"spec": {"size": 3}, "status": {"ready": False}})
    assert main.json()["metadata"]["generation"] == 2
    assert main.json()["status"] == {"ready": True}
    bad_status = http.patch(f"{item}/status", headers=MERGE, json={"status": {"ready": "yes"}})
    assert bad_status.status_code == 422, bad_status.text


def scaler_crd() -> dict[str, Any]:
    replicas = {"type": "integer", "minimum": 0, "maximum": 20}
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": replicas}},
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                    "selector": {"type": "string"}}}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"scalers.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "scalers", "singular": "scaler", "kind": "Scaler"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema},
                               "subresources": {"status": {}, "scale": {
                                   "specReplicasPath": ".spec.replicas",
                                   "statusReplicasPath": ".status.replicas",
                                   "labelSelectorPath": ".status.selector"}}}]},
    }


def test_scale_subresource(kplane: KplaneProcess, http: httpx.Client) -> None:
    create_crd(http, A, scaler_crd())
    resources = {r["name"]: r for r in http.get(url(A, f"apis/{GROUP}/v1")).json()["resources"]}
    scale_resource = resources["scalers/scale"]
    assert (scale_resource["group"], scale_resource["version"], scale_resource["kind"]) == (
        "autoscaling", "v1", "Scale")
    item = url(A, f"apis/{GROUP}/v1/namespaces/default/scalers/s1")
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Scaler", "metadata": {"name": "s1"},
            "spec": {"replicas": 2}}
    assert http.post(item.rsplit("/", 1)[0], json=body).status_code == 201
    status = http.patch(f"{item}/status", headers=MERGE,
                        json={"status": {"replicas": 2, "selector": "app=s1"}})
    assert status.status_code == 200, status.text
    scale = http.get(f"{item}/scale").json()
    assert (scale["apiVersion"], scale["kind"]) == ("autoscaling/v1", "Scale")
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 2, "selector": "app=s1"}
    kplane.kubectl("scale", "scalers", "s1", "--replicas=5", "-n", "default",
                   server=f"{kplane.url}/clusters/{A}")
    scaled = http.get(item).json()
    assert scaled["spec"]["replicas"] == 5
    assert scaled["metadata"]["generation"] == 2
    too_many = http.patch(f"{item}/scale", headers=MERGE, json={"spec": {"replicas": 99}})
    assert too_many.status_code == 422, too_many.text


def test_versions_share_objects_with_conversion_none(http: httpx.Client,
                                                     widgets: dict[str, Any]) -> None:
    body = widget("beta")
    body["apiVersion"] = f"{GROUP}/v1beta1"
    beta_url = url(A, f"apis/{GROUP}/v1beta1/namespaces/default/widgets")
    created = http.post(beta_url, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["apiVersion"] == f"{GROUP}/v1beta1"
    as_v1 = http.get(url(A, f"{WIDGETS}/beta")).json()
    assert as_v1["apiVersion"] == f"{GROUP}/v1"
    listed = http.get(beta_url).json()
    assert listed["apiVersion"] == f"{GROUP}/v1beta1"
    assert listed["kind"] == "WidgetList"
    assert {i["apiVersion"] for i in listed["items"]} == {f"{GROUP}/v1beta1"}
    assert "beta" in {i["metadata"]["name"] for i in listed["items"]}


def test_selectable_fields(http: httpx.Client, widgets: dict[str, Any]) -> None:
    assert post_widget(http, widget("sel-red", color="red")).status_code == 201
    red = http.get(url(A, WIDGETS), params={"fieldSelector": "spec.color=red"}).json()
    names = {i["metadata"]["name"] for i in red["items"]}
    assert "sel-red" in names
    assert all(i["spec"]["color"] == "red" for i in red["items"])
    refused = http.get(url(A, WIDGETS), params={"fieldSelector": "spec.size=1"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == "field label not supported: spec.size"


# Patches ------------------------------------------------------------------------------------------


def test_strategic_merge_patch_is_415(http: httpx.Client, widgets: dict[str, Any]) -> None:
    assert post_widget(http, widget("smp")).status_code == 201
    response = http.patch(url(A, f"{WIDGETS}/smp"), headers=STRATEGIC,
                          json={"spec": {"size": 2}})
    assert response.status_code == 415, response.text
    assert response.json()["reason"] == "UnsupportedMediaType"


def test_json_and_merge_patches(http: httpx.Client, widgets: dict[str, Any]) -> None:
    assert post_widget(http, widget("patched", tags=["a"])).status_code == 201
    item = url(A, f"{WIDGETS}/patched")
    merged = http.patch(item, headers=MERGE, json={"spec": {"size": 4}})
    assert merged.status_code == 200, merged.text
    jsoned = http.patch(item, headers=JSON_PATCH,
                        json=[{"op": "add", "path": "/spec/tags/-", "value": "b"}])
    assert jsoned.status_code == 200, jsoned.text
    assert jsoned.json()["spec"] == {"color": "green", "size": 4, "tags": ["a", "b"]}


def test_server_side_apply_merges_map_lists_by_key(http: httpx.Client,
                                                   widgets: dict[str, Any]) -> None:
    item = url(A, f"{WIDGETS}/applied")
    first = {**widget("applied", ports=[{"name": "http", "port": 80}], tags=["a"])}
    one = http.patch(item, headers=APPLY, params={"fieldManager": "one"},
                     content=json.dumps(first))
    assert one.status_code == 201, one.text
    second = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "applied"},
              "spec": {"ports": [{"name": "https", "port": 443}], "tags": ["b"]}}
    two = http.patch(item, headers=APPLY, params={"fieldManager": "two"},
                     content=json.dumps(second))
    assert two.status_code == 200, two.text
    spec = two.json()["spec"]
    assert spec["ports"] == [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    assert spec["tags"] == ["a", "b"]
    managers = {m["manager"] for m in two.json()["metadata"]["managedFields"]}
    assert managers == {"one", "two"}


# kubectl ---------------------------------------------------------------------------------------


def test_kubectl_get_printer_columns_short_names_and_categories(
        kplane: KplaneProcess, http: httpx.Client, widgets: dict[str, Any]) -> None:
    server = f"{kplane.url}/clusters/{A}"
    assert post_widget(http, widget("printed", size=4)).status_code == 201
    plain = kplane.kubectl("get", "widgets", "printed", server=server).stdout.splitlines()
    # Declared columns replace the default Age column, as upstream.
    assert plain[0].split() == ["NAME", "SIZE"]
    assert plain[1].split()[:2] == ["printed", "4"]
    wide = kplane.kubectl("get", "wg", "printed", "-o", "wide", server=server).stdout
    assert wide.splitlines()[0].split() == ["NAME", "SIZE", "COLOR"]
    assert wide.splitlines()[1].split()[-1] == "green"
    by_category = kplane.kubectl("get", "gadgets", "-o", "name", server=server).stdout
    assert f"widget.{GROUP}/printed" in by_category.split()


def test_kubectl_explain_shows_the_schema(kplane: KplaneProcess,
                                          widgets: dict[str, Any]) -> None:
    out = kplane.kubectl("explain", "widgets.spec", server=f"{kplane.url}/clusters/{A}").stdout
    assert "KIND:       Widget" in out
    assert "size\t<integer>" in out
    assert "color\t<string> -required-" in out
    assert "ports\t<[]Object>" in out


def test_kubectl_apply_server_side(kplane: KplaneProcess, widgets: dict[str, Any]) -> None:
    server = f"{kplane.url}/clusters/{A}"
    manifest = json.dumps(widget("kubectl-applied", size=2))
    out = kplane.kubectl("apply", "--server-side", "-n", "default", "-f", "-",
                         input=manifest, server=server).stdout
    assert f"widget.{GROUP}/kubectl-applied serverside-applied" in out
    got = kplane.kubectl_json("get", "wg", "kubectl-applied", "-n", "default",
                              "--server", server)
    assert got["spec"] == {"color": "green", "size": 2}


# The official Python client ------------------------------------------------------------------


def test_python_dynamic_client(kplane: KplaneProcess, widgets: dict[str, Any]) -> None:
    with admin_api(kplane, A) as api:
        client = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
        resource = client.resources.get(api_version=f"{GROUP}/v1", kind="Widget")
        created = resource.create(body=widget("dyn", size=3), namespace="default")
        assert created.spec.size == 3
        patched = resource.patch(name="dyn", namespace="default", body={"spec": {"size": 5}},
                                 content_type="application/merge-patch+json")
        assert patched.metadata.generation == 2
        listed = resource.get(namespace="default", label_selector="")
        assert "dyn" in {i.metadata.name for i in listed.items}
        with pytest.raises(ApiException) as invalid:
            resource.create(body=widget("dyn-bad", size=99), namespace="default")
        assert invalid.value.status == 422
        resource.delete(name="dyn", namespace="default")
        with pytest.raises(ApiException) as gone:
            resource.get(name="dyn", namespace="default")
        assert gone.value.status == 404


# Cluster scope, isolation, deletion ----------------------------------------------------------


def test_cluster_scoped_kind(http: httpx.Client) -> None:
    create_crd(http, A, gizmo_crd(field="alpha"))
    gizmos = url(A, f"apis/{GROUP}/v1/gizmos")
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": "g1"},
            "spec": {"alpha": "x"}}
    created = http.post(gizmos, json=body)
    assert created.status_code == 201, created.text
    assert "namespace" not in created.json()["metadata"]
    resources = http.get(url(A, f"apis/{GROUP}/v1")).json()["resources"]
    assert next(r for r in resources if r["name"] == "gizmos")["namespaced"] is False
    assert http.get(url(A, f"apis/{GROUP}/v1/namespaces/default/gizmos")).status_code == 404


def test_same_crd_name_with_different_schemas_in_two_workspaces(http: httpx.Client) -> None:
    if http.get(url(A, f"{CRDS}/gizmos.{GROUP}")).status_code == 404:
        create_crd(http, A, gizmo_crd(field="alpha"))
    create_crd(http, B, gizmo_crd(field="beta"))
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": "iso"},
            "spec": {"alpha": "a", "beta": "b"}}
    in_a = http.post(url(A, f"apis/{GROUP}/v1/gizmos"), json=copy.deepcopy(body))
    in_b = http.post(url(B, f"apis/{GROUP}/v1/gizmos"), json=copy.deepcopy(body))
    assert in_a.json()["spec"] == {"alpha": "a"}, in_a.text
    assert in_b.json()["spec"] == {"beta": "b"}, in_b.text
    schema_a = http.get(url(A, f"openapi/v3/apis/{GROUP}/v1")).json()
    schema_b = http.get(url(B, f"openapi/v3/apis/{GROUP}/v1")).json()
    gizmo = "io.kplane.example.v1.Gizmo"
    spec_a = schema_a["components"]["schemas"][gizmo]["properties"]["spec"]["properties"]
    spec_b = schema_b["components"]["schemas"][gizmo]["properties"]["spec"]["properties"]
    assert (set(spec_a), set(spec_b)) == ({"alpha"}, {"beta"})


def test_a_crd_in_one_workspace_is_invisible_in_another(http: httpx.Client,
                                                        widgets: dict[str, Any]) -> None:
    assert http.get(url(B, f"{CRDS}/widgets.{GROUP}")).status_code == 404
    resources = http.get(url(B, f"apis/{GROUP}/v1")).json().get("resources") or []
    assert "widgets" not in {r["name"] for r in resources}
    assert f"apis/{GROUP}/v1beta1" not in http.get(url(B, "openapi/v3")).json()["paths"]
    assert http.get(url(B, WIDGETS)).status_code == 404
    assert http.post(url(B, WIDGETS), json=widget("nope")).status_code == 404


def test_deleting_the_crd_removes_the_kind_and_its_objects(http: httpx.Client) -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = f"doomed.{GROUP}"
    crd["spec"]["names"] = {"plural": "doomed", "singular": "doomed", "kind": "Doomed"}
    crd["spec"]["versions"] = [{"name": "v1", "served": True, "storage": True,
                                "schema": {"openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}]
    create_crd(http, B, crd)
    doomed = url(B, f"apis/{GROUP}/v1/namespaces/default/doomed")
    for name in ("d1", "d2"):
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Doomed", "metadata": {"name": name}}
        assert http.post(doomed, json=body).status_code == 201
    assert http.delete(url(B, f"{CRDS}/doomed.{GROUP}")).status_code == 200
    eventually(lambda: http.get(url(B, f"{CRDS}/doomed.{GROUP}")).status_code == 404,
               what="CRD gone")
    assert http.get(doomed).status_code == 404
    resources = http.get(url(B, f"apis/{GROUP}/v1")).json().get("resources") or []
    assert "doomed" not in {r["name"] for r in resources}
    # Recreating the CRD must not bring the old objects back.
    create_crd(http, B, crd)
    assert http.get(doomed).json()["items"] == []


def test_changing_the_schema_takes_effect(http: httpx.Client) -> None:
    crd = gizmo_crd(field="first")
    crd["metadata"]["name"] = f"evolving.{GROUP}"
    crd["spec"]["names"] = {"plural": "evolving", "singular": "evolving", "kind": "Evolving"}
    create_crd(http, A, crd)
    items = url(A, f"apis/{GROUP}/v1/evolving")
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1", "kind": "Evolving", "metadata": {"name": "e1"},
            "spec": {"first": "1", "second": "2"}}
    assert http.post(items, json=body).json()["spec"] == {"first": "1"}
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["second"] = {"type": "string"}
    patched = http.patch(url(A, f"{CRDS}/evolving.{GROUP}"), headers=MERGE,
                         json={"spec": {"versions": crd["spec"]["versions"]}})
    assert patched.status_code == 200, patched.text

    def second_kept() -> bool:
        body["metadata"]["name"] = "e2"
        created = http.post(items, json=body)
        if created.status_code == 201:
            http.delete(f"{items}/e2")
        return created.status_code == 201 and created.json()["spec"].get("second") == "2"

    eventually(second_kept, what="new schema served")


def test_watch_streams_custom_resource_events(http: httpx.Client,
                                              widgets: dict[str, Any]) -> None:
    listed = http.get(url(A, WIDGETS)).json()
    version = listed["metadata"]["resourceVersion"]
    assert post_widget(http, widget("watched")).status_code == 201
    assert http.delete(url(A, f"{WIDGETS}/watched")).status_code == 200
    seen: list[tuple[str, str]] = []
    with http.stream("GET", url(A, WIDGETS),
                     params={"watch": "1", "resourceVersion": version,
                             "timeoutSeconds": "2"}) as stream:
        for line in stream.iter_lines():
            if line:
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"]["name"]))
            if ("DELETED", "watched") in seen:
                break
    assert seen[-2:] == [("ADDED", "watched"), ("DELETED", "watched")]


def test_deleting_a_namespace_deletes_its_custom_resources(http: httpx.Client,
                                                           widgets: dict[str, Any]) -> None:
    assert http.post(url(A, "api/v1/namespaces"),
                     json={"metadata": {"name": "doomed-ns"}}).status_code == 201
    in_ns = url(A, f"apis/{GROUP}/v1/namespaces/doomed-ns/widgets")
    assert http.post(in_ns, json=widget("w")).status_code == 201
    assert http.delete(url(A, "api/v1/namespaces/doomed-ns")).status_code == 200
    eventually(lambda: http.get(url(A, "api/v1/namespaces/doomed-ns")).status_code == 404,
               what="namespace gone")
    assert http.get(f"{in_ns}/w").status_code == 404


# Deleting a CRD: upstream's finalizer ---------------------------------------------------------


def open_crd(plural: str, kind: str, *versions: str, storage: str = "v1") -> dict[str, Any]:
    """A namespaced kind that keeps every field, served in ``versions`` (default v1)."""
    schema = {"openAPIV3Schema": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                 "versions": [{"name": v, "served": True, "storage": v == storage,
                               "schema": schema} for v in versions or ("v1",)]},
    }


def terminating_condition(http: httpx.Client, workspace: str, name: str,
                          ) -> dict[str, Any] | None:
    crd = http.get(url(workspace, f"{CRDS}/{name}")).json()
    return next((c for c in (crd.get("status") or {}).get("conditions") or []
                 if c["type"] == "Terminating"), None)


def test_a_terminating_crd_refuses_creates_and_waits_for_instance_finalizers(
        http: httpx.Client) -> None:
    name = f"sprockets.{GROUP}"
    create_crd(http, B, open_crd("sprockets", "Sprocket"))
    items = url(B, f"apis/{GROUP}/v1/namespaces/default/sprockets")

    def sprocket(item: str) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/v1", "kind": "Sprocket", "metadata": {"name": item}}

    for index in range(30):
        assert http.post(items, json=sprocket(f"s{index}")).status_code == 201
    held = sprocket("held")
    held["metadata"]["finalizers"] = ["x.io/f"]
    assert http.post(items, json=held).status_code == 201

    deleted = http.delete(url(B, f"{CRDS}/{name}"))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["metadata"]["deletionTimestamp"]

    def only_held_left() -> bool:
        left = http.get(items).json()["items"]
        return [i["metadata"]["name"] for i in left] == ["held"]

    eventually(only_held_left, what="the objects without finalizers deleted")
    condition = terminating_condition(http, B, name)
    assert condition is not None
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress")
    assert http.get(f"{items}/held").json()["metadata"]["deletionTimestamp"]

    late = http.post(items, json=sprocket("late"))
    assert late.status_code == 403, late.text
    assert late.json()["reason"] == "Forbidden"
    assert late.json()["message"] == (
        f'sprockets.{GROUP} "late" is forbidden: create not allowed while custom resource '
        "definition is terminating")
    applied = http.patch(f"{items}/applied", headers=APPLY, params={"fieldManager": "t"},
                         content=json.dumps(sprocket("applied")))
    assert applied.status_code == 403, applied.text
    assert http.get(url(B, f"{CRDS}/{name}")).status_code == 200, "held by the instance"

    released = http.patch(f"{items}/held", headers=MERGE, json={"metadata": {"finalizers": None}})
    assert released.status_code == 200, released.text
    eventually(lambda: http.get(url(B, f"{CRDS}/{name}")).status_code == 404, what="CRD gone")
    # Nothing of the old kind survives its re-creation.
    create_crd(http, B, open_crd("sprockets", "Sprocket"))
    assert http.get(items).json()["items"] == []
    assert http.delete(url(B, f"{CRDS}/{name}")).status_code == 200


def test_creates_racing_a_crd_deletion_leave_nothing_behind(kplane: KplaneProcess,
                                                            http: httpx.Client) -> None:
    name = f"ratchets.{GROUP}"
    create_crd(http, B, open_crd("ratchets", "Ratchet"))
    items = url(B, f"apis/{GROUP}/v1/namespaces/default/ratchets")
    for index in range(200):
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Ratchet",
                "metadata": {"name": f"r{index}"}}
        assert http.post(items, json=body).status_code == 201
    answers: list[int] = []
    done = threading.Event()

    def keep_creating() -> None:
        with kplane.client() as creating:
            index = 0
            while not done.is_set():
                body = {"apiVersion": f"{GROUP}/v1", "kind": "Ratchet",
                        "metadata": {"name": f"late{index}"}}
                answers.append(creating.post(items, json=body).status_code)
                index += 1

    creator = threading.Thread(target=keep_creating)
    creator.start()
    try:
        eventually(lambda: len(answers) >= 3, what="creates under way")
        assert http.delete(url(B, f"{CRDS}/{name}")).status_code == 200
        eventually(lambda: http.get(url(B, f"{CRDS}/{name}")).status_code == 404,
                   what="CRD gone")
        eventually(lambda: answers[-1] == 404, what="the kind no longer served")
    finally:
        done.set()
        creator.join()
    assert set(answers) <= {201, 403, 404}, answers
    create_crd(http, B, open_crd("ratchets", "Ratchet"))
    assert http.get(items).json()["items"] == []
    assert http.delete(url(B, f"{CRDS}/{name}")).status_code == 200


def test_watches_of_the_kind_end_when_its_crd_goes(kplane: KplaneProcess,
                                                   http: httpx.Client) -> None:
    name = f"cogs.{GROUP}"
    create_crd(http, B, open_crd("cogs", "Cog"))
    items = url(B, f"apis/{GROUP}/v1/namespaces/default/cogs")
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Cog", "metadata": {"name": "c1"}}
    assert http.post(items, json=body).status_code == 201
    seen: list[tuple[str, str]] = []
    # The server would end this watch after ten minutes; the client's read timeout (10 s)
    # fails the test if the CRD's deletion does not end it first.
    with kplane.client() as watching, watching.stream(
            "GET", items, params={"watch": "1", "timeoutSeconds": "600"}) as stream:
        assert stream.status_code == 200
        assert http.delete(url(B, f"{CRDS}/{name}")).status_code == 200
        for line in stream.iter_lines():
            if line:
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"]["name"]))
    assert seen == [("ADDED", "c1"), ("DELETED", "c1")]
    assert http.get(url(B, f"{CRDS}/{name}")).status_code == 404


# Versions: storedVersions and the requested apiVersion -----------------------------------------


def test_stored_versions_follow_the_storage_version_and_guard_removal(
        kplane: KplaneProcess, http: httpx.Client) -> None:
    name = f"gears.{GROUP}"
    crd_url = url(B, f"{CRDS}/{name}")
    created = create_crd(http, B, open_crd("gears", "Gear", "v1", "v2", storage="v1"))
    assert created["status"]["storedVersions"] == ["v1"]

    def items(version: str) -> str:
        return url(B, f"apis/{GROUP}/{version}/namespaces/default/gears")

    def gear(version: str, item: str) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/{version}", "kind": "Gear", "metadata": {"name": item}}

    assert http.post(items("v1"), json=gear("v1", "g1")).status_code == 201
    switched = http.patch(crd_url, headers=JSON_PATCH, json=[
        {"op": "replace", "path": "/spec/versions/0/storage", "value": False},
        {"op": "replace", "path": "/spec/versions/1/storage", "value": True}])
    assert switched.status_code == 200, switched.text
    assert switched.json()["status"]["storedVersions"] == ["v1", "v2"]
    assert http.get(crd_url).json()["status"]["storedVersions"] == ["v1", "v2"]

    def stored_in_v2() -> bool:
        created = http.post(items("v2"), json=gear("v2", "probe"))
        if created.status_code == 201:
            http.delete(f"{items('v2')}/probe")
        return created.status_code == 201

    eventually(stored_in_v2, what="v2 the storage version")
    assert http.post(items("v2"), json=gear("v2", "g2")).status_code == 201

    removed = http.patch(crd_url, headers=JSON_PATCH,
                         json=[{"op": "remove", "path": "/spec/versions/0"}])
    assert removed.status_code == 422, removed.text
    assert ("status.storedVersions[0]",
            'Invalid value: "v1": missing from spec.versions; v1 was previously a storage '
            "version, and must remain in spec.versions until a storage migration ensures no "
            "data remains persisted in v1 and removes v1 from status.storedVersions"
            ) in causes(removed)

    # A storage migration (kube-storage-version-migrator's last step) lets v1 go.
    migrated = http.patch(f"{crd_url}/status", headers=MERGE,
                          json={"status": {"storedVersions": ["v2"]}})
    assert migrated.status_code == 200, migrated.text
    v3 = {"name": "v3", "served": True, "storage": False,
          "schema": created["spec"]["versions"][0]["schema"]}
    replaced = http.patch(crd_url, headers=JSON_PATCH, json=[
        {"op": "remove", "path": "/spec/versions/0"},
        {"op": "add", "path": "/spec/versions/-", "value": v3}])
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["status"]["storedVersions"] == ["v2"]
    last = http.patch(crd_url, headers=JSON_PATCH,
                      json=[{"op": "remove", "path": "/spec/versions/0"}])
    assert last.status_code == 422, last.text
    assert "status.storedVersions[0]" in {field for field, _ in causes(last)}
    eventually(lambda: http.get(items("v3")).status_code == 200, what="v3 served")
    assert http.get(items("v1")).status_code == 404

    # g1 is still stored as v1, g2 as v2: each read answers in the version asked for.
    for version in ("v2", "v3"):
        for item in ("g1", "g2"):
            got = http.get(f"{items(version)}/{item}")
            assert got.json()["apiVersion"] == f"{GROUP}/{version}", got.text
        listed = http.get(items(version)).json()
        assert listed["apiVersion"] == f"{GROUP}/{version}"
        assert {i["apiVersion"] for i in listed["items"]} == {f"{GROUP}/{version}"}
        assert {i["metadata"]["name"] for i in listed["items"]} == {"g1", "g2"}
    with http.stream("GET", items("v3"), params={"watch": "1", "timeoutSeconds": "5"}) as stream:
        added = []
        for line in stream.iter_lines():
            if line:
                added.append(json.loads(line)["object"]["apiVersion"])
            if len(added) == 2:
                break
    assert added == [f"{GROUP}/v3", f"{GROUP}/v3"]
    by_kubectl = kplane.kubectl_json("get", f"gears.v3.{GROUP}", "g1", "-n", "default",
                                     "--server", f"{kplane.url}/clusters/{B}")
    assert by_kubectl["apiVersion"] == f"{GROUP}/v3"
    assert http.delete(crd_url).status_code == 200
