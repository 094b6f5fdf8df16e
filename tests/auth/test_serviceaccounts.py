"""Tests of kplane.auth.serviceaccounts: ServiceAccount JWTs and the TokenRequest answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import AuthenticationV1TokenRequest

from kplane.apimachinery.errors import StatusError
from kplane.auth.authn import UserInfo, authenticate_request
from kplane.auth.pki import ensure_pki
from kplane.auth.serviceaccounts import (
    DEFAULT_ISSUER,
    SA_CLUSTER_EXTRA,
    ServiceAccountTokens,
    VerifiedToken,
)

NOW = 1_700_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def pem_pair(key: rsa.RSAPrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def sa(key: rsa.RSAPrivateKey) -> ServiceAccountTokens:
    private, public = pem_pair(key)
    return ServiceAccountTokens(private_key_pem=private, public_key_pem=public)


def issue(sa: ServiceAccountTokens, **overrides: Any) -> tuple[str, int]:
    arguments: dict[str, Any] = {
        "cluster": "root:org:team",
        "namespace": "ci",
        "name": "builder",
        "uid": "uid-1",
        "audiences": [DEFAULT_ISSUER],
        "expiration_seconds": 3600,
        "now": NOW,
    }
    arguments.update(overrides)
    return sa.issue(**arguments)


def rs256(key: rsa.RSAPrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token signed with ``key`` over arbitrary header and claims."""
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(unb64(token.split(".")[1]))
    return decoded


# --- issuing and verifying -------------------------------------------------------------


def test_issued_token_has_upstreams_header_and_claims(
    sa: ServiceAccountTokens, key: rsa.RSAPrivateKey
) -> None:
    token, expires_at = issue(sa)

    header = orjson.loads(unb64(token.split(".")[0]))
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert header == {"alg": "RS256", "kid": b64(hashlib.sha256(der).digest())}
    claims = claims_of(token)
    jti = claims.pop("jti")
    assert len(jti) == 36
    assert claims == {
        "aud": [DEFAULT_ISSUER],
        "exp": 1_700_003_600,
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "iss": DEFAULT_ISSUER,
        "sub": "system:serviceaccount:ci:builder",
        "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "uid-1"}},
        "kcp.io/cluster": "root:org:team",
    }
    assert expires_at == 1_700_003_600


def test_every_token_gets_its_own_id(sa: ServiceAccountTokens) -> None:
    assert claims_of(issue(sa)[0])["jti"] != claims_of(issue(sa)[0])["jti"]


def test_verify_round_trip(sa: ServiceAccountTokens) -> None:
    token, expires_at = issue(sa, audiences=["vault", "https://kplane.default.svc"])

    verified = sa.verify(token, now=NOW + 10)

    assert verified == VerifiedToken(
        cluster="root:org:team",
        namespace="ci",
        name="builder",
        uid="uid-1",
        audiences=("vault", "https://kplane.default.svc"),
        expires_at=expires_at,
        issued_at=int(NOW),
        token_id=claims_of(token)["jti"],
        bound_object=None,
    )
    assert verified.username == "system:serviceaccount:ci:builder"


@pytest.mark.parametrize("cluster", ["root", "root:a", "2x5ajb9fh3kq1xrl"])
def test_verify_returns_the_cluster_the_token_was_issued_in(
    sa: ServiceAccountTokens, cluster: str
) -> None:
    verified = sa.verify(issue(sa, cluster=cluster)[0], now=NOW)

    assert verified is not None and verified.cluster == cluster


def test_bound_pod_is_carried_in_the_token(sa: ServiceAccountTokens) -> None:
    bound = {"kind": "Pod", "name": "web-0", "uid": "pod-uid"}
    token, _ = issue(sa, bound_object=bound)

    assert claims_of(token)["kubernetes.io"]["pod"] == {"name": "web-0", "uid": "pod-uid"}
    verified = sa.verify(token, now=NOW)
    assert verified is not None and verified.bound_object == bound


def test_binding_to_an_unsupported_kind_is_refused(sa: ServiceAccountTokens) -> None:
    with pytest.raises(ValueError, match="ConfigMap"):
        issue(sa, bound_object={"kind": "ConfigMap", "name": "x"})


