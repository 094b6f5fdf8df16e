"""ServiceAccount tokens: issuing them (TokenRequest) and authenticating requests with them.

Workloads and ``kubectl create token`` authenticate as a ServiceAccount with a JWT the
server itself signed. The tokens carry the claims kube-apiserver puts in bound tokens
(``iss``, ``sub``, ``aud``, ``exp``/``iat``/``nbf``, ``jti`` and the ``kubernetes.io``
object) so that tools which decode them keep working, plus ``kcp.io/cluster``: kplane hosts
many logical clusters and a ServiceAccount ``default/builder`` exists in many of them, so a
token must say which one it belongs to. The server refuses a token in any other logical
cluster (it compares :data:`SA_CLUSTER_EXTRA` of the user with the request's cluster).

Signing is RS256 (RSASSA-PKCS1-v1_5 with SHA-256) done directly with ``cryptography``
rather than through a JWT library: kplane needs exactly one algorithm, and accepting only
that one, hard-wired, makes the algorithm-confusion attacks (``alg: none``, or HS256 keyed
with the public key) impossible by construction instead of by configuration.

As upstream, a token is refused once its ServiceAccount is deleted, or deleted and
recreated under the same name (the uid no longer matches), and a token must be meant for
this server (one of its API audiences). Verification never raises on malformed input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kplane.apimachinery.errors import StatusError, bad_request, field_invalid, invalid
from kplane.auth.authn import TokenAuthenticator, UserInfo

SA_CLUSTER_EXTRA = "authentication.kcp.io/cluster-name"
CLUSTER_CLAIM = "kcp.io/cluster"
DEFAULT_ISSUER = "https://kplane.default.svc"

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"

DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# Clock skew tolerated on exp/nbf/iat; the same minute go-jose (and so upstream) allows.
LEEWAY_SECONDS = 60
# Real tokens are around a kilobyte; refusing huge ones early bounds the work garbage costs.
MAX_TOKEN_LENGTH = 16 * 1024

_ALGORITHM = "RS256"
_BINDABLE_KINDS = {"Pod": "pod", "Secret": "secret", "Node": "node"}
_TOKEN_REQUEST_GROUP = "authentication.k8s.io"
_TOKEN_REQUEST_API_VERSION = "authentication.k8s.io/v1"

ServiceAccountLookup = Callable[[str, str, str], str | None]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a validly signed, current ServiceAccount token says about its holder."""

    cluster: str
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires_at: int
    issued_at: int
    token_id: str = ""
    # {"kind": "Pod"|"Secret"|"Node", "name": ..., "uid": ...} when the token is bound.
    bound_object: Mapping[str, str] | None = None

    @property
    def username(self) -> str:
        return service_account_username(self.namespace, self.name)


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


