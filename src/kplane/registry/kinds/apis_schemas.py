"""Schemas of kcp's ``apis.kcp.io`` kinds: APIResourceSchema, APIExport, APIBinding and
APIExportEndpointSlice.

Written here in the structural-schema form a CRD would use, with kcp's field names, one
schema per served version (APIExport and APIBinding are served as ``v1alpha1`` and
``v1alpha2``). The same schemas prune and type-check writes, drive server-side apply and
are published in ``/openapi/v3``. Rules a schema cannot say (names matching the spec,
immutability, claims) live in :mod:`kplane.registry.kinds.apis`.
"""

from __future__ import annotations

from typing import Any

_STRING: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_INT: dict[str, Any] = {"type": "integer"}
_STRINGS: dict[str, Any] = {"type": "array", "items": _STRING}
_STRING_SET: dict[str, Any] = {**_STRINGS, "x-kubernetes-list-type": "set"}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}

GROUP_PATTERN = r"^(|[a-z0-9]([-a-z0-9]*[a-z0-9](\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?)$"
CLAIM_RESOURCE_PATTERN = r"^[a-z][-a-z0-9]*[a-z0-9](/[a-z][-a-z0-9]*[a-z0-9])?$"
CLUSTER_PATH_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

_CONDITIONS: dict[str, Any] = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": {
        "type": "object",
        "required": ["type", "status", "lastTransitionTime"],
        "properties": {
            "type": _STRING, "status": _STRING, "severity": _STRING,
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": _STRING, "message": _STRING,
        },
    },
}

_LABEL_SELECTOR_PROPERTIES: dict[str, Any] = {
    "matchLabels": {"type": "object", "additionalProperties": _STRING},
    "matchExpressions": {
        "type": "array", "x-kubernetes-list-type": "atomic",
        "items": {"type": "object", "required": ["key", "operator"],
                  "properties": {"key": _STRING, "operator": _STRING,
                                 "values": {**_STRINGS, "x-kubernetes-list-type": "atomic"}}},
    },
}

_CLAIM_SELECTOR: dict[str, Any] = {
    "type": "object",
    "description": "Which objects of the claimed resource are shared: matchAll, or a label "
                   "selector.",
    "x-kubernetes-map-type": "atomic",
    "properties": {**_LABEL_SELECTOR_PROPERTIES,
                   "matchAll": {**_BOOL, "description": "All objects of the resource."}},
}

_GROUP_RESOURCE_PROPERTIES: dict[str, Any] = {
    "group": {"type": "string", "pattern": GROUP_PATTERN,
              "description": "API group of the claimed resource; empty for core."},
    "resource": {"type": "string", "maxLength": 127, "pattern": CLAIM_RESOURCE_PATTERN,
                 "description": "The claimed resource (plural), e.g. secrets."},
    "identityHash": {"type": "string",
                     "description": "Identity hash of the APIExport that provides the "
                                    "resource; empty for built-in resources."},
}

_V1ALPHA1_RESOURCE_SELECTOR: dict[str, Any] = {
    "type": "array",
    "description": "Claimed objects by name and/or namespace (kplane supports only all).",
    "items": {"type": "object", "properties": {"name": _STRING, "namespace": _STRING}},
}

