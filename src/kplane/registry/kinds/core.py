"""Strategies of the core-group kinds: namespaces, configmaps, secrets, service accounts,
events, limit ranges and resource quotas."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from kplane.apimachinery.errors import (
    Cause,
    field_forbidden,
    field_invalid,
    field_required,
)
from kplane.registry.strategy import Strategy, label_name

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONFIG_KEY_MAX = 253
NAMESPACE_FINALIZER = "kubernetes"


def _check_config_keys(data: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(data, Mapping):
        return causes
    for key in data:
        if len(key) > _CONFIG_KEY_MAX or not _CONFIG_KEY.match(key):
            causes.append(field_invalid(
                f"{path}[{key}]", key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                "is '[-._a-zA-Z0-9]+')",
            ))
    return causes


class NamespaceStrategy(Strategy):
    name_validator = staticmethod(label_name)  # type: ignore[assignment]
    has_status_subresource = True

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        if not spec.get("finalizers"):
            spec["finalizers"] = [NAMESPACE_FINALIZER]
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        # spec.finalizers only change through the finalize subresource.
        new["spec"] = dict(old.get("spec") or {})
        labels = new["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = new["metadata"]["name"]


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes = _check_config_keys(obj.get("data"), "data")
        causes += _check_config_keys(obj.get("binaryData"), "binaryData")
        data = obj.get("data") or {}
        binary = obj.get("binaryData") or {}
        for key in set(data) & set(binary):
            causes.append(field_invalid(f"data[{key}]", key,
                                        "duplicate of key present in binaryData"))
        return causes

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        causes = self.validate(new)
        if old.get("immutable"):
            if new.get("immutable") is not True:
                causes.append(field_forbidden("immutable",
                                              "field is immutable when `immutable` is set"))
            for field in ("data", "binaryData"):
                if (new.get(field) or {}) != (old.get(field) or {}):
                    causes.append(field_forbidden(field,
                                                  "field is immutable when `immutable` is set"))
        return causes


class SecretStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        obj.setdefault("type", "Opaque")
        self._fold_string_data(obj)

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        if not new.get("type"):
            new["type"] = old.get("type", "Opaque")
        self._fold_string_data(new)

    @staticmethod
    def _fold_string_data(obj: dict[str, Any]) -> None:
        """stringData is write-only: merged into data (base64) and never stored."""
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, Mapping):
            data = obj.get("data")
            if not isinstance(data, dict):
                data = {}
            for key, value in string_data.items():
                if isinstance(value, str):
                    data[key] = base64.b64encode(value.encode()).decode()
            obj["data"] = data

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes = _check_config_keys(obj.get("data"), "data")
        data = obj.get("data") or {}
        for key, value in data.items() if isinstance(data, Mapping) else ():
            if isinstance(value, str):
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    causes.append(field_invalid(f"data[{key}]", "<secret contents redacted>",
                                                "illegal base64 data"))
        if obj.get("type") == "kubernetes.io/service-account-token":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if not annotations.get("kubernetes.io/service-account.name"):
                causes.append(field_required(
                    "metadata.annotations[kubernetes.io/service-account.name]"))
        return causes

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        causes = self.validate(new)
        if new.get("type") != old.get("type"):
            causes.append(field_invalid("type", new.get("type"), "field is immutable"))
        if old.get("immutable") and (new.get("data") or {}) != (old.get("data") or {}):
            causes.append(field_forbidden("data", "field is immutable when `immutable` is set"))
        return causes


class ResourceQuotaStrategy(Strategy):
    has_status_subresource = True


class EventStrategy(Strategy):
    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        involved = obj.get("involvedObject") if self.rt.group == "" else obj.get("regarding")
        field = "involvedObject" if self.rt.group == "" else "regarding"
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        if isinstance(involved, Mapping):
            other = involved.get("namespace") or ""
            if other and other != namespace:
                return [field_invalid(f"{field}.namespace", other,
                                      "does not match event.namespace")]
        return []
