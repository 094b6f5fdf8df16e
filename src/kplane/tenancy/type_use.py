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

This module owns the rule, the creator and the denial; the RBAC question itself is asked
by :class:`kplane.auth.type_use.TypeUsePermission` (the authorizer sits above this layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import orjson

from kplane.apimachinery import errors
from kplane.apimachinery.users import UserInfo
from kplane.registry import builtin
from kplane.registry.kinds.tenancy import OWNER_ANNOTATION
from kplane.tenancy.types import WorkspaceType


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


class TypeUseCheck(Protocol):
    """Whether a creator may use WorkspaceTypes; the auth layer implements it with RBAC
    (:class:`kplane.auth.type_use.TypeUsePermission`)."""

    def may_use(self, user: UserInfo, cluster: str | None, name: str) -> bool:
        """Whether ``user`` holds ``use`` on ``workspacetypes/<name>`` in ``cluster``
        (None: a workspace that does not exist, where nobody does)."""

    def check(self, user: UserInfo, workspace: str, kinds: Iterable[WorkspaceType], *,
              shown: str) -> None: ...


def denial(workspace: str, shown: str) -> errors.StatusError:
    """kcp's wording, the same for a type that exists and one that does not."""
    qualified = errors.qualified_resource(builtin.WORKSPACES.resource, builtin.WORKSPACES.group)
    return errors.forbidden(
        f'{qualified} "{workspace}" is forbidden: unable to use cluster workspace type '
        f"{shown}: missing verb='use' permission on workspacetype",
        name=workspace, group=builtin.WORKSPACES.group, kind=builtin.WORKSPACES.resource)
