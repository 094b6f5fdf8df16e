"""What the provider does inside PostgreSQL: one role and one database per instance.

Every operation opens its own short ``AsyncConnection`` with the administrator DSN (so a
restarted PostgreSQL needs no reconnect logic) and takes a session advisory lock on the
instance, so two provider processes (say, during a rolling restart) never interleave their
steps for one instance. All steps are idempotent: each looks at the catalogs first and
changes only what differs, so a reconcile after a crash at any point finishes the job.

Ownership is decided by the catalogs, not by names: the instance's database is whichever
database its role owns. A requested name held by anyone else is refused rather than taken
over, and deletion drops only what the role owns. Role and database also carry a COMMENT
saying who manages them, for people looking at the server.

Identifiers always go through ``psycopg.sql.Identifier`` and values through bind parameters
or ``sql.Literal``; no SQL is built by string formatting.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import tuple_row

from kplane_postgres import scram
from kplane_postgres.naming import InstanceNames
from kplane_postgres.spec import InstanceSpec

log = logging.getLogger(__name__)


class ProvisionError(Exception):
    """PostgreSQL cannot give this instance what its spec asks for (not a transient error)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class RoleState:
    password: str | None
    can_login: bool
    connection_limit: int
    comment: str | None


class Postgres:
    """The PostgreSQL server databases are provisioned on, reached with an admin DSN."""

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout

    @contextlib.asynccontextmanager
    async def connect(self, dbname: str | None = None) -> AsyncIterator[
            psycopg.AsyncConnection[tuple[Any, ...]]]:
        """An autocommit connection as the administrator (to ``dbname`` if given)."""
        extra: dict[str, Any] = {"connect_timeout": self._connect_timeout,
                                 "application_name": "kplane-postgres-provider"}
        if dbname is not None:
            extra["dbname"] = dbname
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True,
                                                     row_factory=tuple_row, **extra)
        try:
            yield conn
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def _locked(self, names: InstanceNames) -> AsyncIterator[
            psycopg.AsyncConnection[tuple[Any, ...]]]:
        async with self.connect() as conn:
            # Released when the connection closes, whatever happens in between.
            await conn.execute("SELECT pg_advisory_lock(%s)", (names.lock_id,))
            yield conn

    # Reading ---------------------------------------------------------------------------

    @staticmethod
    async def _role(conn: psycopg.AsyncConnection[tuple[Any, ...]],
                    role: str) -> RoleState | None:
        cur = await conn.execute(
            "SELECT rolpassword, rolcanlogin, rolconnlimit, shobj_description(oid, 'pg_authid')"
            " FROM pg_authid WHERE rolname = %s", (role,))
        row = await cur.fetchone()
        if row is None:
            return None
        return RoleState(password=row[0], can_login=bool(row[1]),
                         connection_limit=int(row[2]), comment=row[3])

    @staticmethod
    async def _owned_databases(conn: psycopg.AsyncConnection[tuple[Any, ...]],
                               role: str) -> list[str]:
        cur = await conn.execute(
            "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
            " WHERE r.rolname = %s ORDER BY d.datname", (role,))
        return [str(row[0]) for row in await cur.fetchall()]

    @staticmethod
    async def _database_owner(conn: psycopg.AsyncConnection[tuple[Any, ...]],
                              database: str) -> str | None:
        cur = await conn.execute(
            "SELECT r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
            " WHERE d.datname = %s", (database,))
        row = await cur.fetchone()
        return None if row is None else str(row[0])

    # Provisioning ----------------------------------------------------------------------

    async def ensure(self, names: InstanceNames, spec: InstanceSpec, password: str) -> str:
        """Make the role and database exist as the spec says; returns the database name."""
        async with self._locked(names) as conn:
            # Refusals first, so a spec that cannot be honoured leaves nothing behind.
            await self._check_extensions(conn, spec.extensions)
            await self._check_database_name(conn, names, spec)
            await self._ensure_role(conn, names, spec, password)
            database = await self._ensure_database(conn, names, spec)
        if spec.extensions:
            await self._ensure_extensions(names, database, spec.extensions)
        return database

    @staticmethod
    async def _check_extensions(conn: psycopg.AsyncConnection[tuple[Any, ...]],
                                extensions: tuple[str, ...]) -> None:
        if not extensions:
            return
        cur = await conn.execute(
            "SELECT e.name, v.trusted FROM pg_available_extensions e"
            " JOIN pg_available_extension_versions v"
            " ON v.name = e.name AND v.version = e.default_version"
            " WHERE e.name = ANY(%s)", (list(extensions),))
        trusted = {str(row[0]): bool(row[1]) for row in await cur.fetchall()}
        missing = [name for name in extensions if name not in trusted]
        if missing:
            raise ProvisionError("ExtensionUnavailable",
                                 f"extensions not available on this server: "
                                 f"{', '.join(missing)}")
        untrusted = [name for name in extensions if not trusted[name]]
        if untrusted:
            # Untrusted extensions (file_fdw, dblink, ...) would hand the tenant powers
            # over the server; trusted ones are those a database owner may install itself.
            raise ProvisionError("ExtensionNotAllowed",
                                 f"only trusted extensions can be requested: "
                                 f"{', '.join(untrusted)}")

    async def _check_database_name(self, conn: psycopg.AsyncConnection[tuple[Any, ...]],
                                   names: InstanceNames, spec: InstanceSpec) -> None:
        wanted = spec.database_name or names.default_database
        owner = await self._database_owner(conn, wanted)
        if owner is not None and owner != names.role:
            raise ProvisionError(
                "DatabaseNameTaken",
                f"a database named {wanted!r} already exists and belongs to someone else")

    async def _ensure_role(self, conn: psycopg.AsyncConnection[tuple[Any, ...]],
                           names: InstanceNames, spec: InstanceSpec, password: str) -> None:
        role = sql.Identifier(names.role)
        state = await self._role(conn, names.role)
        if state is None:
            try:
                async with conn.transaction():
                    await conn.execute(sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {} PASSWORD {}").format(
                        role, sql.Literal(spec.connection_limit),
                        sql.Literal(scram.verifier(password))))
                    await conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                        role, sql.Literal(names.marker)))
                log.info("created role %s", names.role)
                return
            except errors.DuplicateObject:
                state = await self._role(conn, names.role)
                if state is None:
                    raise
        changes: list[sql.Composable] = []
        if not state.can_login:
            changes.append(sql.SQL("LOGIN"))
        if state.connection_limit != spec.connection_limit:
            changes.append(sql.SQL("CONNECTION LIMIT {}").format(
                sql.Literal(spec.connection_limit)))
        if not scram.matches(state.password, password):
            changes.append(sql.SQL("PASSWORD {}").format(sql.Literal(scram.verifier(password))))
        if changes:
            await conn.execute(sql.SQL("ALTER ROLE {} ").format(role)
                               + sql.SQL(" ").join(changes))
            log.info("updated role %s", names.role)
        if state.comment != names.marker:
            await conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                role, sql.Literal(names.marker)))

    async def _ensure_database(self, conn: psycopg.AsyncConnection[tuple[Any, ...]],
                               names: InstanceNames, spec: InstanceSpec) -> str:
        wanted = spec.database_name or names.default_database
        owned = await self._owned_databases(conn, names.role)
        if owned and wanted not in owned:
            raise ProvisionError(
                "DatabaseNameChanged",
                f"this instance's database is {owned[0]!r}; it cannot become {wanted!r}")
        if not owned:
            owner = await self._database_owner(conn, wanted)
            if owner is None:
                try:
                    await conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(wanted), sql.Identifier(names.role)))
                    log.info("created database %s", wanted)
                except errors.DuplicateDatabase:
                    owner = await self._database_owner(conn, wanted)
                else:
                    owner = names.role
            if owner != names.role:
                raise ProvisionError(
                    "DatabaseNameTaken",
                    f"a database named {wanted!r} already exists and belongs to someone else")
        database = sql.Identifier(wanted)
        cur = await conn.execute(
            "SELECT shobj_description(oid, 'pg_database'),"
            " has_database_privilege('public', oid, 'CONNECT')"
            " FROM pg_database WHERE datname = %s", (wanted,))
        row = await cur.fetchone()
        if row is None:  # dropped by someone between two statements: try again later
            raise RuntimeError(f"database {wanted!r} disappeared while provisioning")
        if row[0] != names.marker:
            await conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                database, sql.Literal(names.marker)))
        if row[1]:
            # Other tenants' roles may not even connect; the owner keeps its own rights.
            await conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                database))
        return wanted

    async def _ensure_extensions(self, names: InstanceNames, database: str,
                                 extensions: tuple[str, ...]) -> None:
        """Create the (already checked) extensions the database does not have yet."""
        async with self.connect(database) as conn:
            cur = await conn.execute("SELECT extname FROM pg_extension")
            installed = {str(row[0]) for row in await cur.fetchall()}
            for name in extensions:
                if name in installed:
                    continue
                # As the database's own role: the provider installs only what the tenant
                # could install itself, and the tenant owns (and may drop) the extension.
                async with conn.transaction():
                    await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(
                        sql.Identifier(names.role)))
                    await conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(
                        sql.Identifier(name)))
                log.info("created extension %s in %s", name, database)

    # Removing --------------------------------------------------------------------------

    async def remove(self, names: InstanceNames) -> list[str]:
        """Drop the instance's databases and role; returns the databases dropped."""
        async with self._locked(names) as conn:
            owned = await self._owned_databases(conn, names.role)
            for database in owned:
                await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database)))
                log.info("dropped database %s", database)
            if await self._role(conn, names.role) is not None:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usename = %s", (names.role,))
                role = sql.Identifier(names.role)
                # Whatever it still owns or was granted in the admin database.
                await conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
                await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
                log.info("dropped role %s", names.role)
            return owned
