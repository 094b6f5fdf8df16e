"""Who may use a WorkspaceType: verb ``use`` on ``workspacetypes/<name>``, in the type's
workspace.

As kcp's WorkspaceTypeExists admission does, creating a Workspace requires the creator to
hold ``use`` on its type and on every type that type extends, each in the workspace that
defines it, under that workspace's RBAC. ``system:masters`` bypasses the check, and so does
the server itself. Root's built-in types are usable by every authenticated user through an
ordinary ClusterRole and binding in root (:mod:`kplane.tenancy.bootstrap`), so an operator
can narrow that as in kcp.

The creator is read from the Workspace's owner annotation, which the HTTP layer writes for
every creator except ``system:masters`` (replacing whatever a client sent). A Workspace
without it was created by ``system:masters`` or by the server.

A denial reads the same whether the type exists or not, and names the type as the client
wrote it: someone without ``use`` learns nothing about what another workspace holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from kplane.apimachinery import errors
from kplane.auth.authn import UserInfo
from kplane.auth.authorizer import Attributes, Authorizer
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import OWNER_ANNOTATION
from kplane.tenancy.types import WorkspaceType

USE_VERB = "use"
_GROUP = builtin.WORKSPACE_TYPES.group
_VERSION = builtin.WORKSPACE_TYPES.version
_RESOURCE = builtin.WORKSPACE_TYPES.resource


def creator_of(workspace: Mapping[str, Any]) -> UserInfo | None:
    """Who is creating ``workspace``; None for system:masters and the server itself."""
    annotations = (workspace.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(OWNER_ANNOTATION) if isinstance(annotations, Mapping) else None
    if text is None:
        return None
    try:
        owner = orjson.loads(text) if isinstance(text, str) else None
    except orjson.JSONDecodeError:
        owner = None
    name = owner.get("username") if isinstance(owner, dict) else None
    groups = owner.get("groups") if isinstance(owner, dict) else None
    if not isinstance(name, str) or not name or not isinstance(groups, list) or not all(
            isinstance(g, str) for g in groups):
        # Only the server writes it, and always well-formed; anything else is forged.
        raise errors.forbidden(
            f"metadata.annotations[{OWNER_ANNOTATION}] is set by the server, not by clients")
    return UserInfo(name=name, groups=tuple(groups)).with_authenticated_group()


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


def denial(workspace: str, shown: str) -> errors.StatusError:
    """kcp's wording, the same for a type that exists and one that does not."""
    qualified = errors.qualified_resource(builtin.WORKSPACES.resource, builtin.WORKSPACES.group)
    return errors.forbidden(
        f'{qualified} "{workspace}" is forbidden: unable to use cluster workspace type '
        f"{shown}: missing verb='use' permission on workspacetype",
        name=workspace, group=builtin.WORKSPACES.group, kind=builtin.WORKSPACES.resource)
