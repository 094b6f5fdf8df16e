"""The options a request passes to the Store, parsed once by the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass, field

FIELD_VALIDATION_MODES = ("Ignore", "Warn", "Strict")


@dataclass(slots=True)
class WriteOptions:
    """What every write carries besides the object itself."""

    field_manager: str = ""
    dry_run: bool = False
    field_validation: str = "Warn"
    # Filled in by the Store for the caller to turn into ``Warning:`` headers.
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    # Only a watch acts on it; a list parses it (strictly, as upstream) and ignores it.
    timeout_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    uid: str = ""
    resource_version: str = ""
    propagation_policy: str = ""
    # Type-checked and kept, without effect: no kind served here deletes gracefully.
    grace_period_seconds: int | None = None
    dry_run: bool = False
