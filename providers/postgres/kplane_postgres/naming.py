"""PostgreSQL names for one PostgresInstance: deterministic, collision-free and always legal.

Every instance is identified by (logical cluster, namespace, name), and by the API group it
belongs to, so that providers of different groups can share one PostgreSQL server. Its role
and its default database are both named ``kp_<digest>``, the digest being 80 bits of SHA-256
over exactly those four strings: the same instance always gets the same names (so a
restarted provider finds its work), two instances never share one, and the name is far below
PostgreSQL's 63-byte limit, so the server never silently truncates it into someone else's.

The names carry nothing readable on purpose. Every role on a PostgreSQL server can read
``pg_database``, ``pg_roles`` and their comments, so namespace or instance names in there
would tell each tenant about the others. ``status.database`` and ``status.username`` say
which names belong to an instance.

Names are only ever passed to SQL through ``psycopg.sql.Identifier``; the patterns here are
a second line of defence and keep names free of quoting surprises for people reading logs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# NAMEDATALEN - 1: longer identifiers are truncated by the server.
MAX_IDENTIFIER_BYTES = 63
PREFIX = "kp_"
DIGEST_CHARS = 20
# The COMMENT on every role and database the provider made: a note for DBAs.
MARKER = "managed by kplane-postgres-provider"

# What a user may ask for as spec.databaseName; the schema carries the same pattern.
DATABASE_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_DATABASE_NAME = re.compile(DATABASE_NAME_PATTERN)
# Names PostgreSQL itself or every installation depends on.
RESERVED_DATABASES = frozenset({"postgres", "template0", "template1"})


@dataclass(frozen=True, slots=True)
class InstanceNames:
    """The PostgreSQL side of one instance."""

    role: str
    default_database: str
    marker: str = MARKER

    @property
    def lock_id(self) -> int:
        """A positive bigint for advisory locks: 60 bits of the digest."""
        return int(self.role[-15:], 16)


def digest(*parts: str) -> str:
    """A stable digest of the exact parts; the NUL separator cannot occur in any of them."""
    raw = "\0".join(parts).encode()
    return hashlib.sha256(raw).hexdigest()[:DIGEST_CHARS]


def instance_names(cluster: str, namespace: str, name: str, *, group: str) -> InstanceNames:
    base = f"{PREFIX}{digest(group, cluster, namespace, name)}"
    return InstanceNames(role=base, default_database=base)


def database_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a requested database name, or None if it can."""
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return f"databaseName {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes"
    if not _DATABASE_NAME.match(name):
        return (f"databaseName {name!r} must start with a lowercase letter and contain only "
                "lowercase letters, digits and underscores")
    if name in RESERVED_DATABASES or name.startswith(("pg_", PREFIX)):
        # kp_ is where generated names live: a requested name there could squat on another
        # instance's future default database.
        return (f"databaseName {name!r} is reserved (postgres, template0, template1 and "
                f"names starting with pg_ or {PREFIX})")
    return None