# A claim as an APIExport asks for it.
_V1ALPHA2_CLAIM: dict[str, Any] = {
    "type": "object",
    "required": ["resource", "verbs"],
    "properties": {
        **_GROUP_RESOURCE_PROPERTIES,
        "verbs": {**_STRING_SET, "minItems": 1,
                  "description": "Verbs the provider may use on the resource; * for all."},
    },
}
_V1ALPHA1_CLAIM: dict[str, Any] = {
    "type": "object",
    "required": ["resource"],
    "properties": {
        **_GROUP_RESOURCE_PROPERTIES,
        "all": {**_BOOL, "description": "Claims all objects of the resource."},
        "resourceSelector": _V1ALPHA1_RESOURCE_SELECTOR,
    },
}
_V1ALPHA2_EXPORT_CLAIM: dict[str, Any] = {
    **_V1ALPHA2_CLAIM,
    "properties": {
        **_V1ALPHA2_CLAIM["properties"],
        "defaultSelector": {**_CLAIM_SELECTOR,
                            "description": "Selector bindings created from a WorkspaceType's "
                                           "defaultAPIBindings use; matchAll when unset."},
    },
}
_V1ALPHA2_SCOPED_CLAIM: dict[str, Any] = {
    **_V1ALPHA2_CLAIM,
    "required": ["resource", "verbs", "selector"],
    "properties": {**_V1ALPHA2_CLAIM["properties"], "selector": _CLAIM_SELECTOR},
}
_STATE: dict[str, Any] = {"type": "string", "enum": ["Accepted", "Rejected"],
                          "description": "Whether the consumer accepts the claim."}


def _claims(item: dict[str, Any], keys: list[str], description: str) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": item,
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys}


def _object(kind: str, spec: dict[str, Any], status: dict[str, Any] | None,
            description: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string", "description": f"Always {kind}."},
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    return {"type": "object", "description": description, "properties": properties}


# --- APIResourceSchema ---------------------------------------------------------------------

_PRINTER_COLUMN: dict[str, Any] = {
    "type": "object",
    "required": ["name", "type", "jsonPath"],
    "properties": {"name": _STRING, "type": _STRING, "format": _STRING,
                   "description": _STRING, "priority": {**_INT, "format": "int32"},
                   "jsonPath": _STRING},
}

API_RESOURCE_SCHEMA_SCHEMA = _object(
    "APIResourceSchema",
    {
        "type": "object",
        "required": ["group", "names", "scope", "versions"],
        "properties": {
            "group": {"type": "string",
                      "description": "API group of the resource; empty for the core group."},
            "names": {
                "type": "object",
                "required": ["plural", "singular", "kind", "listKind"],
                "properties": {"plural": _STRING, "singular": _STRING, "kind": _STRING,
                               "listKind": _STRING, "shortNames": _STRINGS,
                               "categories": _STRINGS},
            },
            "scope": {"type": "string", "enum": ["Cluster", "Namespaced"]},
            "nameValidation": {"type": "string", "default": "DNS1123Subdomain",
                               "enum": ["DNS1123Subdomain", "PathSegmentName"],
                               "description": "How names of bound objects are validated."},
            "conversion": {
                "type": "object",
                "required": ["strategy"],
                "properties": {"strategy": _STRING,
                               "webhook": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}},
            },
            "versions": {
                "type": "array",
                "minItems": 1,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "required": ["name", "schema", "served", "storage"],
                    "properties": {
                        "name": _STRING,
                        "served": {**_BOOL, "default": True},
                        "storage": _BOOL,
                        "deprecated": _BOOL,
                        "deprecationWarning": _STRING,
                        "schema": {"type": "object",
                                   "description": "The structural schema of this version "
                                                  "(a CRD version's openAPIV3Schema).",
                                   "x-kubernetes-map-type": "atomic",
                                   "x-kubernetes-preserve-unknown-fields": True},
                        "subresources": {
                            "type": "object",
                            "properties": {
                                "status": _ANY_OBJECT,
                                "scale": {"type": "object",
                                          "required": ["specReplicasPath",
                                                       "statusReplicasPath"],
                                          "properties": {"specReplicasPath": _STRING,
                                                         "statusReplicasPath": _STRING,
                                                         "labelSelectorPath": _STRING}},
                            },
                        },
                        "additionalPrinterColumns": {
                            "type": "array", "items": _PRINTER_COLUMN,
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                        },
                    },
                },
            },
        },
    },
    None,
    "An APIResourceSchema describes one resource (group, names, scope, versions with their "
    "schemas) an APIExport can offer. It is immutable; its name is "
    "<prefix>.<plural>.<group>.",
)

