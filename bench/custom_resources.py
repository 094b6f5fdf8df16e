"""Fixtures for the custom-resource CREATE scenario: a CRD with a schema and CEL rules.

The kind is deliberately realistic rather than trivial: typed fields with formats, enums,
bounds and defaults, a list-map, and two CEL rules, so that the rate measures validation,
pruning and defaulting as users' CRDs exercise them.
"""

from __future__ import annotations

import time
from typing import Any

from bench.fixtures import template
from bench.http1 import Endpoint
from bench.servers import SyncClient

GROUP = "bench.kplane.io"
PLURAL = "widgets"
NAMESPACE = "bench-cr"
CRD_NAME = f"{PLURAL}.{GROUP}"


_OPEN_OBJECT: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _crd() -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["size", "color"],
        "x-kubernetes-validations": [
            {"rule": "self.size <= self.maxSize", "message": "size must not exceed maxSize"},
            {"rule": "!has(self.owner) || self.owner.startsWith('team-')"},
        ],
        "properties": {
            "size": {"type": "integer", "minimum": 0},
            "maxSize": {"type": "integer", "default": 10},
            "color": {"type": "string", "enum": ["red", "green", "blue"]},
            "owner": {"type": "string", "maxLength": 63},
            "id": {"type": "string", "format": "uuid"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"],
                                "properties": {"name": {"type": "string"},
                                               "port": {"type": "integer"}}}},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "properties": {"spec": spec_schema,
                                                  "status": _OPEN_OBJECT}}}}]},
    }


def collection_path() -> str:
    return f"/apis/{GROUP}/v1/namespaces/{NAMESPACE}/{PLURAL}"


def create_template() -> str:
    return template({
        "apiVersion": f"{GROUP}/v1", "kind": "Widget",
        "metadata": {"name": "{name}", "namespace": NAMESPACE, "labels": {"app": "bench"}},
        "spec": {"size": 3, "color": "green", "owner": "team-bench",
                 "id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                 "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
    })


def prepare(endpoint: Endpoint, *, timeout: float = 30.0) -> None:
    """Create the namespace and the CRD, and wait until the kind is served."""
    with SyncClient(endpoint) as client:
        client.expect("POST", "/api/v1/namespaces",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                      ok=(201, 409))
        client.expect("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                      _crd(), ok=(201, 409))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _headers, _body = client.request("GET", collection_path())
            if status == 200:
                return
            time.sleep(0.05)
    raise RuntimeError(f"the {CRD_NAME} kind was not served within {timeout}s")