def test_verify_uses_the_wall_clock_by_default(sa: ServiceAccountTokens) -> None:
    token, _ = sa.issue(
        cluster="root", namespace="default", name="default", uid="u",
        audiences=["a"], expiration_seconds=600,
    )

    assert sa.verify(token) is not None
    assert sa.verify(issue(sa)[0]) is None  # issued in 2023, long expired


def test_tokens_from_the_pki_key_pair_verify(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, hosts=[])
    tokens = ServiceAccountTokens(
        private_key_pem=pki.sa_key_path.read_bytes(), public_key_pem=pki.sa_pub_path.read_bytes()
    )

    assert tokens.verify(issue(tokens)[0], now=NOW) is not None


# --- rejection ---------------------------------------------------------------------------


def test_tampered_payload_is_rejected(sa: ServiceAccountTokens) -> None:
    header, _, signature = issue(sa)[0].split(".")
    forged_claims = claims_of(issue(sa)[0]) | {"kcp.io/cluster": "root:victim"}
    forged = f"{header}.{b64(orjson.dumps(forged_claims))}.{signature}"

    assert sa.verify(forged, now=NOW) is None


def test_tampered_signature_is_rejected(sa: ServiceAccountTokens) -> None:
    header, payload, signature = issue(sa)[0].split(".")
    raw = bytearray(unb64(signature))
    raw[-1] ^= 1

    assert sa.verify(f"{header}.{payload}.{b64(bytes(raw))}", now=NOW) is None
    assert sa.verify(f"{header}.{payload}.", now=NOW) is None
    assert sa.verify(f"{header}.{payload}", now=NOW) is None


def test_token_signed_by_another_key_is_rejected(sa: ServiceAccountTokens) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = pem_pair(other_key)
    other = ServiceAccountTokens(private_key_pem=private, public_key_pem=public)

    assert sa.verify(issue(other)[0], now=NOW) is None


def test_alg_none_is_rejected(sa: ServiceAccountTokens) -> None:
    claims = claims_of(issue(sa)[0])
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64(orjson.dumps({'alg': alg}))}.{b64(orjson.dumps(claims))}."
        assert sa.verify(unsigned, now=NOW) is None


def test_hs256_keyed_with_the_public_key_is_rejected(
    sa: ServiceAccountTokens, key: rsa.RSAPrivateKey
) -> None:
    # The classic confusion attack: the public key is public, so an HMAC "signed" with it
    # must not pass for an RSA signature.
    _, public_pem = pem_pair(key)
    claims = claims_of(issue(sa)[0])
    for alg in ("HS256", "hs256", "RS256 "):
        signing_input = f"{b64(orjson.dumps({'alg': alg}))}.{b64(orjson.dumps(claims))}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        assert sa.verify(f"{signing_input}.{b64(mac)}", now=NOW) is None


def test_critical_header_extensions_are_rejected(
    sa: ServiceAccountTokens, key: rsa.RSAPrivateKey
) -> None:
    claims = claims_of(issue(sa)[0])

    assert sa.verify(rs256(key, {"alg": "RS256"}, claims), now=NOW) is not None
    assert sa.verify(rs256(key, {"alg": "RS256", "crit": ["b64"]}, claims), now=NOW) is None


def test_expired_token_is_rejected_after_a_minute_of_leeway(sa: ServiceAccountTokens) -> None:
    token, expires_at = issue(sa, expiration_seconds=600)

    assert sa.verify(token, now=expires_at + 59) is not None
    assert sa.verify(token, now=expires_at + 61) is None


def test_token_not_yet_valid_is_rejected_beyond_the_leeway(
    sa: ServiceAccountTokens, key: rsa.RSAPrivateKey
) -> None:
    token, _ = issue(sa)
    assert sa.verify(token, now=NOW - 59) is not None
    assert sa.verify(token, now=NOW - 61) is None

    later_nbf = claims_of(token) | {"nbf": NOW + 600}
    assert sa.verify(rs256(key, {"alg": "RS256"}, later_nbf), now=NOW) is None
    assert sa.verify(rs256(key, {"alg": "RS256"}, later_nbf), now=NOW + 600) is not None


