"""The credentials Secret: its content, reading a password back, and who owns it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kplane_postgres.secret import (
    Credentials,
    is_owned_by,
    needs_update,
    new_password,
    owner_name,
    secret_body,
    stored_password,
)

GROUP = "db.kplane.io"
INSTANCE = {"apiVersion": f"{GROUP}/v1", "kind": "PostgresInstance",
            "metadata": {"name": "orders", "namespace": "shop", "uid": "uid-1"}}


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def credentials(password: str = "p@ss/w:rd") -> Credentials:
    return Credentials(host="db.example", port=5433, database="kp_abc", username="kp_abc",
                       password=password)


def test_the_secret_carries_every_field_and_a_usable_uri() -> None:
    body = secret_body(INSTANCE, name="orders-postgres", group=GROUP, version="v1",
                       credentials=credentials(), existing=None)
    assert body["type"] == "Opaque"
    assert body["metadata"]["namespace"] == "shop"
    assert decoded(body) == {
        "host": "db.example", "port": "5433", "database": "kp_abc", "username": "kp_abc",
        "password": "p@ss/w:rd",
        "uri": "postgresql://kp_abc:p%40ss%2Fw%3Ard@db.example:5433/kp_abc"}
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": f"{GROUP}/v1", "kind": "PostgresInstance", "name": "orders",
         "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by":
                                          "kplane-postgres-provider",
                                          f"{GROUP}/instance": "orders"}
    assert is_owned_by(body, INSTANCE)
    assert owner_name(body, GROUP) == "orders"
    assert owner_name(body, "other.group.io") is None
    assert stored_password(body) == "p@ss/w:rd"


def test_ipv6_hosts_are_bracketed_in_the_uri() -> None:
    creds = Credentials(host="::1", port=5432, database="d", username="u", password="p")
    assert creds.uri == "postgresql://u:p@[::1]:5432/d"


def test_an_update_keeps_what_others_added_and_the_resource_version() -> None:
    existing = secret_body(INSTANCE, name="orders-postgres", group=GROUP, version="v1",
                           credentials=credentials("old"), existing=None)
    existing["metadata"]["resourceVersion"] = "42"
    existing["metadata"]["labels"]["team"] = "payments"
    existing["metadata"]["annotations"] = {"note": "keep"}
    wanted = secret_body(INSTANCE, name="orders-postgres", group=GROUP, version="v1",
                         credentials=credentials("old"), existing=existing)
    assert not needs_update(existing, wanted)
    assert wanted["metadata"]["resourceVersion"] == "42"
    assert wanted["metadata"]["labels"]["team"] == "payments"
    assert wanted["metadata"]["annotations"] == {"note": "keep"}
    changed = secret_body(INSTANCE, name="orders-postgres", group=GROUP, version="v1",
                          credentials=credentials("new"), existing=existing)
    assert needs_update(existing, changed)
    unlabelled = {**existing, "metadata": {**existing["metadata"], "labels": {}}}
    assert needs_update(unlabelled, wanted)


def test_a_secret_someone_else_made_is_not_ours() -> None:
    foreign = {"metadata": {"name": "orders-postgres", "ownerReferences": [
        {"kind": "PostgresInstance", "uid": "uid-2", "name": "orders", "controller": True,
         "apiVersion": f"{GROUP}/v1"}]}}
    assert not is_owned_by(foreign, INSTANCE)
    assert not is_owned_by({"metadata": {"name": "x"}}, INSTANCE)
    assert not is_owned_by(foreign, {"metadata": {"name": "orders"}})  # no uid: never


@pytest.mark.parametrize("data", [
    None, {}, {"password": ""}, {"password": "!!!not base64"},
    {"password": base64.b64encode("naïve".encode()).decode()},
    {"password": base64.b64encode(b"has space").decode()},
    {"password": base64.b64encode(b"\xff\xfe").decode()},
])
def test_unusable_stored_passwords(data: Any) -> None:
    assert stored_password({"data": data}) is None


def test_new_passwords_are_long_random_and_uri_safe() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) >= 32
        assert password.replace("-", "").replace("_", "").isalnum()
