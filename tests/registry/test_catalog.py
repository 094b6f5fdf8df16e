"""The catalog of served types and their strategies."""

from __future__ import annotations

from kplane.registry import builtin
from kplane.registry.builtin import BUILTIN_RESOURCES
from kplane.registry.catalog import Catalog
from kplane.registry.kinds.core import NamespaceStrategy, SecretStrategy
from kplane.registry.resources import ResourceType
from kplane.registry.strategy import Strategy


def test_every_cluster_serves_the_builtin_kinds_in_discovery_order() -> None:
    catalog = Catalog()
    assert catalog.resources("root") == BUILTIN_RESOURCES
    assert catalog.resources("root:org:team") == BUILTIN_RESOURCES
    assert catalog.resources("root")[0] is builtin.NAMESPACES


def test_lookup_by_url_parts() -> None:
    catalog = Catalog()
    assert catalog.lookup("root", "", "v1", "configmaps") is builtin.CONFIGMAPS
    assert catalog.lookup("root", "events.k8s.io", "v1", "events") is builtin.EVENTS_V1
    assert catalog.lookup("root", "", "v1", "events") is builtin.EVENTS
    assert catalog.lookup("root", "", "v2", "configmaps") is None
    assert catalog.lookup("root", "apps", "v1", "deployments") is None


def test_group_versions_are_those_of_the_served_types() -> None:
    served = Catalog().group_versions("root")
    assert served == {(rt.group, rt.version) for rt in BUILTIN_RESOURCES}
    assert served >= {("", "v1"), ("events.k8s.io", "v1"), ("coordination.k8s.io", "v1"),
                      ("rbac.authorization.k8s.io", "v1")}
    assert ("apps", "v1") not in served


def test_lookup_by_storage_location() -> None:
    catalog = Catalog()
    assert catalog.by_storage("", "secrets") is builtin.SECRETS
    assert catalog.by_storage("rbac.authorization.k8s.io", "roles") is builtin.ROLES
    assert catalog.by_storage("", "deployments") is None


def test_each_type_has_one_strategy_of_its_kind() -> None:
    catalog = Catalog()
    namespaces = catalog.strategy(builtin.NAMESPACES)
    assert type(namespaces) is NamespaceStrategy
    assert catalog.strategy(builtin.NAMESPACES) is namespaces
    assert type(catalog.strategy(builtin.SECRETS)) is SecretStrategy
    assert type(catalog.strategy(builtin.SERVICEACCOUNTS)) is Strategy


def test_a_type_outside_the_catalog_gets_a_default_strategy_not_remembered() -> None:
    catalog = Catalog()
    widgets = ResourceType(group="example.com", version="v1", resource="widgets", kind="Widget",
                           namespaced=True)
    strategy = catalog.strategy(widgets)
    assert type(strategy) is Strategy
    assert strategy.rt is widgets
    # Not remembered: such types come and go with CRDs, and the catalog must not grow.
    assert catalog.strategy(widgets) is not strategy
    assert catalog.lookup("root", "example.com", "v1", "widgets") is None
