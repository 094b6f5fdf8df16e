"""Who is asking: the user a request authenticates as, decided the way kube-apiserver does.

Authorization (RBAC per logical cluster), audit and impersonation all start from one
:class:`UserInfo`. This module turns the credentials a request carries into that value:

* a client certificate (already chain-verified against kplane's CA by the TLS layer):
  CN is the user name, each O a group; an empty CN authenticates no one;
* otherwise a bearer token, handed to pluggable token authenticators (static tokens,
  ServiceAccount JWTs, ... are added by other modules);
* otherwise the anonymous user, if the server allows anonymous requests.

As in kube-apiserver, a certificate wins over a token, a token nobody recognises is a 401
(never a silent fall-back to anonymous), and every authenticated user is also in
``system:authenticated``.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kplane.apimachinery.errors import unauthorized

# Re-exported: the identity types live below every layer, and most code meets them here.
from kplane.apimachinery.users import ANONYMOUS_USER as ANONYMOUS_USER
from kplane.apimachinery.users import AUTHENTICATED as AUTHENTICATED
from kplane.apimachinery.users import SYSTEM_MASTERS as SYSTEM_MASTERS
from kplane.apimachinery.users import UNAUTHENTICATED as UNAUTHENTICATED
from kplane.apimachinery.users import UserInfo as UserInfo

ANONYMOUS = UserInfo(name=ANONYMOUS_USER, groups=(UNAUTHENTICATED,))

TokenAuthenticator = Callable[[str], Awaitable[UserInfo | None]]
"""Returns the user a bearer token belongs to, or ``None`` if it does not recognise it."""


def user_from_certificate(
    certificate: bytes | x509.Certificate | Mapping[str, Any], *, now: datetime | None = None
) -> UserInfo | None:
    """The user a verified client certificate names, or ``None`` if it authenticates no one.

    ``certificate`` is the DER bytes (``getpeercert(binary_form=True)``), a parsed
    certificate, or the decoded dict (``getpeercert()``). The chain must already have
    been verified by the TLS layer; this only reads the subject, and re-checks the
    validity period (a long-lived connection can outlive its certificate) and, unless
    given the dict, the ``clientAuth`` usage.
    """
    moment = now or datetime.now(UTC)
    if isinstance(certificate, x509.Certificate):
        return _user_from_x509(certificate, now=moment)
    if isinstance(certificate, bytes | bytearray | memoryview):
        try:
            parsed = x509.load_der_x509_certificate(bytes(certificate))
        except ValueError:
            return None
        return _user_from_x509(parsed, now=moment)
    return _user_from_decoded(certificate, now=moment)


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``.

    Other schemes and empty tokens are "no token", as in upstream's bearer authenticator.
    """
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        parts = value.split(b" ", 2)
        if len(parts) < 2 or parts[0].lower() != b"bearer" or not parts[1]:
            return None
        return parts[1].decode("latin-1")
    return None


async def authenticate_request(
    *,
    certificate_user: UserInfo | None,
    headers: Iterable[tuple[bytes, bytes]],
    token_authenticators: Sequence[TokenAuthenticator] = (),
    allow_anonymous: bool = True,
) -> UserInfo:
    """The user a request acts as; raises a 401 ``StatusError`` if its credentials fail.

    ``certificate_user`` is what the TLS layer derived from the client certificate
    (``kplane.server.tls.certificate_user(scope)``).
    """
    if certificate_user is not None:
        return certificate_user
    token = bearer_token(headers)
    if token is not None:
        for authenticator in token_authenticators:
            user = await authenticator(token)
            if user is not None:
                return user.with_authenticated_group()
        raise unauthorized()
    if allow_anonymous:
        return ANONYMOUS
    raise unauthorized()


def _user_from_x509(cert: x509.Certificate, *, now: datetime) -> UserInfo | None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return None
    if not _allows_client_auth(cert):
        return None
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    organizations = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    # Go's pkix.Name keeps the last CN when there are several; match what kube sees.
    name = _text(common_names[-1].value) if common_names else ""
    return _certificate_user(name, [_text(org.value) for org in organizations])


def _user_from_decoded(decoded: Mapping[str, Any], *, now: datetime) -> UserInfo | None:
    try:
        not_before = ssl.cert_time_to_seconds(decoded["notBefore"])
        not_after = ssl.cert_time_to_seconds(decoded["notAfter"])
    except (KeyError, ValueError):
        return None
    if not not_before <= now.timestamp() <= not_after:
        return None
    name = ""
    groups: list[str] = []
    for rdn in decoded.get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                name = value
            elif attribute == "organizationName":
                groups.append(value)
    return _certificate_user(name, groups)


def _certificate_user(name: str, groups: list[str]) -> UserInfo | None:
    if not name:
        return None
    return UserInfo(name=name, groups=tuple(groups)).with_authenticated_group()


def _allows_client_auth(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return (
        ExtendedKeyUsageOID.CLIENT_AUTH in usages
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
    )


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
