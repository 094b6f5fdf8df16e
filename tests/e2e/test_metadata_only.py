"""Metadata-only clients: what client-go's metadata informers send, against a real server.

They ask for PartialObjectMetadata (one object, watch events) and
PartialObjectMetadataList (lists) with the Accept headers below, protobuf first and plain
JSON last; kplane answers the JSON form, with nothing but each object's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import KplaneProcess

pytestmark = pytest.mark.both_backends

ONE = ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
       "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json")
LIST = ONE.replace("PartialObjectMetadata", "PartialObjectMetadataList")
SECRETS = "/clusters/root/api/v1/namespaces/default/secrets"


@pytest.fixture(scope="module")
def http(kplane: KplaneProcess) -> Iterator[httpx.Client]:
    with kplane.client() as client:
        for name in ("meta-a", "meta-b"):
            created = client.post(SECRETS, json={
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": {"app": "meta"},
                             "finalizers": ["example.com/keep"]},
                "stringData": {"password": "s3cr3t"}})
            assert created.status_code == 201, created.text
        yield client


def test_get_returns_only_the_metadata(http: httpx.Client) -> None:
    response = http.get(f"{SECRETS}/meta-a", headers={"Accept": ONE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "PartialObjectMetadata"
    assert body["apiVersion"] == "meta.k8s.io/v1"
    assert set(body) == {"kind", "apiVersion", "metadata"}
    assert body["metadata"]["labels"] == {"app": "meta"}
    assert body["metadata"]["finalizers"] == ["example.com/keep"]
    assert "s3cr3t" not in response.text and "czNjcjN0" not in response.text


def test_list_returns_a_partial_object_metadata_list(http: httpx.Client) -> None:
    response = http.get(SECRETS, params={"labelSelector": "app=meta", "limit": "1"},
                        headers={"Accept": LIST})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["kind"], body["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert body["metadata"]["resourceVersion"] and body["metadata"]["continue"]
    [item] = body["items"]
    assert item["kind"] == "PartialObjectMetadata"
    assert item["metadata"]["name"] == "meta-a" and "data" not in item


def test_watch_events_carry_partial_objects(http: httpx.Client) -> None:
    listed = http.get(SECRETS, headers={"Accept": LIST}).json()
    revision = listed["metadata"]["resourceVersion"]
    patched = http.patch(f"{SECRETS}/meta-b", json={"metadata": {"labels": {"seen": "yes"}}},
                         headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    params = {"watch": "1", "resourceVersion": revision, "timeoutSeconds": "5",
              "allowWatchBookmarks": "true"}
    with http.stream("GET", SECRETS, params=params, headers={"Accept": ONE}) as stream:
        for line in stream.iter_lines():
            event = json.loads(line)
            if event["type"] == "MODIFIED":
                break
    assert event["object"]["kind"] == "PartialObjectMetadata"
    assert event["object"]["metadata"]["labels"] == {"app": "meta", "seen": "yes"}
    assert "data" not in event["object"]


def test_a_list_kind_for_one_object_is_not_acceptable(http: httpx.Client) -> None:
    only_list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    response = http.get(f"{SECRETS}/meta-a", headers={"Accept": only_list})
    assert response.status_code == 406
    assert response.json()["kind"] == "Status"
