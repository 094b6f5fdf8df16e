"""Who someone is, as every layer sees it: :class:`UserInfo` and the well-known groups.

Authentication (:mod:`kplane.auth.authn`) produces these values; authorization, audit,
admission and the tenancy rules read them. They live at the bottom of the layers so that
any layer may name a user without depending on how users are authenticated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SYSTEM_MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated (or anonymous) identity; immutable, so one instance can be shared
    by every request of a connection."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    # Excluded from the hash because a mapping is not hashable; still compared by ==.
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @property
    def is_system_master(self) -> bool:
        """Members of ``system:masters`` bypass authorization entirely, as upstream."""
        return SYSTEM_MASTERS in self.groups

    @property
    def is_anonymous(self) -> bool:
        return self.name == ANONYMOUS_USER

    def with_authenticated_group(self) -> UserInfo:
        """This user, also in ``system:authenticated`` (unchanged if already, or anonymous)."""
        if self.is_anonymous or AUTHENTICATED in self.groups:
            return self
        return UserInfo(
            name=self.name, groups=(*self.groups, AUTHENTICATED), uid=self.uid, extra=self.extra
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``authentication.k8s.io/v1`` ``UserInfo`` JSON (SelfSubjectReview, TokenReview,
        SubjectAccessReview), leaving out empty fields as upstream's ``omitempty`` does."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {key: list(values) for key, values in self.extra.items()}
        return out
