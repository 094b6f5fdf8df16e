"""Reading a PostgresInstance's spec into a checked, typed request.

The APIResourceSchema already validates the spec on the server; this checks it again because
the provider must never act on (or crash over) an object that slipped past, for example one
stored under an older schema. A bad spec becomes a :class:`SpecError` whose reason and
message end up in the instance's Ready condition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kplane_postgres.api import (
    EXTENSION_NAME_PATTERN,
    MAX_CONNECTION_LIMIT,
    MAX_EXTENSIONS,
    SECRET_NAME_PATTERN,
)
from kplane_postgres.naming import MAX_IDENTIFIER_BYTES, database_name_problem

_SECRET_NAME = re.compile(SECRET_NAME_PATTERN)
_EXTENSION_NAME = re.compile(EXTENSION_NAME_PATTERN)
SECRET_SUFFIX = "-postgres"


class SpecError(Exception):
    """The spec asks for something the provider cannot or will not do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    database_name: str | None
    secret_name: str
    extensions: tuple[str, ...]
    connection_limit: int


def parse_spec(obj: Mapping[str, Any]) -> InstanceSpec:
    name = str((obj.get("metadata") or {}).get("name") or "")
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise SpecError("InvalidSpec", "spec must be an object")

    database = spec.get("databaseName")
    if database in (None, ""):
        database = None
    elif not isinstance(database, str):
        raise SpecError("InvalidDatabaseName", "spec.databaseName must be a string")
    elif (problem := database_name_problem(database)) is not None:
        raise SpecError("InvalidDatabaseName", problem)

    secret = spec.get("secretName")
    if secret in (None, ""):
        secret = f"{name}{SECRET_SUFFIX}"
    if not isinstance(secret, str) or len(secret) > 253 or not _SECRET_NAME.match(secret):
        raise SpecError("InvalidSecretName",
                        f"spec.secretName {secret!r} is not a valid Secret name")

    raw_extensions = spec.get("extensions")
    if raw_extensions is None:
        raw_extensions = []
    if not isinstance(raw_extensions, list):
        raise SpecError("InvalidExtensions", "spec.extensions must be a list of names")
    if len(raw_extensions) > MAX_EXTENSIONS:
        raise SpecError("InvalidExtensions",
                        f"spec.extensions has more than {MAX_EXTENSIONS} entries")
    extensions: list[str] = []
    for entry in raw_extensions:
        if (not isinstance(entry, str) or len(entry) > MAX_IDENTIFIER_BYTES
                or not _EXTENSION_NAME.match(entry)):
            raise SpecError("InvalidExtensions", f"{entry!r} is not an extension name")
        if entry not in extensions:
            extensions.append(entry)

    limit = spec.get("connectionLimit", -1)
    # bool is an int in Python; JSON true is not a connection limit.
    if (not isinstance(limit, int) or isinstance(limit, bool)
            or not -1 <= limit <= MAX_CONNECTION_LIMIT):
        raise SpecError("InvalidConnectionLimit",
                        f"spec.connectionLimit must be an integer from -1 to "
                        f"{MAX_CONNECTION_LIMIT}")

    return InstanceSpec(database_name=database, secret_name=secret,
                        extensions=tuple(extensions), connection_limit=limit)
