"""Schemas of kcp's tenancy kinds: Workspace, WorkspaceType and LogicalCluster.

These kinds are not in upstream Kubernetes, so their schemas are written here, in the
structural-schema form a CRD would use, with kcp's field names. The same schemas validate
writes, drive server-side apply and are published in ``/openapi/v3``.
"""

from __future__ import annotations

from typing import Any

_STRING: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_STRINGS: dict[str, Any] = {"type": "array", "items": _STRING}

_TYPE_REFERENCE: dict[str, Any] = {
    "type": "object",
    "description": "A WorkspaceType by name and the path of the workspace that defines it.",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "description": "Name of the WorkspaceType."},
        "path": {"type": "string",
                 "description": "Path of the workspace holding the WorkspaceType "
                                "(defaults to the workspace that uses it, then root)."},
    },
}

_CONDITIONS: dict[str, Any] = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": _STRING, "status": _STRING, "severity": _STRING,
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": _STRING, "message": _STRING,
        },
    },
}

_LABEL_SELECTOR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": _STRING},
        "matchExpressions": {
            "type": "array", "x-kubernetes-list-type": "atomic",
            "items": {"type": "object", "required": ["key", "operator"],
                      "properties": {"key": _STRING, "operator": _STRING,
                                     "values": _STRINGS}},
        },
    },
}


def _object(kind: str, spec: dict[str, Any], status: dict[str, Any], description: str,
            ) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string", "description": f"Always {kind}."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


WORKSPACE_SCHEMA = _object(
    "Workspace",
    {
        "type": "object",
        "properties": {
            "type": {**_TYPE_REFERENCE,
                     "description": "The WorkspaceType; immutable. Defaults to the parent "
                                    "type's default child type."},
            "location": {"type": "object", "properties": {"selector": _LABEL_SELECTOR}},
            "cluster": {"type": "string",
                        "description": "The logical cluster this workspace owns; set by "
                                       "the server."},
            "URL": {"type": "string",
                    "description": "The URL of the workspace's Kubernetes API; set by the "
                                   "server."},
        },
    },
    {
        "type": "object",
        "properties": {
            "phase": {"type": "string",
                      "enum": ["Scheduling", "Initializing", "Ready", "Unavailable",
                               "Terminating", "Deleting"]},
            "conditions": _CONDITIONS,
            "initializers": _STRINGS,
        },
    },
    "A Workspace owns one logical cluster: a Kubernetes API of its own, nested in its "
    "parent's path.",
)

WORKSPACE_TYPE_SCHEMA = _object(
    "WorkspaceType",
    {
        "type": "object",
        "properties": {
            "initializer": {**_BOOL,
                            "description": "Workspaces of this type wait in Initializing "
                                           "until this type's initializer removes itself."},
            "terminator": _BOOL,
            "extend": {"type": "object",
                       "properties": {"with": {"type": "array", "items": _TYPE_REFERENCE}}},
            "defaultChildWorkspaceType": _TYPE_REFERENCE,
            "limitAllowedChildren": {
                "type": "object",
                "properties": {"types": {"type": "array", "items": _TYPE_REFERENCE},
                               "none": _BOOL},
            },
            "limitAllowedParents": {
                "type": "object",
                "properties": {"types": {"type": "array", "items": _TYPE_REFERENCE},
                               "none": _BOOL},
            },
            "defaultAPIBindings": {
                "type": "array",
                "items": {"type": "object",
                          "properties": {"path": _STRING, "export": _STRING}},
            },
            "additionalWorkspaceLabels": {"type": "object",
                                          "additionalProperties": _STRING},
        },
    },
    {
        "type": "object",
        "properties": {"URL": _STRING, "conditions": _CONDITIONS},
    },
    "A WorkspaceType says which workspaces may nest where, and how a new one is set up.",
)

LOGICAL_CLUSTER_SCHEMA = _object(
    "LogicalCluster",
    {
        "type": "object",
        "properties": {
            "owner": {
                "type": "object",
                "properties": {"apiVersion": _STRING, "resource": _STRING, "name": _STRING,
                               "cluster": _STRING, "uid": _STRING},
            },
            "initializers": _STRINGS,
            "terminators": _STRINGS,
            "directlyDeletable": _BOOL,
        },
    },
    {
        "type": "object",
        "properties": {
            "phase": {"type": "string",
                      "enum": ["Scheduling", "Initializing", "Ready", "Unavailable"]},
            "URL": _STRING,
            "initializers": _STRINGS,
            "terminators": _STRINGS,
            "conditions": _CONDITIONS,
        },
    },
    "The singleton named 'cluster' in every logical cluster: its owner, phase and "
    "initializers.",
)
