"""Field tables for the built-in kinds kplane accepts as protobuf request bodies.

client-go's typed clientset (and so ``kubectl create configmap|secret|role|...`` and
``kubectl create token``) sends ``application/vnd.kubernetes.protobuf`` bodies. The decoder
in :mod:`kplane.apimachinery.protobuf` is generic; this module holds the protocol facts it
needs: for every message, field number -> JSON name, value type and how an empty value
maps to JSON. Numbers and types follow upstream's ``generated.proto`` files; the JSON
names and the zero-value behaviour follow the Go types' ``json`` tags (the proto field
names equal the JSON names except ``BoundObjectReference.uID``).

Each field is written as ``(number, json_name, type)`` or ``(number, json_name, type,
flag)``. A type is a scalar (``string bytes int32 int64 bool``), a well-known
apimachinery type (``Time MicroTime Quantity IntOrString FieldsV1 AttestationValue``) or
a message name qualified by its package (``meta/v1.ObjectMeta``), optionally prefixed by
``[]`` (repeated) or ``map[string]`` (a map keyed by string). Flags:

- ``KEEP``: the Go field is a pointer or has no ``omitempty``, so a zero value sent on the
  wire is part of the JSON form (``"immutable": false``, ``"name": ""``).
- ``NULL``: the Go field (a slice, map or pointer) has no ``omitempty``, so when it is
  absent from the wire the JSON form holds ``null`` (``"rules": null``); implies ``KEEP``.
- ``OMIT``: a ``Time`` with ``omitzero`` (``creationTimestamp``) is left out when zero
  instead of becoming ``null``.

Go always writes non-pointer scalars, so without ``KEEP`` a zero scalar is dropped, just
as ``omitempty`` drops it from the JSON form.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class Kind(enum.Enum):
    """What a single wire value turns into."""

    STRING = "string"
    BYTES = "bytes"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    TIME = "Time"
    MICRO_TIME = "MicroTime"
    QUANTITY = "Quantity"
    INT_OR_STRING = "IntOrString"
    FIELDS_V1 = "FieldsV1"
    ATTESTATION_VALUE = "AttestationValue"
    MESSAGE = "message"


class Cardinality(enum.Enum):
    SINGLE = "single"
    REPEATED = "repeated"
    MAP = "map"


SCALAR_KINDS: Final = frozenset({Kind.STRING, Kind.BYTES, Kind.INT32, Kind.INT64, Kind.BOOL})
VARINT_KINDS: Final = frozenset({Kind.INT32, Kind.INT64, Kind.BOOL})

KEEP: Final = "keep"
NULL: Final = "null"
OMIT: Final = "omit"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message: where its value goes in the JSON object and what it is."""

    json_name: str
    kind: Kind
    cardinality: Cardinality
    message: str = ""
    keep_zero: bool = False
    null_when_absent: bool = False


Message = dict[int, Field]
FieldSpec = tuple[int, str, str] | tuple[int, str, str, str]

_PREFIXES: Final = (("[]", Cardinality.REPEATED), ("map[string]", Cardinality.MAP))
_NAMED_KINDS: Final = {k.value: k for k in Kind if k is not Kind.MESSAGE}


def _parse_field(spec: FieldSpec) -> tuple[int, Field]:
    number, json_name, type_text = spec[0], spec[1], spec[2]
    flag = spec[3] if len(spec) == 4 else ""
    cardinality = Cardinality.SINGLE
    for prefix, prefixed_cardinality in _PREFIXES:
        if type_text.startswith(prefix):
            cardinality = prefixed_cardinality
            type_text = type_text[len(prefix):]
    kind = _NAMED_KINDS.get(type_text, Kind.MESSAGE)
    message = type_text if kind is Kind.MESSAGE else ""
    # omitempty never drops a struct (a zero Time marshals as null); only omitzero does.
    keep_zero = flag in (KEEP, NULL) or (kind not in SCALAR_KINDS and flag != OMIT)
    field = Field(json_name, kind, cardinality, message, keep_zero, flag == NULL)
    return number, field


def _message(*specs: FieldSpec) -> Message:
    return dict(_parse_field(spec) for spec in specs)


_META = "meta/v1."
_CORE = "core/v1."

