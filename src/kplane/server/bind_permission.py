"""Who may bind an export: verb ``bind`` on the APIExport, in the export's workspace.

An APIBinding gives the export's provider a way into the consumer's workspace (its claimed
resources) and the consumer the export's types, so the export's owners decide who may bind
it, with an ordinary RBAC rule in their own workspace (``apiexports``, verb ``bind``,
optionally by resource name). The check runs when a binding is created; its reference is
immutable afterwards. A reference to a workspace that does not exist is refused the same
way as a missing permission, so the answer does not reveal which workspaces exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplane.apimachinery import errors
from kplane.auth.authn import UserInfo
from kplane.auth.authorizer import Attributes
from kplane.registry import builtin
from kplane.server.security import Security
from kplane.tenancy.names import is_valid_reference
from kplane.tenancy.resolver import ClusterResolver

BIND_VERB = "bind"
BINDING_TYPES = (builtin.API_BINDINGS, builtin.API_BINDINGS_V1ALPHA1)


class BindPermission:
    def __init__(self, *, security: Security, resolver: ClusterResolver) -> None:
        self._security = security
        self._resolver = resolver

    def check(self, user: UserInfo | None, cluster: str, body: Any) -> None:
        """Raise 403 unless ``user`` may bind the export ``body`` (an APIBinding) names.
        Malformed bodies pass through: validation answers them with a clearer 422."""
        if user is None or not isinstance(body, Mapping):
            return
        spec = body.get("spec")
        reference = (spec.get("reference") or {}) if isinstance(spec, Mapping) else {}
        export = reference.get("export") if isinstance(reference, Mapping) else None
        if not isinstance(export, Mapping) or not isinstance(export.get("name"), str):
            return
        path = export.get("path") or ""
        name = str(export["name"])
        if not isinstance(path, str) or (path and not is_valid_reference(path)):
            binding = (body.get("metadata") or {}).get("name") if isinstance(
                body.get("metadata"), Mapping) else ""
            raise errors.invalid("APIBinding", builtin.API_BINDINGS.group, str(binding or ""), [
                errors.field_invalid("spec.reference.export.path", path,
                                     "must be a workspace path (root:org:team) or a logical "
                                     "cluster name")])
        export_cluster = self._resolver.resolve(str(path)) if path else cluster
        where = f"{path}:{name}" if path else name
        if export_cluster is not None:
            attributes = Attributes(user=user, verb=BIND_VERB, cluster=export_cluster,
                                    api_group=builtin.API_EXPORTS.group, api_version="",
                                    resource="apiexports", name=name)
            if self._security.authorize(attributes):
                return
        raise errors.forbidden(
            f'unable to create APIBinding: no permission to bind to export "{where}": '
            f'User "{user.name}" needs the verb "bind" on apiexports "{name}" in that '
            "workspace", group=builtin.API_BINDINGS.group, kind="apibindings")