# --- APIExport -----------------------------------------------------------------------------

_IDENTITY: dict[str, Any] = {
    "type": "object",
    "description": "The Secret whose 'key' determines the export's identity (defaulted to "
                   "kcp-system/<export name>).",
    "properties": {
        "secretRef": {"type": "object", "x-kubernetes-map-type": "atomic",
                      "properties": {"namespace": _STRING, "name": _STRING}},
    },
}
_MAXIMAL_PERMISSION_POLICY: dict[str, Any] = {
    "type": "object",
    "description": "An upper bound on what consumers may do with the exported resources.",
    "properties": {"local": _ANY_OBJECT},
}
_EXPORT_STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "identityHash": {"type": "string",
                         "description": "Hex SHA-256 of the identity key; immutable once "
                                        "set."},
        "conditions": _CONDITIONS,
        "virtualWorkspaces": {
            "type": "array",
            "description": "Deprecated: use APIExportEndpointSlice.status.endpoints.",
            "items": {"type": "object", "required": ["url"], "properties": {"url": _STRING}},
        },
    },
}
_RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["group", "name", "schema"],
    "properties": {
        "group": {"type": "string", "description": "API group; empty for core."},
        "name": {"type": "string", "maxLength": 127,
                 "description": "The resource (plural name)."},
        "schema": {"type": "string",
                   "description": "Name of the APIResourceSchema, "
                                  "<prefix>.<name>.<group>."},
        "storage": {
            "type": "object",
            "default": {"crd": {}},
            "description": "How the resource is stored: exactly one of crd or virtual.",
            "properties": {
                "crd": _ANY_OBJECT,
                "virtual": {
                    "type": "object",
                    "properties": {
                        "reference": {"type": "object", "x-kubernetes-map-type": "atomic",
                                      "properties": {"apiGroup": _STRING, "kind": _STRING,
                                                     "name": _STRING}},
                    },
                },
            },
        },
    },
}

API_EXPORT_SCHEMA = _object(
    "APIExport",
    {
        "type": "object",
        "properties": {
            "resources": {
                "type": "array",
                "description": "The APIResourceSchemas this export offers.",
                "items": _RESOURCE_SCHEMA,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "group"],
            },
            "identity": _IDENTITY,
            "maximalPermissionPolicy": _MAXIMAL_PERMISSION_POLICY,
            "permissionClaims": _claims(
                _V1ALPHA2_EXPORT_CLAIM, ["group", "resource"],
                "Resources beyond the exported ones the provider asks consumers to share."),
        },
    },
    _EXPORT_STATUS,
    "An APIExport offers APIs (APIResourceSchemas) to other workspaces, which use them "
    "through APIBindings.",
)

API_EXPORT_V1ALPHA1_SCHEMA = _object(
    "APIExport",
    {
        "type": "object",
        "properties": {
            "latestResourceSchemas": {
                **_STRING_SET,
                "description": "Names of the APIResourceSchemas this export offers.",
            },
            "identity": _IDENTITY,
            "maximalPermissionPolicy": _MAXIMAL_PERMISSION_POLICY,
            "permissionClaims": _claims(
                _V1ALPHA1_CLAIM, ["group", "resource"],
                "Resources beyond the exported ones the provider asks consumers to share."),
        },
    },
    _EXPORT_STATUS,
    "An APIExport offers APIs (APIResourceSchemas) to other workspaces, which use them "
    "through APIBindings.",
)

# --- APIBinding ----------------------------------------------------------------------------

