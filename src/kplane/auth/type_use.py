"""RBAC's answer to "may this user use this WorkspaceType", in the type's own workspace.

The tenancy admission (:mod:`kplane.tenancy.type_use` says the rule and words the denial)
asks through its ``TypeUseCheck`` protocol; this is the implementation, here because it
needs the authorizer, which sits above the tenancy layer.
"""

from __future__ import annotations

from collections.abc import Iterable

from kplane.apimachinery.users import UserInfo
from kplane.auth.authorizer import Attributes, Authorizer
from kplane.registry import builtin
from kplane.tenancy.type_use import denial
from kplane.tenancy.types import WorkspaceType

USE_VERB = "use"
_GROUP = builtin.WORKSPACE_TYPES.group
_VERSION = builtin.WORKSPACE_TYPES.version
_RESOURCE = builtin.WORKSPACE_TYPES.resource


class TypeUsePermission:
    """RBAC's answer to "may this user use this type", in the type's own workspace."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    def may_use(self, user: UserInfo, cluster: str | None, name: str) -> bool:
        if user.is_system_master:
            return True
        if cluster is None:
            return False
        attributes = Attributes(user=user, verb=USE_VERB, cluster=cluster, api_group=_GROUP,
                                api_version=_VERSION, resource=_RESOURCE, name=name)
        return self._authorizer.authorize(attributes).allowed

    def check(self, user: UserInfo, workspace: str, kinds: Iterable[WorkspaceType], *,
              shown: str) -> None:
        """Raise 403 unless ``user`` may use every type in ``kinds`` (the requested one
        first, named ``shown`` in a denial; the types it extends by their own names)."""
        for index, kind in enumerate(kinds):
            if not self.may_use(user, kind.cluster or None, kind.name):
                raise denial(workspace, shown if index == 0 else kind.reference)
