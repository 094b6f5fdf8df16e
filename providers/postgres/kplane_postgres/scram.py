"""SCRAM-SHA-256 password verifiers, computed here so plaintext passwords never reach the server.

PostgreSQL stores a role's password as ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
<ServerKey>`` (RFC 5802/7677) and accepts a string already in that form as the password of
``CREATE ROLE``/``ALTER ROLE``, storing it unchanged. Sending the verifier instead of the
password keeps the password out of the server's statement logs and activity views.

:func:`matches` recomputes the keys with the stored salt and iteration count, which lets the
provider leave a role untouched when its password is already the one in the Secret.

The passwords the provider generates are printable ASCII, for which SASLprep (the
normalisation the RFC asks for) is the identity, so none is applied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ITERATIONS = 4096
SALT_BYTES = 16
_PREFIX = "SCRAM-SHA-256$"


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    stored_key, server_key = _keys(password, salt, iterations)
    return f"{_PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def matches(stored: str | None, password: str) -> bool:
    """Whether the verifier PostgreSQL holds (``pg_authid.rolpassword``) is for ``password``."""
    if not stored or not stored.startswith(_PREFIX):
        return False  # no password, or an md5 hash: replace it
    try:
        params, keys = stored[len(_PREFIX):].split("$", 1)
        iterations_text, salt_text = params.split(":", 1)
        stored_text, server_text = keys.split(":", 1)
        salt = base64.b64decode(salt_text, validate=True)
        expected = (base64.b64decode(stored_text, validate=True),
                    base64.b64decode(server_text, validate=True))
        iterations = int(iterations_text)
    except ValueError:
        return False
    if not 0 < iterations <= 1_000_000:
        return False
    actual = _keys(password, salt, iterations)
    return hmac.compare_digest(actual[0], expected[0]) and hmac.compare_digest(
        actual[1], expected[1])
