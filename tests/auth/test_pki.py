"""Tests of kplane.auth.pki: first-start creation, reloading, self-repair, client issuing."""

from __future__ import annotations

import ipaddress
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kplane.auth import pki as pki_module
from kplane.auth.pki import Pki, ensure_pki, serving_hosts, write_file_atomically

FILES = ("ca.crt", "ca.key", "serving.crt", "serving.key", "admin.crt", "admin.key")
ALL_FILES = (*FILES, "sa.key", "sa.pub")


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def snapshot(pki: Pki) -> dict[str, bytes]:
    return {name: (pki.directory / name).read_bytes() for name in ALL_FILES}


def san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def lifetime(cert: x509.Certificate) -> timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path, hosts=["kplane.example.com", "10.1.2.3"])


def test_first_start_creates_every_file_with_private_keys_0600(pki: Pki, tmp_path: Path) -> None:
    assert pki.directory == tmp_path / "pki"
    for name in ALL_FILES:
        mode = stat.S_IMODE((pki.directory / name).stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    assert not [p for p in pki.directory.iterdir() if p.name.endswith(".tmp")]


def test_paths_point_at_the_files(pki: Pki) -> None:
    assert pki.ca_cert_path.name == "ca.crt"
    assert pki.serving_cert_path.name == "serving.crt"
    assert pki.serving_key_path.name == "serving.key"
    assert pki.admin_cert_path.name == "admin.crt"
    assert pki.admin_key_path.name == "admin.key"
    assert pki.sa_key_path.name == "sa.key"
    assert pki.sa_pub_path.name == "sa.pub"
    assert pki.ca_pem == pki.ca_cert_path.read_bytes()
    assert pki.admin_credentials() == (
        pki.admin_cert_path.read_bytes(),
        pki.admin_key_path.read_bytes(),
    )


def test_ca_is_a_self_signed_ten_year_p256_ca(pki: Pki) -> None:
    ca = load_cert(pki.ca_cert_path)
    ca.verify_directly_issued_by(ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert timedelta(days=3649) < lifetime(ca) < timedelta(days=3651)
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"


def test_serving_certificate_covers_defaults_and_hosts(pki: Pki) -> None:
    cert = load_cert(pki.serving_cert_path)
    cert.verify_directly_issued_by(load_cert(pki.ca_cert_path))
    names = san(cert)
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "kplane.example.com"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.1.2.3"),
    ]
    assert eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = serialization.load_pem_private_key(pki.serving_key_path.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()


def test_admin_certificate_is_kplane_admin_in_system_masters_for_a_year(pki: Pki) -> None:
    cert = load_cert(pki.admin_cert_path)
    cert.verify_directly_issued_by(load_cert(pki.ca_cert_path))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kplane-admin"
    organizations = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in organizations] == ["system:masters"]
    assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert timedelta(days=364) < lifetime(cert) < timedelta(days=366)


def test_service_account_key_pair_is_rsa_and_matches(pki: Pki) -> None:
    key = serialization.load_pem_private_key(pki.sa_key_path.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pki.sa_pub_path.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key() == public


def test_second_start_reuses_everything(pki: Pki, tmp_path: Path) -> None:
    before = snapshot(pki)
    again = ensure_pki(tmp_path, hosts=["kplane.example.com"])
    assert snapshot(again) == before
    assert again.ca_pem == pki.ca_pem


def test_hosts_are_compared_in_canonical_form(pki: Pki, tmp_path: Path) -> None:
    before = snapshot(pki)
    ensure_pki(tmp_path, hosts=["KPLANE.example.com", "0:0:0:0:0:0:0:1", "[::1]"])
    assert snapshot(pki) == before


def test_new_host_reissues_only_the_serving_certificate(pki: Pki, tmp_path: Path) -> None:
    before = snapshot(pki)
    ensure_pki(tmp_path, hosts=["other.example.com"])
    after = snapshot(pki)
    changed = {name for name in ALL_FILES if before[name] != after[name]}
    assert changed == {"serving.crt", "serving.key"}
    names = san(load_cert(pki.serving_cert_path)).get_values_for_type(x509.DNSName)
    assert names == ["localhost", "other.example.com"]


def test_missing_ca_certificate_regenerates_the_ca_and_everything_it_signed(
    pki: Pki, tmp_path: Path
) -> None:
    before = snapshot(pki)
    pki.ca_cert_path.unlink()
    again = ensure_pki(tmp_path, hosts=[])
    after = snapshot(again)
    assert {name for name in FILES if before[name] == after[name]} == set()
    ca = load_cert(again.ca_cert_path)
    load_cert(again.serving_cert_path).verify_directly_issued_by(ca)
    load_cert(again.admin_cert_path).verify_directly_issued_by(ca)
    assert after["sa.key"] == before["sa.key"]


def test_leaf_whose_key_does_not_match_is_reissued(pki: Pki, tmp_path: Path) -> None:
    stray = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pki.admin_key_path.write_bytes(stray)
    ensure_pki(tmp_path, hosts=[])
    cert = load_cert(pki.admin_cert_path)
    key = serialization.load_pem_private_key(pki.admin_key_path.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()


def test_truncated_certificate_is_reissued(pki: Pki, tmp_path: Path) -> None:
    pki.serving_cert_path.write_bytes(pki.serving_cert_path.read_bytes()[:100])
    ensure_pki(tmp_path, hosts=[])
    load_cert(pki.serving_cert_path).verify_directly_issued_by(load_cert(pki.ca_cert_path))


def test_certificate_expiring_soon_is_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pki_module, "SERVING_VALIDITY", timedelta(days=2))
    first = ensure_pki(tmp_path, hosts=[])
    short = load_cert(first.serving_cert_path)
    monkeypatch.undo()
    ensure_pki(tmp_path, hosts=[])
    renewed = load_cert(first.serving_cert_path)
    assert renewed.serial_number != short.serial_number
    assert lifetime(renewed) > timedelta(days=300)


def test_issue_client_certificate(pki: Pki) -> None:
    cert_pem, key_pem = pki.issue_client_certificate(
        user="alice", groups=["dev", "ops"], expires_in=timedelta(hours=2)
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(load_cert(pki.ca_cert_path))
    assert cert.subject.rfc4514_string() == "CN=alice,O=ops,O=dev"
    assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    remaining = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < remaining <= timedelta(hours=2)
    assert cert.not_valid_before_utc < datetime.now(UTC)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key() == cert.public_key()


def test_issue_client_certificate_gives_a_new_key_each_time(pki: Pki) -> None:
    _, first = pki.issue_client_certificate(user="a", groups=[], expires_in=timedelta(hours=1))
    _, second = pki.issue_client_certificate(user="a", groups=[], expires_in=timedelta(hours=1))
    assert first != second


def test_concurrent_first_starts_agree_on_one_ca(tmp_path: Path) -> None:
    results: list[Pki] = []

    def start() -> None:
        results.append(ensure_pki(tmp_path, hosts=[]))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({result.ca_pem for result in results}) == 1
    assert results[0].ca_pem == (tmp_path / "pki" / "ca.crt").read_bytes()


def test_serving_hosts_defaults_first_without_duplicates() -> None:
    assert serving_hosts(["127.0.0.1", " node-1 ", "", "Node-1", "::0:1"]) == [
        "localhost",
        "127.0.0.1",
        "::1",
        "node-1",
    ]


def test_write_file_atomically_replaces_with_the_given_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_file_atomically(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]