class ServiceAccountTokens:
    """Issues and verifies the ServiceAccount JWTs of one server (one key pair)."""

    def __init__(
        self,
        *,
        private_key_pem: bytes,
        public_key_pem: bytes,
        issuer: str = DEFAULT_ISSUER,
        api_audiences: Sequence[str] | None = None,
    ) -> None:
        """``api_audiences`` are the audiences a token must name to authenticate to this
        server, and the default audiences of a TokenRequest; upstream defaults them to the
        issuer, and so do we."""
        self._private_key = _load_private_key(private_key_pem)
        self._public_key = _load_public_key(public_key_pem)
        if self._private_key.public_key().public_numbers() != self._public_key.public_numbers():
            raise ValueError("the ServiceAccount public key does not match the private key")
        self.issuer = issuer
        self.api_audiences: tuple[str, ...] = tuple(api_audiences or (issuer,))
        self._header_segment = _b64encode(
            orjson.dumps({"alg": _ALGORITHM, "kid": _key_id(self._public_key)})
        )

    def issue(
        self,
        *,
        cluster: str,
        namespace: str,
        name: str,
        uid: str,
        audiences: list[str],
        expiration_seconds: int,
        now: float | None = None,
        bound_object: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        """A signed token for the ServiceAccount and its expiry (unix seconds).

        ``bound_object`` (``{"kind": "Pod"|"Secret"|"Node", "name", "uid"}``) ties the
        token to an object, as a TokenRequest's ``boundObjectRef`` does; the caller must
        have checked that the object exists. Raises ``ValueError`` for an unknown kind.
        """
        issued_at = int(time.time() if now is None else now)
        expires_at = issued_at + expiration_seconds
        kubernetes: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        }
        if bound_object is not None:
            claim, reference = _bound_object_claim(bound_object)
            kubernetes[claim] = reference
        claims = {
            "aud": list(audiences),
            "exp": expires_at,
            "iat": issued_at,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": kubernetes,
            "nbf": issued_at,
            "sub": service_account_username(namespace, name),
            CLUSTER_CLAIM: cluster,
        }
        signing_input = f"{self._header_segment}.{_b64encode(orjson.dumps(claims))}"
        signature = self._private_key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64encode(signature)}", expires_at

    def verify(self, token: str, *, now: float | None = None) -> VerifiedToken | None:
        """The token's claims if it is ours, intact, current and well formed; else ``None``.

        Audiences are returned, not checked: what a token may be used for is the caller's
        decision (:meth:`authenticator` requires one of the API audiences).
        """
        try:
            claims = self._verified_claims(token)
        except (ValueError, TypeError, UnicodeError, binascii.Error):
            return None
        if claims is None or claims.get("iss") != self.issuer:
            return None
        moment = time.time() if now is None else now
        return _token_from_claims(claims, now=moment)

    def authenticator(self, *, lookup: ServiceAccountLookup) -> TokenAuthenticator:
        """A bearer-token authenticator for :func:`kplane.auth.authn.authenticate_request`.

        ``lookup(cluster, namespace, name)`` returns the ServiceAccount's current uid, or
        ``None`` if it does not exist; a token of a deleted or recreated account is refused.
        """

        async def authenticate(token: str) -> UserInfo | None:
            verified = self.verify(token)
            if verified is None or not set(verified.audiences) & set(self.api_audiences):
                return None
            current_uid = lookup(verified.cluster, verified.namespace, verified.name)
            if current_uid is None or current_uid != verified.uid:
                return None
            return _user_of(verified)

        return authenticate

    def token_request_response(
        self,
        request_body: dict[str, Any],
        *,
        cluster: str,
        namespace: str,
        name: str,
        uid: str,
    ) -> dict[str, Any]:
        """The ``TokenRequest`` answering ``POST .../serviceaccounts/<name>/token``.

        The caller has checked that the ServiceAccount exists (``uid`` is its uid) and, if
        the request names a ``boundObjectRef``, that the object exists. Raises a 400
        ``StatusError`` for a body that is not a TokenRequest and a 422 for invalid values.
        """
        spec = _token_request_spec(request_body, namespace=namespace, name=name)
        spec.setdefault("audiences", list(self.api_audiences))
        spec.setdefault("expirationSeconds", DEFAULT_EXPIRATION_SECONDS)
        _validate_expiration(spec["expirationSeconds"])
        bound = _bound_object_of(spec.get("boundObjectRef"), service_account=name)
        token, expires_at = self.issue(
            cluster=cluster,
            namespace=namespace,
            name=name,
            uid=uid,
            audiences=spec["audiences"],
            expiration_seconds=spec["expirationSeconds"],
            bound_object=bound,
        )
        return {
            "kind": "TokenRequest",
            "apiVersion": _TOKEN_REQUEST_API_VERSION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(expires_at)},
        }

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        """The payload of a correctly signed RS256 token, or ``None``; may raise on garbage."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        segments = token.split(".")
        if len(segments) != 3:
            return None
        header_segment, payload_segment, signature_segment = segments
        header = orjson.loads(_b64decode(header_segment))
        # Only RS256 is ever accepted: the header cannot talk us into "none" or an HMAC
        # keyed with our public key. "crit" names extensions we would have to understand.
        if not isinstance(header, dict) or header.get("alg") != _ALGORITHM or "crit" in header:
            return None
        signature = _b64decode(signature_segment)
        if len(signature) != self._public_key.key_size // 8:
            return None
        try:
            self._public_key.verify(
                signature,
                f"{header_segment}.{payload_segment}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return None
        claims = orjson.loads(_b64decode(payload_segment))
        return claims if isinstance(claims, dict) else None


def _token_from_claims(claims: dict[str, Any], *, now: float) -> VerifiedToken | None:
    """Checks times and shape of already-authentic claims."""
    expires_at = _numeric_date(claims.get("exp"))
    issued_at = _numeric_date(claims.get("iat"))
    not_before = _numeric_date(claims.get("nbf"), default=issued_at)
    if expires_at is None or issued_at is None or not_before is None:
        return None
    if now - LEEWAY_SECONDS > expires_at or now + LEEWAY_SECONDS < not_before:
        return None
    if now + LEEWAY_SECONDS < issued_at:
        return None
    kubernetes = claims.get("kubernetes.io")
    cluster = claims.get(CLUSTER_CLAIM)
    audiences = _audiences(claims.get("aud"))
    if not isinstance(kubernetes, dict) or not _nonempty_str(cluster) or audiences is None:
        return None
    namespace = kubernetes.get("namespace")
    account = kubernetes.get("serviceaccount")
    if not _nonempty_str(namespace) or not isinstance(account, dict):
        return None
    name, uid = account.get("name"), account.get("uid")
    if not _nonempty_str(name) or not _nonempty_str(uid):
        return None
    if claims.get("sub") != service_account_username(namespace, name):
        return None
    token_id = claims.get("jti", "")
    return VerifiedToken(
        cluster=cluster,
        namespace=namespace,
        name=name,
        uid=uid,
        audiences=audiences,
        expires_at=expires_at,
        issued_at=issued_at,
        token_id=token_id if isinstance(token_id, str) else "",
        bound_object=_bound_object_from_claims(kubernetes),
    )


def _user_of(verified: VerifiedToken) -> UserInfo:
    return UserInfo(
        name=verified.username,
        uid=verified.uid,
        groups=(
            SERVICE_ACCOUNTS_GROUP,
            f"{SERVICE_ACCOUNTS_GROUP}:{verified.namespace}",
            "system:authenticated",
        ),
        extra={SA_CLUSTER_EXTRA: (verified.cluster,)},
    )


def _bound_object_claim(bound_object: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    kind = bound_object.get("kind")
    claim = _BINDABLE_KINDS.get(kind) if isinstance(kind, str) else None
    if claim is None:
        raise ValueError(f"cannot bind a token to an object of kind {kind!r}")
    reference = {"name": str(bound_object.get("name", ""))}
    if bound_object.get("uid"):
        reference["uid"] = str(bound_object["uid"])
    return claim, reference


def _bound_object_from_claims(kubernetes: Mapping[str, Any]) -> Mapping[str, str] | None:
    for kind, claim in _BINDABLE_KINDS.items():
        reference = kubernetes.get(claim)
        if isinstance(reference, dict) and isinstance(reference.get("name"), str):
            uid = reference.get("uid")
            return {
                "kind": kind, "name": reference["name"], "uid": uid if isinstance(uid, str) else ""
            }
    return None


def _token_request_spec(body: Any, *, namespace: str, name: str) -> dict[str, Any]:
    """The request's spec (a copy), after the checks upstream makes while decoding."""
    if not isinstance(body, dict):
        raise _undecodable("the body must be a JSON object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", "TokenRequest"):
        raise _undecodable(f"kind {kind!r} is not TokenRequest")
    if api_version not in (None, "", _TOKEN_REQUEST_API_VERSION):
        raise _undecodable(f"apiVersion {api_version!r} is not {_TOKEN_REQUEST_API_VERSION}")
    metadata = body.get("metadata")
    spec = body.get("spec")
    metadata = {} if metadata is None else metadata
    spec = {} if spec is None else spec
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise _undecodable("metadata and spec must be objects")
    _check_metadata_matches(metadata, namespace=namespace, name=name)
    return _typed_spec(spec)


