"""RBAC objects decoded for evaluation, and upstream's rule-matching semantics.

The authorizer runs on every request, so nothing here is decoded per request: a Role,
ClusterRole, RoleBinding or ClusterRoleBinding is turned once, when it enters the index,
into the frozen values below (rules with their sets precomputed, subjects already reduced
to the user or group name they match). Matching then is a handful of set lookups.

The matching rules are upstream Kubernetes' (``RuleAllows`` and friends in
``plugin/pkg/auth/authorizer/rbac``): ``*`` wildcards for verbs, groups, resources and
non-resource URLs; ``resource/subresource`` and ``*/subresource``; ``resourceNames`` only
matching requests that carry one of those names (so never list, create or deletecollection,
which have none); non-resource URLs exact or ending in ``*`` as a prefix match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.labels import LabelSelector, label_selector_from_dict

WILDCARD = "*"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
USER_KIND = "User"
GROUP_KIND = "Group"
SERVICE_ACCOUNT_KIND = "ServiceAccount"
ROLE_KIND = "Role"
CLUSTER_ROLE_KIND = "ClusterRole"


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One compiled ``PolicyRule``. The original lists are kept for SelfSubjectRulesReview."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]
    non_resource_urls: tuple[str, ...]
    # Precomputed from the lists above so a match is a few set lookups.
    any_verb: bool
    verb_set: frozenset[str]
    any_group: bool
    group_set: frozenset[str]
    any_resource: bool
    resource_set: frozenset[str]
    wildcard_subresources: frozenset[str]
    name_set: frozenset[str]
    any_url: bool
    url_set: frozenset[str]
    url_prefixes: tuple[str, ...]

    def allows_resource(
        self, *, verb: str, api_group: str, resource: str, subresource: str, name: str
    ) -> bool:
        """Upstream ``RuleAllows`` for a resource request."""
        if not (self.any_verb or verb in self.verb_set):
            return False
        if not (self.any_group or api_group in self.group_set):
            return False
        if not self._matches_resource(resource, subresource):
            return False
        return not self.name_set or name in self.name_set

    def _matches_resource(self, resource: str, subresource: str) -> bool:
        if self.any_resource:
            return True
        if not subresource:
            return resource in self.resource_set
        return (f"{resource}/{subresource}" in self.resource_set
                or subresource in self.wildcard_subresources)

    def allows_non_resource(self, *, verb: str, path: str) -> bool:
        """Upstream ``RuleAllows`` for a non-resource request (``/version``, ``/``)."""
        if not (self.any_verb or verb in self.verb_set):
            return False
        if self.any_url or path in self.url_set:
            return True
        return any(path.startswith(prefix) for prefix in self.url_prefixes)

    def resource_rule_json(self) -> dict[str, Any]:
        """The ``authorization.k8s.io/v1`` ResourceRule (empty lists omitted, as upstream)."""
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out

    def non_resource_rule_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out


def compile_rule(raw: Mapping[str, Any]) -> PolicyRule:
    verbs = _strings(raw.get("verbs"))
    groups = _strings(raw.get("apiGroups"))
    resources = _strings(raw.get("resources"))
    urls = _strings(raw.get("nonResourceURLs"))
    return PolicyRule(
        verbs=verbs,
        api_groups=groups,
        resources=resources,
        resource_names=_strings(raw.get("resourceNames")),
        non_resource_urls=urls,
        any_verb=WILDCARD in verbs,
        verb_set=frozenset(verbs),
        any_group=WILDCARD in groups,
        group_set=frozenset(groups),
        any_resource=WILDCARD in resources,
        resource_set=frozenset(resources),
        wildcard_subresources=frozenset(r[2:] for r in resources if r.startswith("*/")),
        name_set=frozenset(_strings(raw.get("resourceNames"))),
        any_url=WILDCARD in urls,
        url_set=frozenset(urls),
        url_prefixes=tuple(u.rstrip(WILDCARD) for u in urls if u.endswith(WILDCARD)),
    )


def compile_rules(raw: Any) -> tuple[PolicyRule, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(compile_rule(rule) for rule in raw if isinstance(rule, Mapping))


@dataclass(frozen=True, slots=True)
class Role:
    """A Role (``namespace`` set) or ClusterRole, with its own rules and aggregation."""

    name: str
    namespace: str
    rules: tuple[PolicyRule, ...]
    labels: Mapping[str, str]
    # None when the ClusterRole is not aggregated; otherwise its compiled selectors.
    aggregation: tuple[LabelSelector, ...] | None = None

    def aggregates(self, other: Role) -> bool:
        """Whether ``other``'s rules flow into this aggregated ClusterRole."""
        if self.aggregation is None or other.name == self.name:
            return False
        return any(selector.matches(other.labels) for selector in self.aggregation)


