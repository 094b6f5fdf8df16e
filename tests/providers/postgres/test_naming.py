"""Names for roles and databases: deterministic, distinct, legal, and accepted unchanged by a
real PostgreSQL (which would silently truncate anything longer than 63 bytes)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from kplane_postgres.naming import (
    MAX_IDENTIFIER_BYTES,
    InstanceNames,
    database_name_problem,
    instance_names,
)
from tests.providers.postgres.pg_server import PostgresServer

GROUP = "db.kplane.io"


def names_of(cluster: str, namespace: str, name: str, group: str = GROUP) -> InstanceNames:
    return instance_names(cluster, namespace, name, group=group)


def test_names_are_deterministic_and_depend_on_every_part() -> None:
    one = names_of("2x8k1p0q4mz9a7bc", "default", "orders")
    assert one == names_of("2x8k1p0q4mz9a7bc", "default", "orders")
    others = {names_of("other0cluster000", "default", "orders").role,
              names_of("2x8k1p0q4mz9a7bc", "prod", "orders").role,
              names_of("2x8k1p0q4mz9a7bc", "default", "orders2").role,
              # The separator cannot be smuggled in through a part.
              names_of("2x8k1p0q4mz9a7bc", "default-orders", "").role,
              names_of("2x8k1p0q4mz9a7bc", "", "default-orders").role,
              names_of("2x8k1p0q4mz9a7bc", "default", "orders", "other.example.io").role}
    assert one.role not in others and len(others) == 6


def test_names_leak_nothing_about_the_instance() -> None:
    names = names_of("2x8k1p0q4mz9a7bc", "payments", "customer-ledger")
    for text in ("payments", "customer", "ledger", "2x8k1p0q4mz9a7bc"):
        assert text not in names.role
        assert text not in names.marker


@pytest.mark.parametrize(("cluster", "namespace", "name"), [
    ("root", "default", "a"),
    ("system:admin", "ns", "x" * 253),
    ("0123456789abcdef", "n" * 63, "very.long.name-with.dots" * 10),
    ("root", "default", "Ünïcödé"),
])
def test_names_are_short_lowercase_identifiers(cluster: str, namespace: str, name: str) -> None:
    names = names_of(cluster, namespace, name)
    assert names.role == names.default_database
    assert len(names.role.encode()) <= MAX_IDENTIFIER_BYTES
    assert names.role.startswith("kp_")
    assert names.role.isascii() and names.role == names.role.lower()
    assert names.role.replace("_", "").isalnum()
    assert 0 < names.lock_id < 2**63


def test_postgres_keeps_the_names_exactly(pg: PostgresServer) -> None:
    names = names_of("0123456789abcdef", "n" * 63, "m" * 253)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(names.role)))
        try:
            found = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = %s",
                                 (names.role,)).fetchone()
            assert found == (names.role,)
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(names.role)))


@pytest.mark.parametrize("name", ["orders", "app_db_2", "a", "x" * 63])
def test_acceptable_database_names(name: str) -> None:
    assert database_name_problem(name) is None


@pytest.mark.parametrize(("name", "why"), [
    ("x" * 64, "longer than 63"),
    ("Orders", "lowercase"),
    ("1db", "start with a lowercase letter"),
    ("my-db", "only lowercase"),
    ('db"; DROP DATABASE postgres; --', "only lowercase"),
    ("", "start with"),
    ("postgres", "reserved"),
    ("template1", "reserved"),
    ("pg_anything", "reserved"),
    ("kp_0123456789abcdef0123", "reserved"),
])
def test_refused_database_names(name: str, why: str) -> None:
    problem = database_name_problem(name)
    assert problem is not None and why in problem
