"""The objects the scenarios work on, created in kplane before anything is measured.

One namespace per scenario keeps them from disturbing each other: ``bench-list`` holds
exactly the objects the LIST returns, the CREATE scenario's thousands of new objects land
in ``bench-create``, and a watch on ``bench-watch`` sees only the writer's events.
Every object is the same small ConfigMap (a few keys, a properties file), about the size
of a typical one, so GET, LIST, CREATE and the SQLite ceiling move comparable bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.ceilings import CapturedResponse, replayable_headers, save_responses
from bench.http1 import Endpoint
from bench.servers import SyncClient

GET_NAMESPACE = "bench-get"
LIST_NAMESPACE = "bench-list"
CREATE_NAMESPACE = "bench-create"
UPDATE_NAMESPACE = "bench-update"
WATCH_NAMESPACE = "bench-watch"
NAMESPACES = (GET_NAMESPACE, LIST_NAMESPACE, CREATE_NAMESPACE, UPDATE_NAMESPACE, WATCH_NAMESPACE)

GET_NAME = "bench-object"
UPDATE_PREFIX = "update-"


def configmaps_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


GET_PATH = f"{configmaps_path(GET_NAMESPACE)}/{GET_NAME}"
# What kubectl sends for `kubectl get configmaps` (it pages by 500).
LIST_PATH = f"{configmaps_path(LIST_NAMESPACE)}?limit=500"


def configmap(name: str, namespace: str, *, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The benchmark's ConfigMap; ``extra`` adds data keys (a sequence, a send time)."""
    data = {
        "mode": "benchmark",
        "replicas": "3",
        "owner": "team-performance",
        "app.properties": "greeting=hello\ncolor=blue\nretries=5\ntimeout=30s\n",
    }
    data.update(extra or {})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "data": data,
    }


def template(body: dict[str, Any]) -> str:
    """A JSON body with ``{placeholders}`` the load generator fills in per request.

    JSON leaves braces inside strings alone, so placeholders survive encoding.
    """
    return orjson.dumps(body).decode()


def create_template(namespace: str) -> str:
    return template(configmap("{name}", namespace))


def update_template(namespace: str) -> str:
    body = configmap("{name}", namespace, extra={"sequence": "{sequence}"})
    body["metadata"]["resourceVersion"] = "{resourceVersion}"
    return template(body)


def watch_writer_template(namespace: str) -> str:
    return template(configmap("{name}", namespace, extra={"sent": "{sent}"}))


@dataclass(frozen=True, slots=True)
class Fixtures:
    """What setup produced: the captured responses for the ceiling app, a stored object."""

    responses_path: Path
    stored_object: bytes
    update_objects: int


def prepare(
    endpoint: Endpoint, *, list_size: int, update_objects: int, responses_path: Path
) -> Fixtures:
    """Create the namespaces and objects, and capture the GET and LIST responses."""
    with SyncClient(endpoint) as client:
        for namespace in NAMESPACES:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            client.expect("POST", "/api/v1/namespaces", body, ok=(201, 409))
        stored = client.expect("POST", configmaps_path(GET_NAMESPACE),
                               configmap(GET_NAME, GET_NAMESPACE), ok=(201,))
        _create_many(client, LIST_NAMESPACE, (f"item-{i}" for i in range(list_size)))
        _create_many(client, UPDATE_NAMESPACE,
                     (f"{UPDATE_PREFIX}{i}" for i in range(update_objects)))
        responses = {path: _capture(client, path) for path in (GET_PATH, LIST_PATH)}
    _check_list_size(responses[LIST_PATH], list_size)
    save_responses(responses_path, responses)
    return Fixtures(responses_path=responses_path, stored_object=stored,
                    update_objects=update_objects)


def _create_many(client: SyncClient, namespace: str, names: Any) -> None:
    for name in names:
        client.expect("POST", configmaps_path(namespace), configmap(name, namespace), ok=(201,))


def _capture(client: SyncClient, path: str) -> CapturedResponse:
    status, headers, body = client.request("GET", path)
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status}: {body[:500]!r}")
    return CapturedResponse(status=status, headers=replayable_headers(headers), body=body)


def _check_list_size(response: CapturedResponse, expected: int) -> None:
    items = orjson.loads(response.body).get("items") or []
    if len(items) != expected:
        raise RuntimeError(f"LIST returned {len(items)} objects, expected {expected}")


def current_resource_version(endpoint: Endpoint, namespace: str) -> str:
    """The list resourceVersion of a namespace's ConfigMaps: a watch from it sees only news."""
    with SyncClient(endpoint) as client:
        body = client.expect("GET", configmaps_path(namespace), ok=(200,))
    version: str = orjson.loads(body)["metadata"]["resourceVersion"]
    return version