_REFERENCE: dict[str, Any] = {
    "type": "object",
    "description": "The APIExport to bind; immutable.",
    "required": ["export"],
    "properties": {
        "export": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "path": {"type": "string", "pattern": CLUSTER_PATH_PATTERN,
                         "description": "Workspace path or logical cluster of the export; "
                                        "empty for the binding's own workspace."},
                "name": {"type": "string", "description": "Name of the APIExport."},
            },
        },
    },
}
_BOUND_RESOURCES: dict[str, Any] = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["group", "resource"],
    "items": {
        "type": "object",
        "required": ["group", "resource"],
        "properties": {
            "group": _STRING,
            "resource": _STRING,
            "schema": {"type": "object", "required": ["name", "UID", "identityHash"],
                       "properties": {"name": _STRING, "UID": _STRING,
                                      "identityHash": _STRING}},
            "names": {"type": "object",
                      "properties": {"singular": _STRING, "shortNames": _STRINGS,
                                     "kind": _STRING, "listKind": _STRING}},
            "storageVersions": _STRING_SET,
        },
    },
}
_PHASE: dict[str, Any] = {"type": "string", "enum": ["", "Binding", "Bound"],
                          "description": '"" (new), Binding, then Bound.'}


def _binding_status(applied_claim: dict[str, Any], export_claim: dict[str, Any],
                    ) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "apiExportClusterName": {"type": "string",
                                     "description": "Logical cluster of the bound export."},
            "boundResources": _BOUND_RESOURCES,
            "phase": _PHASE,
            "conditions": _CONDITIONS,
            "appliedPermissionClaims": {"type": "array", "items": applied_claim},
            "exportPermissionClaims": {"type": "array", "items": export_claim},
        },
    }


API_BINDING_SCHEMA = _object(
    "APIBinding",
    {
        "type": "object",
        "required": ["reference"],
        "properties": {
            "reference": _REFERENCE,
            "permissionClaims": _claims(
                {**_V1ALPHA2_SCOPED_CLAIM,
                 "required": [*_V1ALPHA2_SCOPED_CLAIM["required"], "state"],
                 "properties": {**_V1ALPHA2_SCOPED_CLAIM["properties"], "state": _STATE}},
                ["group", "resource", "identityHash"],
                "The consumer's answers to the export's permission claims."),
        },
    },
    _binding_status(_V1ALPHA2_SCOPED_CLAIM, _V1ALPHA2_CLAIM),
    "An APIBinding makes the APIs of an APIExport available in this workspace.",
)

API_BINDING_V1ALPHA1_SCHEMA = _object(
    "APIBinding",
    {
        "type": "object",
        "required": ["reference"],
        "properties": {
            "reference": _REFERENCE,
            "permissionClaims": {
                "type": "array",
                "description": "The consumer's answers to the export's permission claims.",
                "items": {**_V1ALPHA1_CLAIM, "required": ["resource", "state"],
                          "properties": {**_V1ALPHA1_CLAIM["properties"], "state": _STATE}},
            },
        },
    },
    _binding_status(_V1ALPHA1_CLAIM, _V1ALPHA1_CLAIM),
    "An APIBinding makes the APIs of an APIExport available in this workspace.",
)

# --- APIExportEndpointSlice ----------------------------------------------------------------

API_EXPORT_ENDPOINT_SLICE_SCHEMA = _object(
    "APIExportEndpointSlice",
    {
        "type": "object",
        "required": ["export"],
        "properties": {
            "export": {
                "type": "object",
                "description": "The APIExport whose endpoints are listed; immutable.",
                "required": ["name"],
                "properties": {
                    "path": {"type": "string", "pattern": CLUSTER_PATH_PATTERN,
                             "description": "Workspace path of the export; empty for this "
                                            "workspace."},
                    "name": {"type": "string", "description": "Name of the APIExport."},
                },
            },
            "partition": {"type": "string",
                          "description": "A Partition filtering the endpoints (optional)."},
        },
    },
    {
        "type": "object",
        "properties": {
            "conditions": _CONDITIONS,
            "endpoints": {
                "type": "array",
                "description": "URLs of the export's virtual workspace.",
                "items": {"type": "object", "required": ["url"],
                          "properties": {"url": _STRING}},
            },
            "shardSelector": _STRING,
        },
    },
    "An APIExportEndpointSlice lists the URLs of an APIExport's virtual workspace.",
)
