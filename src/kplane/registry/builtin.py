"""The built-in resource types every logical cluster serves.

This is the list a workspace offers before any CRD or binding: the kinds kcp serves in a
workspace (namespaces, configmaps, secrets, service accounts, events, leases, limit ranges,
resource quotas and RBAC), with the short names, categories, verbs, subresources and
selectable fields upstream Kubernetes gives them, so ``kubectl api-resources`` and
``kubectl get all`` read the same as against a real cluster; plus kcp's tenancy kinds
(Workspace, WorkspaceType, LogicalCluster) and API exports and bindings (apis.kcp.io), which
every logical cluster serves too.
"""

from __future__ import annotations

from dataclasses import replace

from kplane.registry.resources import ALL_VERBS, ResourceType

_NO_COLLECTION = tuple(v for v in ALL_VERBS if v != "deletecollection")

NAMESPACES = ResourceType(
    group="", version="v1", resource="namespaces", kind="Namespace", namespaced=False,
    short_names=("ns",), verbs=_NO_COLLECTION, subresources=("finalize", "status"),
    selectable_fields=("status.phase",),
)
CONFIGMAPS = ResourceType(
    group="", version="v1", resource="configmaps", kind="ConfigMap", namespaced=True,
    short_names=("cm",),
)
SECRETS = ResourceType(
    group="", version="v1", resource="secrets", kind="Secret", namespaced=True,
    selectable_fields=("type",),
)
SERVICEACCOUNTS = ResourceType(
    group="", version="v1", resource="serviceaccounts", kind="ServiceAccount", namespaced=True,
    short_names=("sa",), subresources=("token",),
)
EVENTS = ResourceType(
    group="", version="v1", resource="events", kind="Event", namespaced=True,
    short_names=("ev",),
    selectable_fields=(
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    ),
)
EVENTS_V1 = ResourceType(
    group="events.k8s.io", version="v1", resource="events", kind="Event", namespaced=True,
    short_names=("ev",), storage_group="", storage_resource="events",
    selectable_fields=(
        "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
        "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath",
        "reason", "reportingController", "type",
    ),
)
LIMITRANGES = ResourceType(
    group="", version="v1", resource="limitranges", kind="LimitRange", namespaced=True,
    short_names=("limits",),
)
RESOURCEQUOTAS = ResourceType(
    group="", version="v1", resource="resourcequotas", kind="ResourceQuota", namespaced=True,
    short_names=("quota",), subresources=("status",),
)
LEASES = ResourceType(
    group="coordination.k8s.io", version="v1", resource="leases", kind="Lease",
    namespaced=True,
)
_RBAC = "rbac.authorization.k8s.io"
ROLES = ResourceType(group=_RBAC, version="v1", resource="roles", kind="Role", namespaced=True)
ROLEBINDINGS = ResourceType(
    group=_RBAC, version="v1", resource="rolebindings", kind="RoleBinding", namespaced=True,
)
CLUSTERROLES = ResourceType(
    group=_RBAC, version="v1", resource="clusterroles", kind="ClusterRole", namespaced=False,
)
CLUSTERROLEBINDINGS = ResourceType(
    group=_RBAC, version="v1", resource="clusterrolebindings", kind="ClusterRoleBinding",
    namespaced=False,
)

WORKSPACES = ResourceType(
    group="tenancy.kcp.io", version="v1alpha1", resource="workspaces", kind="Workspace",
    namespaced=False, short_names=("ws",), subresources=("status",),
    supports_strategic_merge=False,
)
WORKSPACE_TYPES = ResourceType(
    group="tenancy.kcp.io", version="v1alpha1", resource="workspacetypes",
    kind="WorkspaceType", namespaced=False, subresources=("status",),
    supports_strategic_merge=False,
)
LOGICAL_CLUSTERS = ResourceType(
    group="core.kcp.io", version="v1alpha1", resource="logicalclusters", kind="LogicalCluster",
    namespaced=False, subresources=("status",), supports_strategic_merge=False,
)

CUSTOM_RESOURCE_DEFINITIONS = ResourceType(
    group="apiextensions.k8s.io", version="v1", resource="customresourcedefinitions",
    kind="CustomResourceDefinition", namespaced=False, short_names=("crd", "crds"),
    categories=("api-extensions",), subresources=("status",),
)

