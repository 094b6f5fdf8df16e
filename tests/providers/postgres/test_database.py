"""Provisioning inside a real PostgreSQL: roles, databases, extensions, refusals, removal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from kplane_postgres.database import Postgres, ProvisionError
from kplane_postgres.naming import MARKER, InstanceNames, instance_names
from kplane_postgres.spec import InstanceSpec
from tests.providers.postgres.pg_server import PostgresServer


def spec(**changes: Any) -> InstanceSpec:
    fields: dict[str, Any] = {"database_name": None, "secret_name": "x-postgres",
                              "extensions": (), "connection_limit": -1}
    fields.update(changes)
    return InstanceSpec(**fields)


def fresh_names() -> InstanceNames:
    return instance_names(uuid.uuid4().hex[:16], "default", "db", group="db.kplane.io")


def admin(pg: PostgresServer) -> psycopg.Connection[Any]:
    return psycopg.connect(pg.dsn(), autocommit=True)


def role_row(pg: PostgresServer, role: str) -> tuple[Any, ...] | None:
    with admin(pg) as conn:
        return conn.execute(
            "SELECT rolcanlogin, rolconnlimit, rolsuper, rolcreatedb, rolcreaterole,"
            " shobj_description(oid, 'pg_authid') FROM pg_authid WHERE rolname = %s",
            (role,)).fetchone()


def databases_owned_by(pg: PostgresServer, role: str) -> list[str]:
    with admin(pg) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datdba ="
                            " (SELECT oid FROM pg_roles WHERE rolname = %s)", (role,)).fetchall()
    return sorted(row[0] for row in rows)


def login(pg: PostgresServer, user: str, password: str, dbname: str) -> psycopg.Connection[Any]:
    return psycopg.connect(host=pg.host, port=pg.port, user=user, password=password,
                           dbname=dbname, connect_timeout=5)


@pytest.fixture
def postgres(pg: PostgresServer) -> Postgres:
    return Postgres(pg.dsn())


@pytest.fixture
async def names(postgres: Postgres) -> AsyncIterator[InstanceNames]:
    made = fresh_names()
    yield made
    await postgres.remove(made)


async def test_ensure_creates_a_login_role_that_owns_its_database(
        pg: PostgresServer, postgres: Postgres, names: InstanceNames) -> None:
    database = await postgres.ensure(names, spec(connection_limit=5), "pw-one")
    assert database == names.default_database
    assert role_row(pg, names.role) == (True, 5, False, False, False, MARKER)
    assert databases_owned_by(pg, names.role) == [database]
    with login(pg, names.role, "pw-one", database) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    with admin(pg) as conn:
        # Nobody but its owner may even connect to it.
        assert conn.execute("SELECT has_database_privilege('public', %s, 'CONNECT'),"
                            " shobj_description(oid, 'pg_database') FROM pg_database"
                            " WHERE datname = %s", (database, database)).fetchone() == (
            False, MARKER)


async def test_ensure_is_idempotent_and_keeps_the_stored_password(
        pg: PostgresServer, postgres: Postgres, names: InstanceNames) -> None:
    await postgres.ensure(names, spec(), "pw-one")
    with admin(pg) as conn:
        before = conn.execute("SELECT rolpassword, xmin::text FROM pg_authid WHERE rolname = %s",
                              (names.role,)).fetchone()
    assert await postgres.ensure(names, spec(), "pw-one") == names.default_database
    with admin(pg) as conn:
        after = conn.execute("SELECT rolpassword, xmin::text FROM pg_authid WHERE rolname = %s",
                             (names.role,)).fetchone()
    # Same verifier (same salt) and the row was not rewritten: nothing changed.
    assert after == before
    assert databases_owned_by(pg, names.role) == [names.default_database]


async def test_ensure_repairs_drift(pg: PostgresServer, postgres: Postgres,
                                    names: InstanceNames) -> None:
    await postgres.ensure(names, spec(), "pw-one")
    with admin(pg) as conn:
        role = sql.Identifier(names.role)
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN CONNECTION LIMIT 1 PASSWORD 'other'")
                     .format(role))
        conn.execute(sql.SQL("COMMENT ON ROLE {} IS 'hijacked'").format(role))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(
            sql.Identifier(names.default_database)))
    await postgres.ensure(names, spec(connection_limit=3), "pw-two")
    assert role_row(pg, names.role) == (True, 3, False, False, False, MARKER)
    with login(pg, names.role, "pw-two", names.default_database) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (names.default_database,)
    with admin(pg) as conn:
        assert conn.execute("SELECT has_database_privilege('public', %s, 'CONNECT')",
                            (names.default_database,)).fetchone() == (False,)


async def test_a_dropped_database_is_made_again(pg: PostgresServer, postgres: Postgres,
                                                names: InstanceNames) -> None:
    await postgres.ensure(names, spec(), "pw")
    with admin(pg) as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(names.default_database)))
    await postgres.ensure(names, spec(), "pw")
    assert databases_owned_by(pg, names.role) == [names.default_database]


async def test_a_requested_database_name(pg: PostgresServer, postgres: Postgres,
                                         names: InstanceNames) -> None:
    wanted = f"app_{uuid.uuid4().hex[:8]}"
    assert await postgres.ensure(names, spec(database_name=wanted), "pw") == wanted
    assert databases_owned_by(pg, names.role) == [wanted]
    # Once provisioned the name sticks: asking for another is refused, nothing is renamed.
    with pytest.raises(ProvisionError) as refused:
        await postgres.ensure(names, spec(database_name="something_else"), "pw")
    assert refused.value.reason == "DatabaseNameChanged"
    assert wanted in refused.value.message
    assert databases_owned_by(pg, names.role) == [wanted]


async def test_a_name_held_by_someone_else_is_refused_and_left_alone(
        pg: PostgresServer, postgres: Postgres, names: InstanceNames) -> None:
    other = fresh_names()
    taken = f"shared_{uuid.uuid4().hex[:8]}"
    try:
        await postgres.ensure(other, spec(database_name=taken), "theirs")
        with pytest.raises(ProvisionError) as refused:
            await postgres.ensure(names, spec(database_name=taken), "mine")
        assert refused.value.reason == "DatabaseNameTaken"
        # Nothing was made for the refused instance, and the other database is untouched.
        assert role_row(pg, names.role) is None
        assert databases_owned_by(pg, other.role) == [taken]
        # Removing the refused instance must not touch the other one's database.
        assert await postgres.remove(names) == []
        assert databases_owned_by(pg, other.role) == [taken]
    finally:
        await postgres.remove(other)


async def test_the_postgres_database_is_not_ours(postgres: Postgres,
                                                 names: InstanceNames) -> None:
    # spec parsing refuses this name already; the catalog check is the last line of defence.
    with pytest.raises(ProvisionError) as refused:
        await postgres.ensure(names, spec(database_name="postgres"), "pw")
    assert refused.value.reason == "DatabaseNameTaken"


async def test_tenants_cannot_reach_each_other(pg: PostgresServer, postgres: Postgres,
                                               names: InstanceNames) -> None:
    other = fresh_names()
    try:
        await postgres.ensure(names, spec(), "pw-a")
        await postgres.ensure(other, spec(), "pw-b")
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            login(pg, names.role, "pw-a", other.default_database)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            login(pg, other.role, "pw-a", other.default_database)
    finally:
        await postgres.remove(other)


async def test_trusted_extensions_are_created_as_the_tenant(
        pg: PostgresServer, postgres: Postgres, names: InstanceNames) -> None:
    database = await postgres.ensure(names, spec(extensions=("citext", "pg_trgm")), "pw")
    with login(pg, names.role, "pw", database) as conn:
        rows = conn.execute("SELECT e.extname, r.rolname FROM pg_extension e"
                            " JOIN pg_roles r ON r.oid = e.extowner"
                            " WHERE e.extname <> 'plpgsql' ORDER BY 1").fetchall()
        assert rows == [("citext", names.role), ("pg_trgm", names.role)]
        assert conn.execute("SELECT 'A'::citext = 'a'::citext").fetchone() == (True,)
    # Again: nothing to do, no error.
    await postgres.ensure(names, spec(extensions=("citext", "pg_trgm")), "pw")


@pytest.mark.parametrize(("extension", "reason"), [
    ("no_such_extension", "ExtensionUnavailable"),
    ("file_fdw", "ExtensionNotAllowed"),  # untrusted: would give the tenant the file system
])
async def test_extensions_that_cannot_be_had(pg: PostgresServer, postgres: Postgres,
                                             names: InstanceNames, extension: str,
                                             reason: str) -> None:
    with pytest.raises(ProvisionError) as refused:
        await postgres.ensure(names, spec(extensions=("citext", extension)), "pw")
    assert refused.value.reason == reason
    assert extension in refused.value.message
    # Refused before anything was made: no role, no database, no half-done extensions.
    assert role_row(pg, names.role) is None
    with admin(pg) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (names.default_database,)).fetchone() is None


async def test_remove_drops_database_and_role_even_with_open_sessions(
        pg: PostgresServer, postgres: Postgres) -> None:
    names = fresh_names()
    database = await postgres.ensure(names, spec(), "pw")
    session = login(pg, names.role, "pw", database)
    try:
        assert await postgres.remove(names) == [database]
    finally:
        session.close()
    assert role_row(pg, names.role) is None
    with admin(pg) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (database,)).fetchone() is None
    # Removing what is gone is fine.
    assert await postgres.remove(names) == []


async def test_concurrent_ensures_of_one_instance_make_one_of_each(
        pg: PostgresServer, postgres: Postgres, names: InstanceNames) -> None:
    results = await asyncio.gather(*(postgres.ensure(names, spec(), "pw") for _ in range(4)))
    assert set(results) == {names.default_database}
    assert databases_owned_by(pg, names.role) == [names.default_database]
