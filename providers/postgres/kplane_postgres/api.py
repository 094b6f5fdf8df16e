"""The API this provider exports: the PostgresInstance schema and the APIExport that offers it.

APIResourceSchemas are immutable, so the schema's name carries a digest of its content
(``v1-<digest>.postgresinstances.<group>``): a provider started with a changed schema
creates a new one and points the export at it, while a restart with the same code finds its
schema already there.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kplane.sdk import Resource
from kplane_postgres.naming import DATABASE_NAME_PATTERN, MAX_IDENTIFIER_BYTES

PLURAL = "postgresinstances"
SINGULAR = "postgresinstance"
KIND = "PostgresInstance"
VERSION = "v1"

SCHEMAS = Resource(group="apis.kcp.io", version="v1alpha1", plural="apiresourceschemas",
                   namespaced=False)
EXPORTS = Resource(group="apis.kcp.io", version="v1alpha2", plural="apiexports",
                   namespaced=False)
ENDPOINT_SLICES = Resource(group="apis.kcp.io", version="v1alpha1",
                           plural="apiexportendpointslices", namespaced=False)
SECRETS = Resource(group="", version="v1", plural="secrets", namespaced=True)

# A DNS-1123 subdomain: what a Secret's name must be.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
EXTENSION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
MAX_EXTENSIONS = 16
MAX_CONNECTION_LIMIT = 10000


def instances(group: str) -> Resource:
    return Resource(group=group, version=VERSION, plural=PLURAL, namespaced=True)


def _spec_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "What database to provision.",
        "properties": {
            "databaseName": {
                "type": "string",
                "description": "Name of the database; derived from the cluster, namespace and "
                               "name when empty. Cannot change once set.",
                "maxLength": MAX_IDENTIFIER_BYTES,
                "pattern": DATABASE_NAME_PATTERN,
                "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "databaseName is immutable"}],
            },
            "secretName": {
                "type": "string",
                "description": "Secret to write the credentials to; default "
                               "<instance name>-postgres.",
                "maxLength": 253,
                "pattern": SECRET_NAME_PATTERN,
            },
            "extensions": {
                "type": "array",
                "description": "Trusted PostgreSQL extensions to create in the database "
                               "(added, never dropped).",
                "maxItems": MAX_EXTENSIONS,
                "x-kubernetes-list-type": "set",
                "items": {"type": "string", "maxLength": MAX_IDENTIFIER_BYTES,
                          "pattern": EXTENSION_NAME_PATTERN},
            },
            "connectionLimit": {
                "type": "integer",
                "description": "Most concurrent connections for the database's role; -1 "
                               "means no limit.",
                "minimum": -1,
                "maximum": MAX_CONNECTION_LIMIT,
            },
        },
    }


def _status_schema() -> dict[str, Any]:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }
    return {
        "type": "object",
        "properties": {
            "database": {"type": "string"},
            "username": {"type": "string"},
            "secretName": {"type": "string"},
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


def schema_spec(group: str) -> dict[str, Any]:
    """The APIResourceSchema spec of PostgresInstance in ``group``."""
    return {
        "group": group,
        "names": {"plural": PLURAL, "singular": SINGULAR, "kind": KIND,
                  "listKind": f"{KIND}List", "shortNames": ["pgi"],
                  "categories": ["databases"]},
        "scope": "Namespaced",
        "versions": [{
            "name": VERSION,
            "served": True,
            "storage": True,
            "schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": _spec_schema(),
                    "status": _status_schema(),
                },
            },
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Ready", "type": "string",
                 "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Database", "type": "string", "jsonPath": ".status.database"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        }],
    }


def schema_name(spec: dict[str, Any]) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    content = hashlib.sha256(canonical).hexdigest()[:10]
    return f"{VERSION}-{content}.{PLURAL}.{spec['group']}"


def schema_object(group: str) -> dict[str, Any]:
    spec = schema_spec(group)
    return {"apiVersion": SCHEMAS.api_version, "kind": "APIResourceSchema",
            "metadata": {"name": schema_name(spec)}, "spec": spec}


def export_spec(group: str, schema: str) -> dict[str, Any]:
    """The APIExport spec: the one resource, and a claim on the consumers' Secrets."""
    return {
        "resources": [{"group": group, "name": PLURAL, "schema": schema,
                       "storage": {"crd": {}}}],
        "permissionClaims": [{"group": "", "resource": "secrets", "verbs": ["*"]}],
    }


def export_object(name: str, group: str, schema: str) -> dict[str, Any]:
    return {"apiVersion": EXPORTS.api_version, "kind": "APIExport",
            "metadata": {"name": name}, "spec": export_spec(group, schema)}