def test_wrong_issuer_is_rejected(key: rsa.RSAPrivateKey, sa: ServiceAccountTokens) -> None:
    private, public = pem_pair(key)
    elsewhere = ServiceAccountTokens(
        private_key_pem=private, public_key_pem=public, issuer="https://other.example"
    )
    token, _ = issue(elsewhere)

    assert elsewhere.verify(token, now=NOW) is not None
    assert sa.verify(token, now=NOW) is None


@pytest.mark.parametrize(
    "change",
    [
        {"kcp.io/cluster": None},
        {"kcp.io/cluster": ""},
        {"kcp.io/cluster": 7},
        {"sub": "system:serviceaccount:ci:other"},
        {"sub": None},
        {"exp": None},
        {"exp": "1700003600"},
        {"exp": True},
        {"iat": None},
        {"aud": []},
        {"aud": [1]},
        {"kubernetes.io": None},
        {"kubernetes.io": {"namespace": "ci"}},
        {"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder"}}},
    ],
)
def test_malformed_claims_are_rejected(
    sa: ServiceAccountTokens, key: rsa.RSAPrivateKey, change: dict[str, Any]
) -> None:
    claims = claims_of(issue(sa)[0])
    for name, value in change.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value

    assert sa.verify(rs256(key, {"alg": "RS256"}, claims), now=NOW) is None


def test_single_string_audience_is_accepted(
    sa: ServiceAccountTokens, key: rsa.RSAPrivateKey
) -> None:
    claims = claims_of(issue(sa)[0]) | {"aud": "vault"}

    verified = sa.verify(rs256(key, {"alg": "RS256"}, claims), now=NOW)

    assert verified is not None and verified.audiences == ("vault",)


_segment = st.from_regex(r"\A[A-Za-z0-9_\-=+/]{0,64}\Z")


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", _segment, _segment, _segment),
    st.builds(
        lambda header, payload: f"{b64(header)}.{b64(payload)}.{b64(b'x' * 256)}",
        st.sampled_from([b'{"alg":"RS256"}', b"[]", b"null", b'{"alg":1}', b"\xff"]),
        st.binary(max_size=64),
    ),
))
def test_garbage_never_raises(sa: ServiceAccountTokens, garbage: str) -> None:
    assert sa.verify(garbage, now=NOW) is None


def test_oversized_token_is_rejected_without_parsing(sa: ServiceAccountTokens) -> None:
    assert sa.verify("a" * 100_000 + "." + issue(sa)[0], now=NOW) is None


def test_mismatched_or_non_rsa_keys_are_refused(key: rsa.RSAPrivateKey) -> None:
    private, _ = pem_pair(key)
    _, other_public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(ValueError, match="does not match"):
        ServiceAccountTokens(private_key_pem=private, public_key_pem=other_public)
    with pytest.raises(ValueError, match="RSA"):
        ServiceAccountTokens(private_key_pem=ec_private, public_key_pem=other_public)


# --- the authenticator -----------------------------------------------------------------


def fresh_token(sa: ServiceAccountTokens, **overrides: Any) -> str:
    return sa.issue(
        cluster=overrides.get("cluster", "root:org"),
        namespace="ci",
        name="builder",
        uid="uid-1",
        audiences=overrides.get("audiences", [DEFAULT_ISSUER]),
        expiration_seconds=3600,
    )[0]


async def test_authenticator_returns_the_service_account_user(sa: ServiceAccountTokens) -> None:
    seen: list[tuple[str, str, str]] = []

    def lookup(cluster: str, namespace: str, name: str) -> str | None:
        seen.append((cluster, namespace, name))
        return "uid-1"

    user = await sa.authenticator(lookup=lookup)(fresh_token(sa))

    assert seen == [("root:org", "ci", "builder")]
    assert user == UserInfo(
        name="system:serviceaccount:ci:builder",
        uid="uid-1",
        groups=("system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"),
        extra={SA_CLUSTER_EXTRA: ("root:org",)},
    )


