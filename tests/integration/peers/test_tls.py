"""The loopback PKI: what it issues, how it stores keys, and the TLS contexts it builds."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from connector.errors import ConfigurationError
from connector.peers.tls import LoopbackPki


def _usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_server_certificate_names_loopback_and_chains_to_the_ca(tmp_path: Path) -> None:
    """The server certificate is for 127.0.0.1 and localhost, for server auth, by the CA."""
    pki = LoopbackPki.create(tmp_path)
    server = pki.server.certificate
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert _usages(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    server.verify_directly_issued_by(pki.ca_certificate)
    ca = pki.ca_certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert ca.ca


def test_client_certificates_are_for_client_auth(tmp_path: Path) -> None:
    """A client certificate carries its name, client auth usage, and the CA's signature."""
    pki = LoopbackPki.create(tmp_path)
    client = pki.issue_client("DE-POST")
    assert client.certificate.subject.rfc4514_string() == "CN=DE-POST"
    assert _usages(client.certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    client.certificate.verify_directly_issued_by(pki.ca_certificate)
    assert client.cert_file.parent == tmp_path / "clients"
    assert len(client.fingerprint) == 64


def test_private_keys_are_owner_only_and_optionally_encrypted(tmp_path: Path) -> None:
    """Key files are mode 0600; a passphrase encrypts the client key."""
    pki = LoopbackPki.create(tmp_path)
    plain = pki.issue_client("plain")
    locked = pki.issue_client("locked", passphrase=b"pass phrase")
    for key_file in (tmp_path / "ca.key.pem", pki.server.key_file, plain.key_file, locked.key_file):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"ENCRYPTED" in locked.key_file.read_bytes()
    assert b"ENCRYPTED" not in plain.key_file.read_bytes()
    assert "pass phrase" not in repr(locked)


def test_names_are_checked_and_files_never_overwritten(tmp_path: Path) -> None:
    """A client name must be simple and unused; creating a PKI over another one fails."""
    pki = LoopbackPki.create(tmp_path)
    pki.issue_client("once")
    for name in ("once", "../escape", "", "with space"):
        with pytest.raises(ConfigurationError):
            pki.issue_client(name)
    with pytest.raises(ConfigurationError, match="exists"):
        LoopbackPki.create(tmp_path)


def test_load_reads_back_a_created_pki(tmp_path: Path) -> None:
    """load() gives the same CA and server, and can issue more client certificates."""
    created = LoopbackPki.create(tmp_path)
    loaded = LoopbackPki.load(tmp_path)
    assert loaded.ca_certificate == created.ca_certificate
    assert loaded.server.certificate == created.server.certificate
    loaded.issue_client("later").certificate.verify_directly_issued_by(created.ca_certificate)
    with pytest.raises(ConfigurationError):
        LoopbackPki.load(tmp_path / "nothing")


def test_contexts_enforce_tls_1_2_and_client_certificates(tmp_path: Path) -> None:
    """The server context requires client certificates only when asked; both sides use
    TLS 1.2 or later."""
    pki = LoopbackPki.create(tmp_path)
    optional = pki.server_context()
    required = pki.server_context(require_client_cert=True)
    assert optional.verify_mode is ssl.CERT_NONE
    assert required.verify_mode is ssl.CERT_REQUIRED
    client = pki.client_context(pki.issue_client("c"))
    for context in (optional, required, client):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert client.check_hostname
