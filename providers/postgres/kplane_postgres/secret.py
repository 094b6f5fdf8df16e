"""The credentials Secret an instance gets in its own namespace, and reading one back.

The Secret is the only place the role's password is kept: a reconcile reuses the password
of the Secret it finds (so restarts never rotate credentials) and makes a new one only when
there is no Secret. A Secret of that name that this instance does not own (no controller
ownerReference with the instance's UID) is left alone, never overwritten.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kplane_postgres.api import KIND

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kplane-postgres-provider"
PASSWORD_BYTES = 24


def instance_label(group: str) -> str:
    """The label naming the owning instance; the provider's Secret informer selects on it."""
    return f"{group}/instance"


@dataclass(frozen=True, slots=True)
class Credentials:
    host: str
    port: int
    database: str
    username: str
    password: str

    @property
    def uri(self) -> str:
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{user}:{password}@{host}:{self.port}/{quote(self.database)}"

    def data(self) -> dict[str, str]:
        fields = {"host": self.host, "port": str(self.port), "database": self.database,
                  "username": self.username, "password": self.password, "uri": self.uri}
        return {key: base64.b64encode(value.encode()).decode("ascii")
                for key, value in fields.items()}


def new_password() -> str:
    # URL-safe characters: the password goes into the uri without surprises.
    return secrets.token_urlsafe(PASSWORD_BYTES)


def owner_reference(instance: Mapping[str, Any], group: str, version: str) -> dict[str, Any]:
    meta = instance.get("metadata") or {}
    return {"apiVersion": f"{group}/{version}", "kind": KIND, "name": meta.get("name", ""),
            "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def is_owned_by(secret: Mapping[str, Any], instance: Mapping[str, Any]) -> bool:
    uid = (instance.get("metadata") or {}).get("uid")
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(isinstance(ref, Mapping) and ref.get("uid") == uid
                             and ref.get("kind") == KIND for ref in refs)


def owner_name(secret: Mapping[str, Any], group: str) -> str | None:
    """The name of the PostgresInstance (of ``group``) that controls this Secret, if any."""
    for ref in (secret.get("metadata") or {}).get("ownerReferences") or []:
        if (isinstance(ref, Mapping) and ref.get("kind") == KIND and ref.get("controller")
                and str(ref.get("apiVersion", "")).startswith(f"{group}/")):
            return str(ref.get("name") or "") or None
    return None


def stored_password(secret: Mapping[str, Any]) -> str | None:
    """The password kept in the Secret, or None when it has none that could be one."""
    encoded = (secret.get("data") or {}).get("password")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        password = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    # Only printable ASCII: what we generate, and what SCRAM needs no normalisation for.
    if not password or not all(" " < ch <= "~" for ch in password):
        return None
    return password


def secret_body(instance: Mapping[str, Any], *, name: str, group: str, version: str,
                credentials: Credentials,
                existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Secret as it should be; based on ``existing`` (for resourceVersion and any labels
    or annotations others added) when there is one."""
    meta = instance.get("metadata") or {}
    base: dict[str, Any] = dict(existing) if existing else {}
    metadata: dict[str, Any] = dict(base.get("metadata") or {})
    metadata.update({"name": name, "namespace": meta.get("namespace", "")})
    labels = dict(metadata.get("labels") or {})
    labels.update({MANAGED_BY_LABEL: MANAGED_BY, instance_label(group): meta.get("name", "")})
    metadata["labels"] = labels
    metadata["ownerReferences"] = [owner_reference(instance, group, version)]
    base.update({"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                 "type": "Opaque", "data": credentials.data()})
    base.pop("stringData", None)
    return base


def needs_update(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether ``existing`` lacks something of ``wanted``. Only what the provider sets is
    compared, loosely: the server may add or normalise other fields, and a stricter
    comparison would rewrite the Secret on every event it causes itself."""
    old_meta = existing.get("metadata") or {}
    new_meta = wanted.get("metadata") or {}
    old_labels = old_meta.get("labels") or {}
    labels_ok = all(old_labels.get(k) == v for k, v in (new_meta.get("labels") or {}).items())
    owners = {(ref.get("uid"), bool(ref.get("controller")))
              for ref in old_meta.get("ownerReferences") or [] if isinstance(ref, Mapping)}
    owners_ok = all((ref.get("uid"), bool(ref.get("controller"))) in owners
                    for ref in new_meta.get("ownerReferences") or [])
    return existing.get("data") != wanted.get("data") or not labels_ok or not owners_ok
