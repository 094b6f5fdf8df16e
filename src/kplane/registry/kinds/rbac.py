"""Strategies of the RBAC kinds: roles, cluster roles and their bindings.

RBAC objects are stored and served here; enforcing them is the authorizer's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplane.apimachinery.errors import Cause, field_invalid, field_not_supported, field_required
from kplane.registry.strategy import Strategy, path_segment_name

_SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]
_ROLE_REF_KINDS = {"Role", "ClusterRole"}


def _check_rules(rules: Any) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(rules, list):
        return causes
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            continue
        if not rule.get("verbs"):
            causes.append(field_required(f"rules[{i}].verbs",
                                         "verbs must contain at least one value"))
        if rule.get("nonResourceURLs") and (rule.get("resources") or rule.get("apiGroups")):
            causes.append(field_invalid(
                f"rules[{i}].nonResourceURLs", rule.get("nonResourceURLs"),
                "rules cannot apply to both regular resources and non-resource URLs",
            ))
    return causes


class RoleStrategy(Strategy):
    name_validator = staticmethod(path_segment_name)  # type: ignore[assignment]

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes = _check_rules(obj.get("rules"))
        if self.rt.namespaced:
            for i, rule in enumerate(obj.get("rules") or []):
                if isinstance(rule, Mapping) and rule.get("nonResourceURLs"):
                    causes.append(field_invalid(
                        f"rules[{i}].nonResourceURLs", rule["nonResourceURLs"],
                        "namespaced rules cannot apply to non-resource URLs"))
        return causes


class BindingStrategy(Strategy):
    name_validator = staticmethod(path_segment_name)  # type: ignore[assignment]

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        ref = obj.get("roleRef")
        if not isinstance(ref, Mapping):
            causes.append(field_required("roleRef"))
        else:
            if ref.get("apiGroup") != "rbac.authorization.k8s.io":
                causes.append(field_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""),
                                                  ["rbac.authorization.k8s.io"]))
            allowed = sorted(_ROLE_REF_KINDS) if self.rt.namespaced else ["ClusterRole"]
            if ref.get("kind") not in allowed:
                causes.append(field_not_supported("roleRef.kind", ref.get("kind", ""), allowed))
            if not ref.get("name"):
                causes.append(field_required("roleRef.name"))
        for i, subject in enumerate(obj.get("subjects") or []):
            if not isinstance(subject, Mapping):
                continue
            if subject.get("kind") not in _SUBJECT_KINDS:
                causes.append(field_not_supported(f"subjects[{i}].kind", subject.get("kind", ""),
                                                  _SUBJECT_KINDS))
            if not subject.get("name"):
                causes.append(field_required(f"subjects[{i}].name"))
            if subject.get("kind") == "ServiceAccount" and not self.rt.namespaced \
                    and not subject.get("namespace"):
                causes.append(field_required(f"subjects[{i}].namespace"))
        return causes

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        causes = self.validate(new)
        if new.get("roleRef") != old.get("roleRef"):
            causes.append(field_invalid("roleRef", new.get("roleRef"),
                                        "cannot change roleRef"))
        return causes
