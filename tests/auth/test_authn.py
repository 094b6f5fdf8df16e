"""Tests of kplane.auth.authn: users from certificates, bearer tokens, the request chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kplane.apimachinery.errors import StatusError
from kplane.auth.authn import (
    ANONYMOUS,
    AUTHENTICATED,
    SYSTEM_MASTERS,
    UserInfo,
    authenticate_request,
    bearer_token,
    user_from_certificate,
)
from kplane.auth.pki import Pki, ensure_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("data"), hosts=[])


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def self_signed(
    subject: list[x509.NameAttribute[str]], *, usages: list[x509.ObjectIdentifier] | None = None
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_user_from_issued_certificate(pki: Pki) -> None:
    cert_pem, _ = pki.issue_client_certificate(
        user="alice", groups=["dev", "ops"], expires_in=timedelta(hours=1)
    )
    user = user_from_certificate(der_of(cert_pem))
    assert user == UserInfo(name="alice", groups=("dev", "ops", AUTHENTICATED))


def test_admin_certificate_is_a_system_master(pki: Pki) -> None:
    user = user_from_certificate(der_of(pki.admin_cert_path.read_bytes()))
    assert user is not None
    assert user.name == "kplane-admin"
    assert user.groups == (SYSTEM_MASTERS, AUTHENTICATED)
    assert user.is_system_master


def test_parsed_certificate_is_accepted(pki: Pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.admin_cert_path.read_bytes())
    assert user_from_certificate(cert) == user_from_certificate(
        der_of(pki.admin_cert_path.read_bytes())
    )


def test_certificate_without_common_name_authenticates_no_one() -> None:
    cert = self_signed([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
    assert user_from_certificate(cert.public_bytes(serialization.Encoding.DER)) is None


def test_last_common_name_wins_as_in_go() -> None:
    cert = self_signed(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.COMMON_NAME, "second"),
        ]
    )
    user = user_from_certificate(cert)
    assert user is not None and user.name == "second"


def test_expired_or_not_yet_valid_certificate_is_rejected(pki: Pki) -> None:
    cert_pem, _ = pki.issue_client_certificate(user="bob", groups=[], expires_in=timedelta(hours=1))
    der = der_of(cert_pem)
    now = datetime.now(UTC)
    assert user_from_certificate(der, now=now + timedelta(minutes=30)) is not None
    assert user_from_certificate(der, now=now + timedelta(hours=2)) is None
    assert user_from_certificate(der, now=now - timedelta(hours=1)) is None


def test_certificate_only_for_server_auth_is_rejected(pki: Pki) -> None:
    serving = user_from_certificate(der_of(pki.serving_cert_path.read_bytes()))
    assert serving is None
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, "any")]
    assert user_from_certificate(
        self_signed(cn, usages=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    )
    assert user_from_certificate(self_signed(cn)) is not None


def test_garbage_is_not_a_certificate() -> None:
    assert user_from_certificate(b"\x30\x03\x02\x01\x00") is None


def decoded(subject: Any, *, not_after: str = "Jan  1 00:00:00 2999 GMT") -> dict[str, Any]:
    return {"subject": subject, "notBefore": "Jan  1 00:00:00 2000 GMT", "notAfter": not_after}


def test_user_from_decoded_peer_certificate() -> None:
    subject = (
        (("organizationName", "team-a"),),
        (("organizationName", "team-b"),),
        (("commonName", "carol"),),
    )
    assert user_from_certificate(decoded(subject)) == UserInfo(
        name="carol", groups=("team-a", "team-b", AUTHENTICATED)
    )
    assert user_from_certificate(decoded(((("organizationName", "x"),),))) is None
    expired = decoded(((("commonName", "carol"),),), not_after="Jan  1 00:00:00 2001 GMT")
    assert user_from_certificate(expired) is None
    assert user_from_certificate({"subject": subject}) is None


def test_user_info_helpers() -> None:
    user = UserInfo(name="dave", groups=("g",), uid="u-1", extra={"scopes": ("a", "b")})
    assert user.in_group("g") and not user.in_group("h")
    assert not user.is_system_master and not user.is_anonymous
    with_group = user.with_authenticated_group()
    assert with_group.groups == ("g", AUTHENTICATED)
    assert with_group.with_authenticated_group() is with_group
    assert ANONYMOUS.with_authenticated_group() is ANONYMOUS
    assert ANONYMOUS.is_anonymous and ANONYMOUS.groups == ("system:unauthenticated",)
    assert user.to_dict() == {
        "username": "dave",
        "uid": "u-1",
        "groups": ["g"],
        "extra": {"scopes": ["a", "b"]},
    }
    assert UserInfo(name="e").to_dict() == {"username": "e"}
    assert hash(user) == hash(UserInfo(name="dave", groups=("g",), uid="u-1"))
    assert user != UserInfo(name="dave", groups=("g",), uid="u-1")


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"authorization", b"Bearer abc.def")], "abc.def"),
        ([(b"Authorization", b"bearer xyz")], "xyz"),
        ([(b"authorization", b"Bearer tok extra")], "tok"),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"authorization", b"Bearer")], None),
        ([(b"accept", b"application/json")], None),
        ([], None),
    ],
)
def test_bearer_token(headers: list[tuple[bytes, bytes]], token: str | None) -> None:
    assert bearer_token(headers) == token


async def known_token(token: str) -> UserInfo | None:
    return UserInfo(name="token-user", groups=("tokens",)) if token == "good" else None


async def never(token: str) -> UserInfo | None:
    return None


async def test_certificate_user_wins_over_a_token() -> None:
    cert_user = UserInfo(name="cert", groups=(AUTHENTICATED,))
    user = await authenticate_request(
        certificate_user=cert_user,
        headers=[(b"authorization", b"Bearer bad")],
        token_authenticators=[known_token],
    )
    assert user is cert_user


async def test_token_is_tried_on_each_authenticator_in_order() -> None:
    user = await authenticate_request(
        certificate_user=None,
        headers=[(b"authorization", b"Bearer good")],
        token_authenticators=[never, known_token],
    )
    assert user == UserInfo(name="token-user", groups=("tokens", AUTHENTICATED))


async def test_unknown_token_is_401_not_anonymous() -> None:
    with pytest.raises(StatusError) as caught:
        await authenticate_request(
            certificate_user=None,
            headers=[(b"authorization", b"Bearer nope")],
            token_authenticators=[known_token],
        )
    assert caught.value.code == 401
    assert caught.value.reason == "Unauthorized"


async def test_no_credentials_is_anonymous_or_401() -> None:
    user = await authenticate_request(certificate_user=None, headers=[])
    assert user is ANONYMOUS
    with pytest.raises(StatusError) as caught:
        await authenticate_request(certificate_user=None, headers=[], allow_anonymous=False)
    assert caught.value.code == 401
