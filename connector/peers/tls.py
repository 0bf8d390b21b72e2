"""A throwaway PKI for HTTPS and mTLS on loopback: one CA, a server and client certificates.

:meth:`LoopbackPki.create` writes PEM files into a directory:

- ``ca.pem`` / ``ca.key.pem``: the CA (EC P-256, basicConstraints CA, keyCertSign);
- ``server.pem`` / ``server.key.pem``: a server certificate for ``127.0.0.1`` (SAN IP) and
  ``localhost`` (SAN DNS), extendedKeyUsage serverAuth;
- ``clients/<name>.pem`` / ``clients/<name>.key.pem``: client certificates from
  :meth:`LoopbackPki.issue_client`, extendedKeyUsage clientAuth, the key optionally encrypted.

Private keys are written with mode 0600. For tests and the demo only: the CA key sits next to
the certificates it signs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connector.adapters.customs_client import client_ssl_context
from connector.core.signing import fingerprint
from connector.errors import ConfigurationError

__all__ = ["IssuedCertificate", "LoopbackPki"]

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SKEW: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate of the loopback CA and its key, as files."""

    name: str
    cert_file: Path
    key_file: Path
    certificate: x509.Certificate = field(repr=False)
    passphrase: bytes | None = field(default=None, repr=False)
    """The key file's passphrase; None when the key is stored unencrypted."""

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate DER, lower-case hex (what operators are pinned by)."""
        return fingerprint(self.certificate)


class LoopbackPki:
    """The CA, its server certificate, and a factory for client certificates."""

    def __init__(
        self,
        directory: Path,
        ca_key: ec.EllipticCurvePrivateKey,
        ca_certificate: x509.Certificate,
        server: IssuedCertificate,
    ) -> None:
        """Use :meth:`create` or :meth:`load`."""
        self.directory = directory
        self._ca_key = ca_key
        self.ca_certificate = ca_certificate
        self.server = server

    def __repr__(self) -> str:
        return f"LoopbackPki({str(self.directory)!r})"

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM): the trust anchor for both server and clients."""
        return self.directory / "ca.pem"

    @classmethod
    def create(
        cls, directory: Path | str, *, days: int = 30, now: datetime | None = None
    ) -> LoopbackPki:
        """A new CA and server certificate in ``directory`` (created; files must not exist)."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = now or datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EAD loopback test CA")])
        ca_certificate = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(directory / "ca.key.pem", _key_pem(ca_key, None), 0o600)
        _write(directory / "ca.pem", ca_certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        server = _issue(
            ca_key,
            ca_certificate,
            "server",
            directory,
            ExtendedKeyUsageOID.SERVER_AUTH,
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            passphrase=None,
            days=days,
            now=now,
        )
        return cls(directory, ca_key, ca_certificate, server)

    @classmethod
    def load(cls, directory: Path | str) -> LoopbackPki:
        """The PKI :meth:`create` wrote into ``directory`` earlier.

        Raises:
            ConfigurationError: a file is missing or unreadable.
        """
        directory = Path(directory)
        try:
            ca_key = serialization.load_pem_private_key(
                (directory / "ca.key.pem").read_bytes(), None
            )
            ca_certificate = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
            server_certificate = x509.load_pem_x509_certificate(
                (directory / "server.pem").read_bytes()
            )
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"No loopback PKI in {directory}: {exc}") from exc
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{directory / 'ca.key.pem'} is not an EC key")
        server = IssuedCertificate(
            "server", directory / "server.pem", directory / "server.key.pem", server_certificate
        )
        return cls(directory, ca_key, ca_certificate, server)

    def issue_client(
        self, name: str, *, passphrase: bytes | None = None, days: int = 30
    ) -> IssuedCertificate:
        """A client certificate ``CN=name`` under ``clients/``; the key encrypted if a
        ``passphrase`` is given.

        Raises:
            ConfigurationError: ``name`` is not 1-64 letters, digits, dot, underscore or hyphen,
                or a certificate of that name exists already.
        """
        if not _NAME.fullmatch(name):
            raise ConfigurationError(f"client certificate name {name!r} is not a simple name")
        clients = self.directory / "clients"
        clients.mkdir(mode=0o700, exist_ok=True)
        return _issue(
            self._ca_key,
            self.ca_certificate,
            name,
            clients,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            None,
            passphrase=passphrase,
            days=days,
            now=datetime.now(UTC),
        )

    def server_context(
        self, *, require_client_cert: bool = False, client_ca_file: Path | None = None
    ) -> ssl.SSLContext:
        """A server context (TLS >= 1.2) with the server certificate.

        With ``require_client_cert`` the handshake fails without a client certificate issued
        by ``client_ca_file`` (default: this CA).
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server.cert_file, self.server.key_file)
        if require_client_cert:
            context.load_verify_locations(cafile=client_ca_file or self.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self, client: IssuedCertificate | None = None) -> ssl.SSLContext:
        """A client context that trusts this CA only, presenting ``client`` if given."""
        if client is None:
            return client_ssl_context(self.ca_file)
        return client_ssl_context(
            self.ca_file, client.cert_file, client.key_file, client.passphrase
        )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_certificate: x509.Certificate,
    name: str,
    directory: Path,
    usage: x509.ObjectIdentifier,
    alternative_names: x509.SubjectAlternativeName | None,
    *,
    passphrase: bytes | None,
    days: int,
    now: datetime,
) -> IssuedCertificate:
    """A key and a certificate ``CN=name`` signed by the CA, written to ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
            critical=False,
        )
    )
    if alternative_names is not None:
        builder = builder.add_extension(alternative_names, critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key.pem"
    _write(key_file, _key_pem(key, passphrase), 0o600)
    _write(cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return IssuedCertificate(name, cert_file, key_file, certificate, passphrase)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never overwrite) with ``mode``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise ConfigurationError(f"{path} exists already; refusing to overwrite it") from exc
    with os.fdopen(fd, "wb") as file:
        file.write(data)
