"""The Strategy of each built-in kind."""

from __future__ import annotations

from kplane.registry import builtin
from kplane.registry.kinds.apis import (
    APIBindingStrategy,
    APIBindingV1Alpha1Strategy,
    APIExportEndpointSliceStrategy,
    APIExportStrategy,
    APIExportV1Alpha1Strategy,
    APIResourceSchemaStrategy,
)
from kplane.registry.kinds.core import (
    ConfigMapStrategy,
    EventStrategy,
    NamespaceStrategy,
    ResourceQuotaStrategy,
    SecretStrategy,
)
from kplane.registry.kinds.custom import CustomResourceDefinitionStrategy
from kplane.registry.kinds.events import EventsV1Strategy
from kplane.registry.kinds.rbac import BindingStrategy, RoleStrategy
from kplane.registry.kinds.tenancy import (
    LogicalClusterStrategy,
    WorkspaceStrategy,
    WorkspaceTypeStrategy,
)
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy

_STRATEGY_CLASSES: dict[ResourceType, type[Strategy]] = {
    builtin.NAMESPACES: NamespaceStrategy,
    builtin.CONFIGMAPS: ConfigMapStrategy,
    builtin.SECRETS: SecretStrategy,
    builtin.EVENTS: EventStrategy,
    builtin.EVENTS_V1: EventsV1Strategy,
    builtin.RESOURCEQUOTAS: ResourceQuotaStrategy,
    builtin.ROLES: RoleStrategy,
    builtin.CLUSTERROLES: RoleStrategy,
    builtin.ROLEBINDINGS: BindingStrategy,
    builtin.CLUSTERROLEBINDINGS: BindingStrategy,
    builtin.WORKSPACES: WorkspaceStrategy,
    builtin.WORKSPACE_TYPES: WorkspaceTypeStrategy,
    builtin.LOGICAL_CLUSTERS: LogicalClusterStrategy,
    builtin.CUSTOM_RESOURCE_DEFINITIONS: CustomResourceDefinitionStrategy,
    builtin.API_RESOURCE_SCHEMAS: APIResourceSchemaStrategy,
    builtin.API_EXPORTS: APIExportStrategy,
    builtin.API_EXPORTS_V1ALPHA1: APIExportV1Alpha1Strategy,
    builtin.API_BINDINGS: APIBindingStrategy,
    builtin.API_BINDINGS_V1ALPHA1: APIBindingV1Alpha1Strategy,
    builtin.API_EXPORT_ENDPOINT_SLICES: APIExportEndpointSliceStrategy,
}


def strategy_for(rt: ResourceType) -> Strategy:
    """A fresh Strategy for a built-in resource type."""
    return _STRATEGY_CLASSES.get(rt, Strategy)(rt)
