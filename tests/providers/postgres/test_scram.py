"""SCRAM-SHA-256 verifiers made by the provider, checked against PostgreSQL itself: the server
accepts them for logins, and the provider recognises the verifiers the server computes."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from kplane_postgres import scram
from tests.providers.postgres.pg_server import PostgresServer


def test_a_verifier_is_deterministic_given_the_salt() -> None:
    salt = bytes(range(16))
    assert scram.verifier("pw", salt=salt) == scram.verifier("pw", salt=salt)
    assert scram.verifier("pw") != scram.verifier("pw")  # random salt
    assert scram.verifier("pw", salt=salt).startswith("SCRAM-SHA-256$4096:")


def test_matches_checks_the_password() -> None:
    stored = scram.verifier("right")
    assert scram.matches(stored, "right")
    assert not scram.matches(stored, "wrong")


@pytest.mark.parametrize("stored", [
    None, "", "md5e4bcf1c5d5b1ac4e04e9d3c8e3b2d0c1", "SCRAM-SHA-256$",
    "SCRAM-SHA-256$4096:!!!$abc:def", "SCRAM-SHA-256$x:AAAA$AAAA:AAAA",
    "SCRAM-SHA-256$0:AAAA$AAAA:AAAA", "SCRAM-SHA-256$99999999:AAAA$AAAA:AAAA",
])
def test_anything_else_does_not_match(stored: str | None) -> None:
    assert not scram.matches(stored, "whatever")


@pytest.fixture
def role(pg: PostgresServer) -> str:
    name = "scram_test_role"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    return name


def test_postgres_logs_in_with_our_verifier(pg: PostgresServer, role: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(scram.verifier("s3cret-Pass"))))
    try:
        with psycopg.connect(host=pg.host, port=pg.port, user=role, password="s3cret-Pass",
                             dbname="postgres") as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host=pg.host, port=pg.port, user=role, password="nope",
                            dbname="postgres")
    finally:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_we_recognise_what_postgres_computed(pg: PostgresServer, role: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        # The server hashes a plaintext password itself (password_encryption=scram-sha-256).
        conn.execute(sql.SQL("CREATE ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal("plain-text-pw")))
        try:
            row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                               (role,)).fetchone()
            assert row is not None
            assert scram.matches(row[0], "plain-text-pw")
            assert not scram.matches(row[0], "plain-text-pX")
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