async def test_token_of_a_deleted_service_account_is_refused(sa: ServiceAccountTokens) -> None:
    authenticate = sa.authenticator(lookup=lambda cluster, namespace, name: None)

    assert await authenticate(fresh_token(sa)) is None


async def test_token_of_a_recreated_service_account_is_refused(sa: ServiceAccountTokens) -> None:
    authenticate = sa.authenticator(lookup=lambda cluster, namespace, name: "uid-2")

    assert await authenticate(fresh_token(sa)) is None


async def test_token_for_another_audience_does_not_authenticate(
    sa: ServiceAccountTokens,
) -> None:
    authenticate = sa.authenticator(lookup=lambda cluster, namespace, name: "uid-1")

    assert await authenticate(fresh_token(sa, audiences=["vault"])) is None
    assert await authenticate(fresh_token(sa, audiences=["vault", DEFAULT_ISSUER])) is not None


async def test_invalid_token_never_reaches_the_lookup(sa: ServiceAccountTokens) -> None:
    def lookup(cluster: str, namespace: str, name: str) -> str | None:
        raise AssertionError("looked up a service account for an invalid token")

    assert await sa.authenticator(lookup=lookup)("not-a-jwt") is None


async def test_authenticator_in_the_request_chain(sa: ServiceAccountTokens) -> None:
    token = fresh_token(sa, cluster="root:a")

    user = await authenticate_request(
        certificate_user=None,
        headers=[(b"authorization", f"Bearer {token}".encode())],
        token_authenticators=[sa.authenticator(lookup=lambda c, n, s: "uid-1")],
    )

    assert user.name == "system:serviceaccount:ci:builder"
    assert user.extra[SA_CLUSTER_EXTRA] == ("root:a",)


# --- TokenRequest ----------------------------------------------------------------------


def token_request(sa: ServiceAccountTokens, body: dict[str, Any]) -> dict[str, Any]:
    return sa.token_request_response(
        body, cluster="root:org", namespace="ci", name="builder", uid="uid-1"
    )


def test_token_request_defaults(sa: ServiceAccountTokens) -> None:
    response = token_request(sa, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"})

    token = response["status"]["token"]
    claims = claims_of(token)
    assert response["kind"] == "TokenRequest"
    assert response["apiVersion"] == "authentication.k8s.io/v1"
    assert response["metadata"] == {"name": "builder", "namespace": "ci", "creationTimestamp": None}
    assert response["spec"] == {"audiences": [DEFAULT_ISSUER], "expirationSeconds": 3600}
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["kcp.io/cluster"] == "root:org"
    expected = datetime.fromtimestamp(claims["exp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert response["status"]["expirationTimestamp"] == expected
    assert sa.verify(token) is not None


def test_token_request_with_empty_body_and_empty_audiences_gets_defaults(
    sa: ServiceAccountTokens,
) -> None:
    assert token_request(sa, {})["spec"]["audiences"] == [DEFAULT_ISSUER]
    assert token_request(sa, {"spec": {"audiences": []}})["spec"]["audiences"] == [DEFAULT_ISSUER]
    assert token_request(sa, {"spec": {"expirationSeconds": None}})["spec"][
        "expirationSeconds"
    ] == 3600


def test_token_request_honours_audiences_and_expiration(sa: ServiceAccountTokens) -> None:
    response = token_request(
        sa, {"spec": {"audiences": ["vault", "x"], "expirationSeconds": 600}}
    )

    claims = claims_of(response["status"]["token"])
    assert response["spec"] == {"audiences": ["vault", "x"], "expirationSeconds": 600}
    assert claims["aud"] == ["vault", "x"]
    assert claims["exp"] - claims["iat"] == 600


@pytest.mark.parametrize("seconds", [599, 0, -5])
def test_token_request_shorter_than_ten_minutes_is_invalid(
    sa: ServiceAccountTokens, seconds: int
) -> None:
    with pytest.raises(StatusError) as caught:
        token_request(sa, {"spec": {"expirationSeconds": seconds}})

    error = caught.value
    assert error.code == 422
    assert error.message == (
        f'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
        f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"
    )


def test_token_request_longer_than_two_to_the_32_seconds_is_invalid(
    sa: ServiceAccountTokens,
) -> None:
    with pytest.raises(StatusError) as caught:
        token_request(sa, {"spec": {"expirationSeconds": (1 << 32) + 1}})

    assert caught.value.code == 422
    assert "may not specify a duration larger than 2^32 seconds" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "Pod"},
        {"apiVersion": "authentication.k8s.io/v1beta1"},
        {"spec": {"audiences": "vault"}},
        {"spec": {"audiences": [1]}},
        {"spec": {"expirationSeconds": "3600"}},
        {"spec": {"expirationSeconds": 3600.5}},
        {"spec": {"expirationSeconds": True}},
        {"spec": []},
        {"metadata": "x"},
        {"spec": {"boundObjectRef": "pod"}},
    ],
)
def test_token_request_that_does_not_decode_is_a_bad_request(
    sa: ServiceAccountTokens, body: dict[str, Any]
) -> None:
    with pytest.raises(StatusError) as caught:
        token_request(sa, body)

    assert caught.value.code == 400
    assert caught.value.message.startswith(
        'TokenRequest in version "v1" cannot be handled as a TokenRequest: '
    )