def _check_metadata_matches(metadata: dict[str, Any], *, namespace: str, name: str) -> None:
    # Upstream lets the body leave these out, but not contradict the URL.
    checks = (("name", name, "name"), ("namespace", namespace, "namespace"))
    for key, expected, label in checks:
        given = metadata.get(key)
        if given and given != expected:
            raise invalid(
                "TokenRequest", _TOKEN_REQUEST_GROUP, name,
                [field_invalid(
                    f"metadata.{key}", given,
                    f"must match the service account {label} if specified",
                )],
            )


def _typed_spec(spec: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in spec.items() if value is not None}
    audiences = out.get("audiences")
    if audiences is not None and (
        not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences)
    ):
        raise _undecodable("spec.audiences must be a list of strings")
    if audiences == []:
        del out["audiences"]
    seconds = out.get("expirationSeconds")
    if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool)):
        raise _undecodable("spec.expirationSeconds must be an integer")
    bound = out.get("boundObjectRef")
    if bound is not None and (
        not isinstance(bound, dict) or not all(isinstance(v, str) for v in bound.values())
    ):
        raise _undecodable("spec.boundObjectRef must be an object of strings")
    return out


def _validate_expiration(seconds: int) -> None:
    causes = []
    if seconds < MIN_EXPIRATION_SECONDS:
        causes.append(field_invalid(
            "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"
        ))
    if seconds > MAX_EXPIRATION_SECONDS:
        causes.append(field_invalid(
            "spec.expirationSeconds", seconds,
            "may not specify a duration larger than 2^32 seconds",
        ))
    if causes:
        # Upstream reports these with an empty object name.
        raise invalid("TokenRequest", _TOKEN_REQUEST_GROUP, "", causes)