_APIS = "apis.kcp.io"
API_RESOURCE_SCHEMAS = ResourceType(
    group=_APIS, version="v1alpha1", resource="apiresourceschemas", kind="APIResourceSchema",
    namespaced=False, categories=("kcp",), supports_strategic_merge=False,
)
# APIExports and APIBindings are stored in their v1alpha2 form; v1alpha1 is served too,
# converted on the way in and out (kinds/apis_conversion.py).
API_EXPORTS = ResourceType(
    group=_APIS, version="v1alpha2", resource="apiexports", kind="APIExport",
    namespaced=False, categories=("kcp",), subresources=("status",),
    supports_strategic_merge=False,
)
API_EXPORTS_V1ALPHA1 = replace(API_EXPORTS, version="v1alpha1", storage_group=_APIS,
                               storage_resource="apiexports")
API_BINDINGS = ResourceType(
    group=_APIS, version="v1alpha2", resource="apibindings", kind="APIBinding",
    namespaced=False, categories=("kcp",), subresources=("status",),
    supports_strategic_merge=False,
)
API_BINDINGS_V1ALPHA1 = replace(API_BINDINGS, version="v1alpha1", storage_group=_APIS,
                                storage_resource="apibindings")
API_EXPORT_ENDPOINT_SLICES = ResourceType(
    group=_APIS, version="v1alpha1", resource="apiexportendpointslices",
    kind="APIExportEndpointSlice", namespaced=False, categories=("kcp",),
    subresources=("status",), supports_strategic_merge=False,
)

_CREATE_ONLY = ("create",)
_AUTHZ = "authorization.k8s.io"
_AUTHN = "authentication.k8s.io"
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType(
    group=_AUTHZ, version="v1", resource="selfsubjectaccessreviews",
    kind="SelfSubjectAccessReview", namespaced=False, verbs=_CREATE_ONLY,
)
SELF_SUBJECT_RULES_REVIEWS = ResourceType(
    group=_AUTHZ, version="v1", resource="selfsubjectrulesreviews",
    kind="SelfSubjectRulesReview", namespaced=False, verbs=_CREATE_ONLY,
)
SUBJECT_ACCESS_REVIEWS = ResourceType(
    group=_AUTHZ, version="v1", resource="subjectaccessreviews", kind="SubjectAccessReview",
    namespaced=False, verbs=_CREATE_ONLY,
)
LOCAL_SUBJECT_ACCESS_REVIEWS = ResourceType(
    group=_AUTHZ, version="v1", resource="localsubjectaccessreviews",
    kind="LocalSubjectAccessReview", namespaced=True, verbs=_CREATE_ONLY,
)
SELF_SUBJECT_REVIEWS = ResourceType(
    group=_AUTHN, version="v1", resource="selfsubjectreviews", kind="SelfSubjectReview",
    namespaced=False, verbs=_CREATE_ONLY,
)
TOKEN_REVIEWS = ResourceType(
    group=_AUTHN, version="v1", resource="tokenreviews", kind="TokenReview",
    namespaced=False, verbs=_CREATE_ONLY,
)
REVIEWS: tuple[ResourceType, ...] = (
    SELF_SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_RULES_REVIEWS, SUBJECT_ACCESS_REVIEWS,
    LOCAL_SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_REVIEWS, TOKEN_REVIEWS,
)
"""Create-only kinds that answer a question and store nothing."""

BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    NAMESPACES, CONFIGMAPS, SECRETS, SERVICEACCOUNTS, EVENTS, LIMITRANGES, RESOURCEQUOTAS,
    EVENTS_V1, LEASES, ROLES, ROLEBINDINGS, CLUSTERROLES, CLUSTERROLEBINDINGS,
    WORKSPACES, WORKSPACE_TYPES, LOGICAL_CLUSTERS, CUSTOM_RESOURCE_DEFINITIONS,
    API_EXPORTS, API_BINDINGS, API_RESOURCE_SCHEMAS, API_EXPORTS_V1ALPHA1,
    API_BINDINGS_V1ALPHA1, API_EXPORT_ENDPOINT_SLICES, *REVIEWS,
)
"""In discovery order: the core group first, then the named groups."""
