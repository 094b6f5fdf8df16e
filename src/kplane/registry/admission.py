"""Admission: checks and defaults that need more than the object itself.

A Strategy sees one object. Some kinds need to look elsewhere before a write is accepted:
a Workspace's type must be allowed under its parent's type, and its logical cluster name is
chosen by the server. Such rules are admission plugins. The Store runs every plugin that
handles the kind after the Strategy has prepared the object and before validation, so a
plugin may both default fields and refuse the write (by raising a StatusError).
"""

from __future__ import annotations

from typing import Any, Protocol

from kplane.registry.resources import ResourceType


class AdmissionPlugin(Protocol):
    def handles(self, rt: ResourceType) -> bool:
        """Whether this plugin has anything to say about writes of ``rt``."""

    async def admit_create(self, *, rt: ResourceType, cluster: str,
                           obj: dict[str, Any]) -> None:
        """Default or refuse a new object (in place)."""

    async def admit_update(self, *, rt: ResourceType, cluster: str, new: dict[str, Any],
                           old: dict[str, Any]) -> None:
        """Default or refuse an update (in place)."""