def decode_role(obj: Mapping[str, Any]) -> Role:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels")
    return Role(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        rules=compile_rules(obj.get("rules")),
        labels=dict(labels) if isinstance(labels, Mapping) else {},
        aggregation=_aggregation(obj.get("aggregationRule")),
    )


def _aggregation(rule: Any) -> tuple[LabelSelector, ...] | None:
    if not isinstance(rule, Mapping):
        return None
    selectors: list[LabelSelector] = []
    for raw in rule.get("clusterRoleSelectors") or []:
        if not isinstance(raw, Mapping):
            continue
        try:
            selectors.append(label_selector_from_dict(raw))
        except StatusError:
            # Upstream's aggregation controller skips a selector it cannot parse.
            continue
    return tuple(selectors)


@dataclass(frozen=True, slots=True)
class Subject:
    """A binding subject, reduced to what a request's user is compared with.

    ``kind`` is ``User`` or ``Group`` for matching (a ServiceAccount subject matches the
    user ``system:serviceaccount:<ns>:<name>``); ``description`` is upstream's wording
    for decision reasons."""

    kind: str
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Binding:
    """A RoleBinding (``namespace`` set) or ClusterRoleBinding."""

    name: str
    namespace: str
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]

    def describe(self, subject: Subject) -> str:
        """Upstream's reason wording: ``RoleBinding "rb/ns" of Role "r" to User "u"``."""
        if self.namespace:
            return (f'RoleBinding "{self.name}/{self.namespace}" of {self.role_kind} '
                    f'"{self.role_name}" to {subject.description}')
        return (f'ClusterRoleBinding "{self.name}" of {self.role_kind} "{self.role_name}" '
                f"to {subject.description}")


def decode_binding(obj: Mapping[str, Any]) -> Binding:
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    ref = obj.get("roleRef") or {}
    subjects = tuple(
        subject
        for raw in obj.get("subjects") or []
        if isinstance(raw, Mapping)
        for subject in [_subject(raw, binding_namespace=namespace)]
        if subject is not None
    )
    return Binding(
        name=str(meta.get("name", "")),
        namespace=namespace,
        role_kind=str(ref.get("kind", "")) if isinstance(ref, Mapping) else "",
        role_name=str(ref.get("name", "")) if isinstance(ref, Mapping) else "",
        subjects=subjects,
    )


def _subject(raw: Mapping[str, Any], *, binding_namespace: str) -> Subject | None:
    kind = raw.get("kind")
    name = str(raw.get("name") or "")
    if not name:
        return None
    if kind in (USER_KIND, GROUP_KIND):
        return Subject(str(kind), name, f'{kind} "{name}"')
    if kind != SERVICE_ACCOUNT_KIND:
        return None
    # As upstream: a RoleBinding's ServiceAccount subject defaults to the binding's
    # namespace; a ClusterRoleBinding's must name one or it matches no one.
    namespace = str(raw.get("namespace") or binding_namespace)
    if not namespace:
        return None
    return Subject(USER_KIND, service_account_username(namespace, name),
                   f'ServiceAccount "{name}/{namespace}"')


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))