def _bound_object_of(
    reference: dict[str, str] | None, *, service_account: str
) -> dict[str, str] | None:
    if reference is None:
        return None
    kind = reference.get("kind", "")
    group, _, version = reference.get("apiVersion", "").rpartition("/")
    # Like upstream, only the kind and the (core) group matter, not the version.
    if group or kind not in _BINDABLE_KINDS:
        raise bad_request(
            f'cannot bind token for serviceaccount "{service_account}" to object of type '
            f"{group}/{version}, Kind={kind}"
        )
    if not reference.get("name"):
        raise bad_request("spec.boundObjectRef.name is required")
    return {"kind": kind, "name": reference["name"], "uid": reference.get("uid", "")}


def _undecodable(detail: str) -> StatusError:
    return bad_request(
        f'TokenRequest in version "v1" cannot be handled as a TokenRequest: {detail}'
    )


def _audiences(value: Any) -> tuple[str, ...] | None:
    # RFC 7519 allows a single string as well as a list.
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        return tuple(value)
    return None


def _numeric_date(value: Any, *, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value)


def _nonempty_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _rfc3339(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    """Strict unpadded base64url; raises ``binascii.Error``/``ValueError`` otherwise."""
    raw = segment.encode("ascii")
    if b"=" in raw or len(raw) % 4 == 1:
        raise ValueError("not unpadded base64url")
    standard = raw.replace(b"-", b"+").replace(b"_", b"/")
    return base64.b64decode(standard + b"=" * (-len(raw) % 4), validate=True)


def _key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key id upstream derives: base64url(SHA-256(DER SubjectPublicKeyInfo))."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64encode(hashlib.sha256(der).digest())


def _load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the ServiceAccount signing key must be an RSA key")
    return key


def _load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the ServiceAccount verification key must be an RSA key")
    return key