MESSAGES: Final[dict[str, Message]] = {
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "meta/v1.ObjectMeta": _message(
        (1, "name", "string"),
        (2, "generateName", "string"),
        (3, "namespace", "string"),
        (4, "selfLink", "string"),
        (5, "uid", "string"),
        (6, "resourceVersion", "string"),
        (7, "generation", "int64"),
        (8, "creationTimestamp", "Time", OMIT),
        (9, "deletionTimestamp", "Time"),
        (10, "deletionGracePeriodSeconds", "int64", KEEP),
        (11, "labels", "map[string]string"),
        (12, "annotations", "map[string]string"),
        (13, "ownerReferences", f"[]{_META}OwnerReference"),
        (14, "finalizers", "[]string"),
        (17, "managedFields", f"[]{_META}ManagedFieldsEntry"),
    ),
    "meta/v1.OwnerReference": _message(
        (1, "kind", "string", KEEP),
        (3, "name", "string", KEEP),
        (4, "uid", "string", KEEP),
        (5, "apiVersion", "string", KEEP),
        (6, "controller", "bool", KEEP),
        (7, "blockOwnerDeletion", "bool", KEEP),
    ),
    "meta/v1.ManagedFieldsEntry": _message(
        (1, "manager", "string"),
        (2, "operation", "string"),
        (3, "apiVersion", "string"),
        (4, "time", "Time"),
        (6, "fieldsType", "string"),
        (7, "fieldsV1", "FieldsV1"),
        (8, "subresource", "string"),
    ),
    "meta/v1.LabelSelector": _message(
        (1, "matchLabels", "map[string]string"),
        (2, "matchExpressions", f"[]{_META}LabelSelectorRequirement"),
    ),
    "meta/v1.LabelSelectorRequirement": _message(
        (1, "key", "string", KEEP),
        (2, "operator", "string", KEEP),
        (3, "values", "[]string"),
    ),
    "meta/v1.DeleteOptions": _message(
        (1, "gracePeriodSeconds", "int64", KEEP),
        (2, "preconditions", f"{_META}Preconditions"),
        (3, "orphanDependents", "bool", KEEP),
        (4, "propagationPolicy", "string", KEEP),
        (5, "dryRun", "[]string"),
        (6, "ignoreStoreReadErrorWithClusterBreakingPotential", "bool", KEEP),
    ),
    "meta/v1.Preconditions": _message(
        (1, "uid", "string", KEEP),
        (2, "resourceVersion", "string", KEEP),
    ),
    # k8s.io/api/core/v1
    "core/v1.ConfigMap": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "data", "map[string]string"),
        (3, "binaryData", "map[string]bytes"),
        (4, "immutable", "bool", KEEP),
    ),
    "core/v1.Secret": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "data", "map[string]bytes"),
        (3, "type", "string"),
        (4, "stringData", "map[string]string"),
        (5, "immutable", "bool", KEEP),
    ),
    "core/v1.Namespace": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", f"{_CORE}NamespaceSpec"),
        (3, "status", f"{_CORE}NamespaceStatus"),
    ),
    "core/v1.NamespaceSpec": _message(
        (1, "finalizers", "[]string"),
    ),
    "core/v1.NamespaceStatus": _message(
        (1, "phase", "string"),
        (2, "conditions", f"[]{_CORE}NamespaceCondition"),
    ),
    "core/v1.NamespaceCondition": _message(
        (1, "type", "string", KEEP),
        (2, "status", "string", KEEP),
        (4, "lastTransitionTime", "Time"),
        (5, "reason", "string"),
        (6, "message", "string"),
    ),
    "core/v1.ServiceAccount": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "secrets", f"[]{_CORE}ObjectReference"),
        (3, "imagePullSecrets", f"[]{_CORE}LocalObjectReference"),
        (4, "automountServiceAccountToken", "bool", KEEP),
    ),
    "core/v1.ObjectReference": _message(
        (1, "kind", "string"),
        (2, "namespace", "string"),
        (3, "name", "string"),
        (4, "uid", "string"),
        (5, "apiVersion", "string"),
        (6, "resourceVersion", "string"),
        (7, "fieldPath", "string"),
    ),
    "core/v1.LocalObjectReference": _message(
        (1, "name", "string"),
    ),
    "core/v1.Event": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "involvedObject", f"{_CORE}ObjectReference"),
        (3, "reason", "string"),
        (4, "message", "string"),
        (5, "source", f"{_CORE}EventSource"),
        (6, "firstTimestamp", "Time"),
        (7, "lastTimestamp", "Time"),
        (8, "count", "int32"),
        (9, "type", "string"),
        (10, "eventTime", "MicroTime"),
        (11, "series", f"{_CORE}EventSeries"),
        (12, "action", "string"),
        (13, "related", f"{_CORE}ObjectReference"),
        (14, "reportingComponent", "string", KEEP),
        (15, "reportingInstance", "string", KEEP),
    ),
    "core/v1.EventSource": _message(
        (1, "component", "string"),
        (2, "host", "string"),
    ),
    "core/v1.EventSeries": _message(
        (1, "count", "int32"),
        (2, "lastObservedTime", "MicroTime"),
    ),
    "core/v1.LimitRange": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", f"{_CORE}LimitRangeSpec"),
    ),
    "core/v1.LimitRangeSpec": _message(
        (1, "limits", f"[]{_CORE}LimitRangeItem", NULL),
    ),
    "core/v1.LimitRangeItem": _message(
        (1, "type", "string", KEEP),
        (2, "max", "map[string]Quantity"),
        (3, "min", "map[string]Quantity"),
        (4, "default", "map[string]Quantity"),
        (5, "defaultRequest", "map[string]Quantity"),
        (6, "maxLimitRequestRatio", "map[string]Quantity"),
    ),
    "core/v1.ResourceQuota": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", f"{_CORE}ResourceQuotaSpec"),
        (3, "status", f"{_CORE}ResourceQuotaStatus"),
    ),
    "core/v1.ResourceQuotaSpec": _message(
        (1, "hard", "map[string]Quantity"),
        (2, "scopes", "[]string"),
        (3, "scopeSelector", f"{_CORE}ScopeSelector"),
    ),
    "core/v1.ScopeSelector": _message(
        (1, "matchExpressions", f"[]{_CORE}ScopedResourceSelectorRequirement"),
    ),
    "core/v1.ScopedResourceSelectorRequirement": _message(
        (1, "scopeName", "string", KEEP),
        (2, "operator", "string", KEEP),
        (3, "values", "[]string"),
    ),
    "core/v1.ResourceQuotaStatus": _message(
        (1, "hard", "map[string]Quantity"),
        (2, "used", "map[string]Quantity"),
    ),
    # k8s.io/api/coordination/v1
    "coordination/v1.Lease": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", "coordination/v1.LeaseSpec"),
    ),
    "coordination/v1.LeaseSpec": _message(
        (1, "holderIdentity", "string", KEEP),
        (2, "leaseDurationSeconds", "int32", KEEP),
        (3, "acquireTime", "MicroTime"),
        (4, "renewTime", "MicroTime"),
        (5, "leaseTransitions", "int32", KEEP),
        (6, "strategy", "string", KEEP),
        (7, "preferredHolder", "string", KEEP),
    ),
    # k8s.io/api/events/v1
    "events/v1.Event": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "eventTime", "MicroTime"),
        (3, "series", "events/v1.EventSeries"),
        (4, "reportingController", "string"),
        (5, "reportingInstance", "string"),
        (6, "action", "string"),
        (7, "reason", "string"),
        (8, "regarding", f"{_CORE}ObjectReference"),
        (9, "related", f"{_CORE}ObjectReference"),
        (10, "note", "string"),
        (11, "type", "string"),
        (12, "deprecatedSource", f"{_CORE}EventSource"),
        (13, "deprecatedFirstTimestamp", "Time"),
        (14, "deprecatedLastTimestamp", "Time"),
        (15, "deprecatedCount", "int32"),
    ),
    "events/v1.EventSeries": _message(
        (1, "count", "int32", KEEP),
        (2, "lastObservedTime", "MicroTime"),
    ),
    # k8s.io/api/rbac/v1
    "rbac/v1.Role": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "rules", "[]rbac/v1.PolicyRule", NULL),
    ),
    "rbac/v1.ClusterRole": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "rules", "[]rbac/v1.PolicyRule", NULL),
        (3, "aggregationRule", "rbac/v1.AggregationRule"),
    ),
    "rbac/v1.AggregationRule": _message(
        (1, "clusterRoleSelectors", f"[]{_META}LabelSelector"),
    ),
    "rbac/v1.PolicyRule": _message(
        (1, "verbs", "[]string", NULL),
        (2, "apiGroups", "[]string"),
        (3, "resources", "[]string"),
        (4, "resourceNames", "[]string"),
        (5, "nonResourceURLs", "[]string"),
    ),
    "rbac/v1.RoleBinding": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "subjects", "[]rbac/v1.Subject"),
        (3, "roleRef", "rbac/v1.RoleRef"),
    ),
    "rbac/v1.ClusterRoleBinding": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "subjects", "[]rbac/v1.Subject"),
        (3, "roleRef", "rbac/v1.RoleRef"),
    ),
    "rbac/v1.Subject": _message(
        (1, "kind", "string", KEEP),
        (2, "apiGroup", "string"),
        (3, "name", "string", KEEP),
        (4, "namespace", "string"),
    ),
    "rbac/v1.RoleRef": _message(
        (1, "apiGroup", "string", KEEP),
        (2, "kind", "string", KEEP),
        (3, "name", "string", KEEP),
    ),
    # k8s.io/api/authentication/v1
    "authentication/v1.TokenRequest": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", "authentication/v1.TokenRequestSpec"),
        (3, "status", "authentication/v1.TokenRequestStatus"),
    ),
    "authentication/v1.TokenRequestSpec": _message(
        (1, "audiences", "[]string", NULL),
        (3, "boundObjectRef", "authentication/v1.BoundObjectReference", NULL),
        (4, "expirationSeconds", "int64", NULL),
        (5, "attestations", "map[string]AttestationValue"),
    ),
    "authentication/v1.BoundObjectReference": _message(
        (1, "kind", "string"),
        (2, "apiVersion", "string"),
        (3, "name", "string"),
        # The proto field is named ``uID``; the JSON tag says ``uid``.
        (4, "uid", "string"),
    ),
    "authentication/v1.TokenRequestStatus": _message(
        (1, "token", "string", KEEP),
        (2, "expirationTimestamp", "Time"),
    ),
    "authentication/v1.SelfSubjectReview": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "status", "authentication/v1.SelfSubjectReviewStatus"),
    ),
    "authentication/v1.SelfSubjectReviewStatus": _message(),
    "authentication/v1.TokenReview": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", "authentication/v1.TokenReviewSpec"),
    ),
    "authentication/v1.TokenReviewSpec": _message(
        (1, "token", "string"),
        (2, "audiences", "[]string"),
    ),
    # k8s.io/api/authorization/v1 (requests only: kplane fills in the status itself)
    "authorization/v1.SelfSubjectAccessReview": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", "authorization/v1.SelfSubjectAccessReviewSpec"),
    ),
    "authorization/v1.SelfSubjectAccessReviewSpec": _message(
        (1, "resourceAttributes", "authorization/v1.ResourceAttributes", OMIT),
        (2, "nonResourceAttributes", "authorization/v1.NonResourceAttributes", OMIT),
    ),
    "authorization/v1.ResourceAttributes": _message(
        (1, "namespace", "string"),
        (2, "verb", "string"),
        (3, "group", "string"),
        (4, "version", "string"),
        (5, "resource", "string"),
        (6, "subresource", "string"),
        (7, "name", "string"),
    ),
    "authorization/v1.NonResourceAttributes": _message(
        (1, "path", "string"),
        (2, "verb", "string"),
    ),
    "authorization/v1.SelfSubjectRulesReview": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", "authorization/v1.SelfSubjectRulesReviewSpec"),
    ),
    "authorization/v1.SelfSubjectRulesReviewSpec": _message(
        (1, "namespace", "string"),
    ),
    "authorization/v1.SubjectAccessReview": _message(
        (1, "metadata", f"{_META}ObjectMeta"),
        (2, "spec", "authorization/v1.SubjectAccessReviewSpec"),
    ),
    "authorization/v1.SubjectAccessReviewSpec": _message(
        (1, "resourceAttributes", "authorization/v1.ResourceAttributes", OMIT),
        (2, "nonResourceAttributes", "authorization/v1.NonResourceAttributes", OMIT),
        (3, "user", "string"),
        (4, "groups", "[]string"),
        (6, "uid", "string"),
    ),
}

