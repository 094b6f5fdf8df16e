"""Reading specs: defaults, and every bad spec becomes a SpecError with a reason, not a crash."""

from __future__ import annotations

from typing import Any

import pytest

from kplane_postgres.spec import InstanceSpec, SpecError, parse_spec


def instance(spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "orders", "namespace": "default"}}
    if spec is not ...:
        obj["spec"] = spec
    return obj


@pytest.mark.parametrize("spec", [..., None, {}])
def test_defaults(spec: Any) -> None:
    assert parse_spec(instance(spec)) == InstanceSpec(
        database_name=None, secret_name="orders-postgres", extensions=(), connection_limit=-1)


def test_everything_set() -> None:
    parsed = parse_spec(instance({"databaseName": "orders_db", "secretName": "db-creds",
                                  "extensions": ["citext", "uuid-ossp", "citext"],
                                  "connectionLimit": 20}))
    assert parsed == InstanceSpec(database_name="orders_db", secret_name="db-creds",
                                  extensions=("citext", "uuid-ossp"), connection_limit=20)


@pytest.mark.parametrize(("spec", "reason"), [
    ("a string", "InvalidSpec"),
    ({"databaseName": 5}, "InvalidDatabaseName"),
    ({"databaseName": "Bad-Name"}, "InvalidDatabaseName"),
    ({"databaseName": "template0"}, "InvalidDatabaseName"),
    ({"secretName": "Not_A_Name"}, "InvalidSecretName"),
    ({"secretName": "x" * 254}, "InvalidSecretName"),
    ({"secretName": ["list"]}, "InvalidSecretName"),
    ({"extensions": "citext"}, "InvalidExtensions"),
    ({"extensions": ["ok", "; DROP"]}, "InvalidExtensions"),
    ({"extensions": [7]}, "InvalidExtensions"),
    ({"extensions": [f"e{i}" for i in range(17)]}, "InvalidExtensions"),
    ({"connectionLimit": -2}, "InvalidConnectionLimit"),
    ({"connectionLimit": 10001}, "InvalidConnectionLimit"),
    ({"connectionLimit": "5"}, "InvalidConnectionLimit"),
    ({"connectionLimit": True}, "InvalidConnectionLimit"),
    ({"connectionLimit": 1.5}, "InvalidConnectionLimit"),
])
def test_bad_specs(spec: Any, reason: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(instance(spec))
    assert error.value.reason == reason
    assert error.value.message
