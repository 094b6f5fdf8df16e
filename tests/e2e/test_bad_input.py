"""Bad input gets a clear 4xx Status and changes nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.e2e.server import KplaneProcess

# Storage-independent API behaviour: runs on SQLite and on etcd (see conftest.py).
pytestmark = pytest.mark.both_backends

CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as client:
        yield client


def _snapshot(http: httpx.Client) -> list[tuple[str, str]]:
    items = http.get("/api/v1/configmaps").json()["items"]
    return sorted((i["metadata"]["name"], i["metadata"]["resourceVersion"]) for i in items)


def _assert_status(response: httpx.Response, code: int, *words: str) -> dict[str, object]:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["code"] == code
    for word in words:
        assert word in body["message"], body["message"]
    return dict(body)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers", "code", "words"),
    [
        (b"{not json", JSON, 400, ("not valid JSON",)),
        (b"", JSON, 400, ("empty",)),
        (b"[1, 2]", JSON, 400, ("object",)),
        (b"key: [unclosed", {"content-type": "application/yaml"}, 400, ("YAML",)),
        (b"a: &x [1]\nb: *x\n", {"content-type": "application/yaml"}, 400, ("alias",)),
        (b"\xff\xfe\x00garbage", {"content-type": "application/yaml"}, 400, ("UTF-8",)),
        (b"[" * 5000 + b"]" * 5000, JSON, 400, ()),
        (b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}', JSON, 400,
         ("kind",)),
        (b'{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}', JSON, 400,
         ("API version",)),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":5}}',
         JSON, 400, ("data",)),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":"oops"}', JSON, 400, ()),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}',
         JSON, 400, ("namespace",)),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}', JSON, 422,
         ("is invalid", "metadata.name")),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"../etc"}}', JSON, 422,
         ("is invalid",)),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":'
         b'{"bad key!":"v"}}}', JSON, 422, ("metadata.labels",)),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}', JSON, 422,
         ("name or generateName is required",)),
        (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}',
         {"content-type": "text/plain"}, 415, ("unknown format",)),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: inf, generation: .inf}\n",
         {"content-type": "application/yaml"}, 400, ("'.inf'", "not a finite number")),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nan}\ndata: {}\nx: [.nan]\n",
         {"content-type": "application/yaml"}, 400, ("'.nan'", "not a finite number")),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, generation: 1.0e+999}\n",
         {"content-type": "application/yaml"}, 400, ("not a finite number",)),
    ],
)
def test_bad_create_bodies(http: httpx.Client, body: bytes, headers: dict[str, str],
                           code: int, words: tuple[str, ...]) -> None:
    before = _snapshot(http)
    response = http.post(CM, content=body, headers=headers)
    _assert_status(response, code, *words)
    assert _snapshot(http) == before


def test_strict_field_validation_names_every_unknown_field(http: httpx.Client) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"},
            "spec": {"x": 1}, "bogus": True}
    response = http.post(CM, json=body, params={"fieldValidation": "Strict"})
    status = _assert_status(response, 400, 'unknown field "bogus"', 'unknown field "spec"')
    assert status["reason"] == "BadRequest"
    warned = http.post(CM, json={**body, "metadata": {"name": "warned"}})
    assert warned.status_code == 201
    assert any("unknown field" in v for v in warned.headers.get_list("warning"))
    assert "bogus" not in warned.json()


def test_body_over_three_mebibytes_is_413(http: httpx.Client) -> None:
    big = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"' \
        + b"x" * (3 * 1024 * 1024 + 10) + b'"}}'
    before = _snapshot(http)
    _assert_status(http.post(CM, content=big, headers=JSON), 413)
    assert _snapshot(http) == before


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"labelSelector": "a in (b"}, 400),
        ({"labelSelector": "!!!"}, 400),
        ({"labelSelector": "x" * 20000}, 400),
        ({"fieldSelector": "spec.nope=1"}, 400),
        ({"fieldSelector": "metadata.name"}, 400),
        ({"limit": "-1"}, 400),
        ({"limit": "ten"}, 400),
        ({"continue": "garbage!!"}, 400),
        ({"continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiIuLi8ifQ"}, 400),
        ({"resourceVersion": "abc"}, 400),
        ({"resourceVersion": "-5"}, 400),
        ({"resourceVersionMatch": "Exact"}, 400),
        ({"resourceVersion": "0", "resourceVersionMatch": "Exact"}, 400),
        ({"resourceVersion": "1", "resourceVersionMatch": "Sometimes"}, 400),
        ({"limit": "99999999999999999999999"}, 400),
        ({"limit": ""}, 400),
        ({"limit": " 5"}, 400),
        ({"timeoutSeconds": "abc"}, 400),
        ({"timeoutSeconds": "99999999999999999999"}, 400),
        ({"timeoutSeconds": "1.5"}, 400),
    ],
)
def test_bad_list_parameters(http: httpx.Client, params: dict[str, str], code: int) -> None:
    _assert_status(http.get(CM, params=params), code)


def test_a_garbage_watch_flag_is_true_as_upstream_converts_it(http: httpx.Client) -> None:
    http.post(CM, json={"metadata": {"name": "watched"}})
    response = http.get(CM, params={"watch": "maybe", "timeoutSeconds": "1",
                                    "fieldSelector": "metadata.name=watched"})
    assert response.status_code == 200, response.text
    [event] = [line for line in response.text.splitlines() if line]
    assert '"type":"ADDED"' in event and '"name":"watched"' in event


def test_yaml_list_reads_back_as_the_json_list(http: httpx.Client) -> None:
    data = {"n": "1", "b": "true", "z": "null", "t": "2024-01-02T03:04:05Z",
            "u": "caf\u00e9 \u2603", "script": "#!/bin/sh\necho hi\n"}
    http.post(CM, json={"metadata": {"name": "yaml-list"}, "data": data})
    as_json = http.get(CM).json()
    as_yaml = http.get(CM, headers={"accept": "application/yaml"})
    assert as_yaml.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(as_yaml.content) == as_json
    # Strings that look like other types stay quoted strings.
    assert "b: 'true'\n" in as_yaml.text and "n: '1'\n" in as_yaml.text


@pytest.mark.parametrize(
    ("body", "params", "code", "words"),
    [
        (b'{"kind":"DeleteOptions","apiVersion":"v1","preconditions":"x"}', {}, 400,
         ("DeleteOptions.preconditions", "v1.Preconditions")),
        (b'{"kind":"DeleteOptions","apiVersion":"v1","preconditions":["x"]}', {}, 400,
         ("DeleteOptions.preconditions", "v1.Preconditions")),
        (b'{"preconditions":{"uid":5}}', {}, 400, ("preconditions.uid", "types.UID")),
        (b'{"preconditions":{"resourceVersion":true}}', {}, 400,
         ("preconditions.resourceVersion", "string")),
        (b'{"gracePeriodSeconds":"abc"}', {}, 400, ("gracePeriodSeconds", "int64")),
        (b'{"gracePeriodSeconds":1.5}', {}, 400, ("gracePeriodSeconds", "int64")),
        (b'{"orphanDependents":"true"}', {}, 400, ("orphanDependents", "bool")),
        (b'{"propagationPolicy":3}', {}, 400, ("propagationPolicy",)),
        (b'{"dryRun":"All"}', {}, 400, ("dryRun", "[]string")),
        (b'{"kind":"Pod","apiVersion":"v1"}', {}, 400, ('no kind "Pod"',)),
        (b"[1]", {}, 400, ("DeleteOptions",)),
        (b"preconditions: x\n", {}, 400, ("DeleteOptions.preconditions",)),
        (None, {"gracePeriodSeconds": "abc"}, 400, ("gracePeriodSeconds",)),
        (None, {"gracePeriodSeconds": "99999999999999999999"}, 400, ("gracePeriodSeconds",)),
        (b'{"propagationPolicy":"Sideways"}', {}, 422, ("propagationPolicy",)),
        (b'{"orphanDependents":true,"propagationPolicy":"Orphan"}', {}, 422,
         ("cannot be both set",)),
        (b'{"dryRun":["All","Maybe"]}', {}, 422, ("dryRun",)),
        (None, {"dryRun": "Maybe"}, 422, ("dryRun",)),
    ],
)
def test_bad_delete_options_delete_nothing(http: httpx.Client, body: bytes | None,
                                           params: dict[str, str], code: int,
                                           words: tuple[str, ...]) -> None:
    http.post(CM, json={"metadata": {"name": "keep-me"}})
    before = _snapshot(http)
    assert ("keep-me", http.get(f"{CM}/keep-me").json()["metadata"]["resourceVersion"]) in before
    content_type = ("application/yaml" if body and body.startswith(b"preconditions")
                    else "application/json")
    headers = {"content-type": content_type}
    one = http.request("DELETE", f"{CM}/keep-me", content=body, params=params, headers=headers)
    status = _assert_status(one, code, *words)
    assert status["reason"] == ("BadRequest" if code == 400 else "Invalid")
    every = http.request("DELETE", CM, content=body, params=params, headers=headers)
    _assert_status(every, code, *words)
    assert _snapshot(http) == before


def test_negative_grace_period_deletes_at_once(http: httpx.Client) -> None:
    # Upstream turns a negative grace period into 1 s; ConfigMaps are not deleted
    # gracefully, so the object is simply gone.
    http.post(CM, json={"metadata": {"name": "grace"}})
    response = http.delete(f"{CM}/grace", params={"gracePeriodSeconds": "-10"})
    assert response.status_code == 200 and response.json()["status"] == "Success"
    assert http.get(f"{CM}/grace").status_code == 404


def test_unknown_paths_and_methods(http: httpx.Client) -> None:
    _assert_status(http.get("/api/v1/pods"), 404)
    _assert_status(http.get("/apis/nope.example.com/v1/things"), 404)
    _assert_status(http.get("/api/v1/namespaces/default/namespaces"), 404)
    _assert_status(http.delete("/api/v1/namespaces"), 405)
    _assert_status(http.get("/api/v1/namespaces/default/configmaps/missing"), 404,
                   'configmaps "missing" not found')


def test_unauthenticated_requests_are_401(kplane: KplaneProcess) -> None:
    with kplane.client(with_client_cert=False) as anonymous:
        _assert_status(anonymous.get(CM), 401)
        assert anonymous.get("/readyz").status_code == 200


def test_patch_errors(http: httpx.Client) -> None:
    http.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "patchme"}, "data": {"a": "1"}})
    url = f"{CM}/patchme"
    _assert_status(http.patch(url, content=b'{"data":{}}',
                              headers={"content-type": "application/json"}), 415)
    _assert_status(http.patch(url, content=b"{}",
                              headers={"content-type": "application/json-patch+json"}), 400)
    ops = b"[" + b",".join([b'{"op":"add","path":"/data/x","value":"y"}'] * 10001) + b"]"
    _assert_status(http.patch(url, content=ops,
                              headers={"content-type": "application/json-patch+json"}), 413)
    _assert_status(http.patch(url, content=b'{"data":{"a":"2"}}', params={"force": "true"},
                              headers={"content-type": "application/merge-patch+json"}), 422)
    _assert_status(http.patch(url, content=b'{"apiVersion":"v1","kind":"ConfigMap"}',
                              headers={"content-type": "application/apply-patch+yaml"}), 422,
                   "fieldManager")
    assert http.get(url).json()["data"] == {"a": "1"}