def test_token_request_body_that_is_not_an_object_is_a_bad_request(
    sa: ServiceAccountTokens,
) -> None:
    with pytest.raises(StatusError) as caught:
        sa.token_request_response(
            [], cluster="root", namespace="ci", name="builder", uid="u"  # type: ignore[arg-type]
        )

    assert caught.value.code == 400


@pytest.mark.parametrize("key_name", ["name", "namespace"])
def test_token_request_metadata_must_match_the_url(
    sa: ServiceAccountTokens, key_name: str
) -> None:
    with pytest.raises(StatusError) as caught:
        token_request(sa, {"metadata": {key_name: "other"}})

    assert caught.value.code == 422
    assert caught.value.message == (
        f'TokenRequest.authentication.k8s.io "builder" is invalid: metadata.{key_name}: '
        f'Invalid value: "other": must match the service account {key_name} if specified'
    )


def test_token_request_metadata_may_repeat_the_url(sa: ServiceAccountTokens) -> None:
    response = token_request(sa, {"metadata": {"name": "builder", "namespace": "ci"}})

    assert response["metadata"]["name"] == "builder"


def test_token_request_bound_to_a_pod(sa: ServiceAccountTokens) -> None:
    reference = {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "p-1"}

    response = token_request(sa, {"spec": {"boundObjectRef": reference}})

    assert response["spec"]["boundObjectRef"] == reference
    claims = claims_of(response["status"]["token"])
    assert claims["kubernetes.io"]["pod"] == {"name": "web-0", "uid": "p-1"}


def test_token_request_bound_to_an_unsupported_kind_is_a_bad_request(
    sa: ServiceAccountTokens,
) -> None:
    reference = {"kind": "ConfigMap", "apiVersion": "v1", "name": "cm"}

    with pytest.raises(StatusError) as caught:
        token_request(sa, {"spec": {"boundObjectRef": reference}})

    assert caught.value.code == 400
    assert caught.value.message == (
        'cannot bind token for serviceaccount "builder" to object of type /v1, Kind=ConfigMap'
    )


def test_token_request_json_is_what_the_kubernetes_client_expects(
    sa: ServiceAccountTokens,
) -> None:
    wire = orjson.dumps(token_request(sa, {"spec": {"audiences": ["vault"]}}))

    parsed = AuthenticationV1TokenRequest.from_dict(orjson.loads(wire))

    assert parsed is not None
    assert parsed.kind == "TokenRequest"
    assert parsed.spec is not None
    assert parsed.spec.audiences == ["vault"]
    assert parsed.spec.expiration_seconds == 3600
    assert parsed.status is not None
    assert parsed.status.token is not None and parsed.status.token.count(".") == 2
    assert isinstance(parsed.status.expiration_timestamp, datetime)
    assert parsed.status.expiration_timestamp.tzinfo is not None
