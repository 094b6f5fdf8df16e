"""The server's own certificate authority and the key material kplane creates at first start.

kplane is meant to work out of the box: ``kplane serve`` on an empty data directory must
produce a TLS endpoint that the real ``kubectl`` trusts and an admin identity it can use,
without the user running openssl. This module owns everything under ``<data_dir>/pki/``:

* ``ca.crt`` / ``ca.key``: a self-signed CA (10 years) that signs everything below, and
  the trust anchor the TLS layer checks client certificates against;
* ``serving.crt`` / ``serving.key``: the HTTPS certificate, with SANs for ``localhost``,
  the loopback addresses and every host the server was asked to answer as;
* ``admin.crt`` / ``admin.key``: a client certificate for ``kplane-admin`` in
  ``system:masters`` (1 year), which the admin kubeconfig embeds;
* ``sa.key`` / ``sa.pub``: the key pair that will sign ServiceAccount tokens (JWT).

Keys are ECDSA P-256 (the handshake costs far less CPU than RSA, and Go, OpenSSL and
Python all accept it), except the ServiceAccount key, which is RSA 2048 because RS256 is
the one JWT algorithm every OIDC consumer must support. Files are written atomically
(temporary file, fsync, rename) under an exclusive lock, and every later start checks
what it loads (pairs match, leaf signed by the current CA, hosts covered, not about to
expire) so an interrupted first start heals itself instead of serving a broken chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "kplane-admin"
ADMIN_GROUP = "system:masters"

CA_VALIDITY = timedelta(days=3650)
SERVING_VALIDITY = timedelta(days=365)
ADMIN_VALIDITY = timedelta(days=365)
# Re-issue a leaf certificate at start-up when it would expire within this window, so a
# server restarted now and then never ends up serving an expired certificate.
RENEW_BEFORE = timedelta(days=30)
# Tolerate clocks that are a little behind ours (other machines, containers).
BACKDATE = timedelta(minutes=5)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_SERVING_HOSTS = ("localhost", "127.0.0.1", "::1")

_KEY_MODE = 0o600
_CERT_MODE = 0o644


@dataclass(frozen=True)
class Pki:
    """Paths of kplane's key material, plus the CA needed to issue more client certificates."""

    directory: Path
    ca_pem: bytes
    _ca_cert: x509.Certificate = field(repr=False)
    _ca_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert_path(self) -> Path:
        return self.directory / "serving.crt"

    @property
    def serving_key_path(self) -> Path:
        return self.directory / "serving.key"

    @property
    def admin_cert_path(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key_path(self) -> Path:
        return self.directory / "admin.key"

    @property
    def sa_key_path(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub_path(self) -> Path:
        return self.directory / "sa.pub"

    def admin_credentials(self) -> tuple[bytes, bytes]:
        """The admin client certificate and key, as PEM, for embedding in a kubeconfig."""
        return self.admin_cert_path.read_bytes(), self.admin_key_path.read_bytes()

    def issue_client_certificate(
        self, *, user: str, groups: list[str], expires_in: timedelta
    ) -> tuple[bytes, bytes]:
        """A new key and a CA-signed ``clientAuth`` certificate (CN=user, one O per group).

        Returns ``(certificate PEM, private key PEM)``. Raises ``ValueError`` for a user
        name or group outside X.509's 1..64 characters.
        """
        key = _new_ec_key()
        cert = _sign_client_certificate(
            ca_cert=self._ca_cert,
            ca_key=self._ca_key,
            public_key=key.public_key(),
            subject=client_subject(user=user, groups=groups),
            validity=expires_in,
        )
        return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def ensure_pki(data_dir: Path, *, hosts: list[str]) -> Pki:
    """Create (first start) or load and repair (later starts) the files under ``data_dir/pki``.

    ``hosts`` are the extra names and IP addresses the serving certificate must cover;
    the serving certificate is re-issued only when one of them is missing from it.
    """
    directory = data_dir / "pki"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _exclusive_lock(directory / ".lock"):
        ca_cert, ca_key = _ensure_ca(directory)
        _ensure_serving(directory, ca_cert=ca_cert, ca_key=ca_key, hosts=hosts)
        _ensure_admin(directory, ca_cert=ca_cert, ca_key=ca_key)
        _ensure_service_account_keys(directory)
    return Pki(
        directory=directory,
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        _ca_cert=ca_cert,
        _ca_key=ca_key,
    )


def write_file_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` so readers see the old file or the new, never a part.

    The temporary file gets ``mode`` before any byte is written, so a private key is never
    readable by others, not even for an instant.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def serving_hosts(hosts: list[str]) -> list[str]:
    """The defaults plus ``hosts``, de-duplicated, IPs in canonical form, order kept."""
    seen: dict[str, None] = {}
    for host in (*DEFAULT_SERVING_HOSTS, *hosts):
        host = host.strip()
        if host:
            seen.setdefault(_canonical_host(host), None)
    return list(seen)


def client_subject(*, user: str, groups: list[str]) -> x509.Name:
    """The subject kube-apiserver reads a user from: one O per group, then CN=user."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    return x509.Name(attributes)


# --- CA ---------------------------------------------------------------------------------


def _ensure_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    loaded = _load_pair(directory / "ca.crt", directory / "ca.key")
    if loaded is not None:
        cert, key = loaded
        if isinstance(key, ec.EllipticCurvePrivateKey) and _valid_for(cert, RENEW_BEFORE):
            return cert, key
    key = _new_ec_key()
    cert = _self_signed_ca(key)
    # Key first: a crash between the two writes leaves a key without its certificate,
    # which the pair check above rejects, so the next start simply creates a new CA.
    write_file_atomically(directory / "ca.key", _private_pem(key), mode=_KEY_MODE)
    write_file_atomically(
        directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), mode=_CERT_MODE
    )
    return cert, key


def _self_signed_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kplane-ca")])
    now = datetime.now(UTC)
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


# --- leaf certificates ------------------------------------------------------------------


def _ensure_serving(
    directory: Path,
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: list[str],
) -> None:
    wanted = serving_hosts(hosts)
    cert_path, key_path = directory / "serving.crt", directory / "serving.key"
    current = _load_leaf(cert_path, key_path, ca_cert=ca_cert)
    if current is not None and set(wanted) <= certificate_hosts(current):
        return
    key = _new_ec_key()
    cert = _sign_serving_certificate(
        ca_cert=ca_cert, ca_key=ca_key, public_key=key.public_key(), hosts=wanted
    )
    _write_leaf(cert_path, key_path, cert=cert, key=key)


def _ensure_admin(
    directory: Path, *, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    cert_path, key_path = directory / "admin.crt", directory / "admin.key"
    if _load_leaf(cert_path, key_path, ca_cert=ca_cert) is not None:
        return
    key = _new_ec_key()
    cert = _sign_client_certificate(
        ca_cert=ca_cert,
        ca_key=ca_key,
        public_key=key.public_key(),
        subject=client_subject(user=ADMIN_USER, groups=[ADMIN_GROUP]),
        validity=ADMIN_VALIDITY,
    )
    _write_leaf(cert_path, key_path, cert=cert, key=key)


def certificate_hosts(cert: x509.Certificate) -> set[str]:
    """The DNS names and (canonical) IP addresses a certificate's SAN extension lists."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = set(san.get_values_for_type(x509.DNSName))
    names.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return names


def _sign_serving_certificate(
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    hosts: list[str],
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kplane")])
    return (
        _leaf_builder(ca_cert=ca_cert, public_key=public_key, validity=SERVING_VALIDITY)
        .subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _sign_client_certificate(
    *,
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    public_key: ec.EllipticCurvePublicKey,
    subject: x509.Name,
    validity: timedelta,
) -> x509.Certificate:
    return (
        _leaf_builder(ca_cert=ca_cert, public_key=public_key, validity=validity)
        .subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _leaf_builder(
    *, ca_cert: x509.Certificate, public_key: ec.EllipticCurvePublicKey, validity: timedelta
) -> x509.CertificateBuilder:
    # The key identifiers are not optional in practice: Python 3.13's strict verification
    # (VERIFY_X509_STRICT) refuses leaf certificates without an authority key identifier.
    now = datetime.now(UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    ip = _parse_ip(host)
    return x509.IPAddress(ip) if ip is not None else x509.DNSName(host)


def _canonical_host(host: str) -> str:
    ip = _parse_ip(host)
    return str(ip) if ip is not None else host.lower()


def _parse_ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# --- loading and checking ---------------------------------------------------------------


def _load_leaf(
    cert_path: Path, key_path: Path, *, ca_cert: x509.Certificate
) -> x509.Certificate | None:
    """The leaf certificate if it is usable as is: matches its key, comes from this CA and
    does not expire soon; ``None`` means "issue a new one"."""
    loaded = _load_pair(cert_path, key_path)
    if loaded is None:
        return None
    cert, _ = loaded
    if not _issued_by(cert, ca_cert) or not _valid_for(cert, RENEW_BEFORE):
        return None
    return cert


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _valid_for(cert: x509.Certificate, margin: timedelta) -> bool:
    now = datetime.now(UTC)
    return cert.not_valid_before_utc <= now and now + margin < cert.not_valid_after_utc


def _write_leaf(
    cert_path: Path, key_path: Path, *, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    write_file_atomically(key_path, _private_pem(key), mode=_KEY_MODE)
    write_file_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=_CERT_MODE)


# --- ServiceAccount signing keys --------------------------------------------------------


def _ensure_service_account_keys(directory: Path) -> None:
    key_path, pub_path = directory / "sa.key", directory / "sa.pub"
    key = _load_rsa_key(key_path)
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_file_atomically(key_path, _private_pem(key), mode=_KEY_MODE)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Derived from the private key every start, so the two can never disagree.
    if not pub_path.exists() or pub_path.read_bytes() != public_pem:
        write_file_atomically(pub_path, public_pem, mode=_CERT_MODE)


def _load_rsa_key(path: Path) -> rsa.RSAPrivateKey | None:
    try:
        # The key is our own, in a 0600 file; the validation skipped costs ~60 ms per start.
        key = serialization.load_pem_private_key(
            path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
        )
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


# --- small helpers ----------------------------------------------------------------------


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    # PKCS#8 rather than "EC PRIVATE KEY": every TLS stack and JWT library reads it.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise two processes starting on the same data directory at the same moment."""
    with open(path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; without it a power cut may forget the new name.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
