"""Rule matching and decoding of RBAC objects, against upstream's RuleAllows table."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.auth.rbac import Subject, compile_rule, decode_binding, decode_role


def rule(**raw: Any) -> dict[str, Any]:
    return raw


@pytest.mark.parametrize(("raw", "request_", "allowed"), [
    (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), ("get", "", "pods", "", ""), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), ("list", "", "pods", "", ""), False),
    (rule(verbs=["*"], apiGroups=[""], resources=["pods"]), ("delete", "", "pods", "", "x"), True),
    (rule(verbs=["get"], apiGroups=["apps"], resources=["pods"]), ("get", "", "pods", "", ""),
     False),
    (rule(verbs=["get"], apiGroups=["*"], resources=["pods"]), ("get", "apps", "pods", "", ""),
     True),
    (rule(verbs=["get"], apiGroups=[""], resources=["*"]), ("get", "", "pods", "log", ""), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), ("get", "", "pods", "log", ""),
     False),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods/log"]), ("get", "", "pods", "log", ""),
     True),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods/log"]), ("get", "", "pods", "", ""),
     False),
    (rule(verbs=["get"], apiGroups=[""], resources=["*/status"]),
     ("get", "", "namespaces", "status", ""), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["*/status"]),
     ("get", "", "namespaces", "", ""), False),
    (rule(verbs=["get"], apiGroups=[""], resources=["*/status"]),
     ("get", "", "pods", "xstatus", ""), False),
    (rule(verbs=["get"], apiGroups=[""], resources=["cm"], resourceNames=["a"]),
     ("get", "", "cm", "", "a"), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["cm"], resourceNames=["a"]),
     ("get", "", "cm", "", "b"), False),
    (rule(verbs=["list"], apiGroups=[""], resources=["cm"], resourceNames=["a"]),
     ("list", "", "cm", "", ""), False),
    (rule(verbs=["create"], apiGroups=[""], resources=["cm"], resourceNames=["a"]),
     ("create", "", "cm", "", ""), False),
    (rule(verbs=["get"], nonResourceURLs=["/version"]), ("get", "", "cm", "", ""), False),
])
def test_resource_rule_matching(raw: dict[str, Any], request_: tuple[str, ...],
                                allowed: bool) -> None:
    verb, group, resource, subresource, name = request_
    assert compile_rule(raw).allows_resource(
        verb=verb, api_group=group, resource=resource, subresource=subresource,
        name=name) is allowed


@pytest.mark.parametrize(("urls", "verb", "path", "allowed"), [
    (["/version"], "get", "/version", True),
    (["/version"], "get", "/version/", False),
    (["/version"], "post", "/version", False),
    (["/apis/*"], "get", "/apis/apps/v1", True),
    (["/apis/*"], "get", "/apis", False),
    (["/apis*"], "get", "/apis", True),
    (["/apis**"], "get", "/apisx", True),
    (["*"], "get", "/anything", True),
    (["/"], "access", "/", True),
    (["/"], "access", "/api", False),
])
def test_non_resource_rule_matching(urls: list[str], verb: str, path: str,
                                    allowed: bool) -> None:
    verbs = ["access"] if verb == "access" else ["get"]
    compiled = compile_rule({"verbs": verbs, "nonResourceURLs": urls})
    assert compiled.allows_non_resource(verb=verb, path=path) is allowed


def test_rule_json_omits_empty_lists_like_upstream() -> None:
    compiled = compile_rule({"verbs": ["get"], "apiGroups": [""], "resources": ["cm"]})
    assert compiled.resource_rule_json() == {"verbs": ["get"], "apiGroups": [""],
                                             "resources": ["cm"]}
    urls = compile_rule({"verbs": ["get"], "nonResourceURLs": ["/x"]})
    assert urls.non_resource_rule_json() == {"verbs": ["get"], "nonResourceURLs": ["/x"]}


def test_malformed_rules_are_skipped_not_fatal() -> None:
    role = decode_role({"metadata": {"name": "r"}, "rules": [None, {"verbs": "get"}, 3]})
    assert len(role.rules) == 1
    assert not role.rules[0].allows_resource(verb="get", api_group="", resource="x",
                                             subresource="", name="")


def test_binding_subjects_reduce_to_user_and_group_names() -> None:
    binding = decode_binding({
        "metadata": {"name": "b", "namespace": "ns1"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "bot"},
            {"kind": "ServiceAccount", "name": "other", "namespace": "ns2"},
            {"kind": "Robot", "name": "x"},
            {"kind": "User", "name": ""},
        ],
    })
    assert binding.subjects == (
        Subject("User", "alice", 'User "alice"'),
        Subject("Group", "devs", 'Group "devs"'),
        Subject("User", "system:serviceaccount:ns1:bot", 'ServiceAccount "bot/ns1"'),
        Subject("User", "system:serviceaccount:ns2:other", 'ServiceAccount "other/ns2"'),
    )
    assert binding.describe(binding.subjects[0]) == (
        'RoleBinding "b/ns1" of Role "r" to User "alice"')


def test_cluster_binding_service_account_needs_a_namespace() -> None:
    binding = decode_binding({
        "metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot"}],
    })
    assert binding.subjects == ()
    assert binding.role_kind == "ClusterRole"


def test_aggregation_selectors_match_labels_but_never_the_role_itself() -> None:
    aggregated = decode_role({
        "metadata": {"name": "agg", "labels": {"x": "1"}},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "1"}},
                                                     {"matchExpressions": [{"bad": 1}]}]},
    })
    assert aggregated.aggregation is not None and len(aggregated.aggregation) == 1
    assert aggregated.aggregates(decode_role({"metadata": {"name": "o", "labels": {"x": "1"}}}))
    assert not aggregated.aggregates(decode_role({"metadata": {"name": "o"}}))
    assert not aggregated.aggregates(aggregated)
    plain = decode_role({"metadata": {"name": "p"}})
    assert plain.aggregation is None
    assert not plain.aggregates(aggregated)