# (apiVersion, kind) -> top-level message. DeleteOptions is looked up by kind alone,
# because upstream registers it in every group version.
KINDS: Final[dict[tuple[str, str], str]] = {
    ("v1", "ConfigMap"): "core/v1.ConfigMap",
    ("v1", "Secret"): "core/v1.Secret",
    ("v1", "Namespace"): "core/v1.Namespace",
    ("v1", "ServiceAccount"): "core/v1.ServiceAccount",
    ("v1", "Event"): "core/v1.Event",
    ("v1", "LimitRange"): "core/v1.LimitRange",
    ("v1", "ResourceQuota"): "core/v1.ResourceQuota",
    ("coordination.k8s.io/v1", "Lease"): "coordination/v1.Lease",
    ("events.k8s.io/v1", "Event"): "events/v1.Event",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac/v1.Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac/v1.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac/v1.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac/v1.ClusterRoleBinding",
    ("authentication.k8s.io/v1", "TokenRequest"): "authentication/v1.TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authentication/v1.SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenReview"): "authentication/v1.TokenReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"):
        "authorization/v1.SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"):
        "authorization/v1.SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "authorization/v1.SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"):
        "authorization/v1.SubjectAccessReview",
}

DELETE_OPTIONS_KIND: Final = "DeleteOptions"
DELETE_OPTIONS_MESSAGE: Final = "meta/v1.DeleteOptions"


def message_for(api_version: str, kind: str) -> str | None:
    """The message that encodes ``kind`` in ``api_version``, or None if it has no table."""
    if kind == DELETE_OPTIONS_KIND:
        return DELETE_OPTIONS_MESSAGE
    return KINDS.get((api_version, kind))
