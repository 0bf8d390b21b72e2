"""Signing keys on disk: generation, encrypted storage and a key ring for rotation.

A key pair is two files in one directory: ``key.pem`` (PKCS#8, encrypted with the key
passphrase, mode 0600) and ``cert.pem`` (a self-signed X.509 certificate: the thing
counterparties pin). A :class:`KeyRing` is a directory of such pairs plus a one-line
``active`` file naming the pair that signs::

    KEYS_DIR/
        active                      # "20261126T100000Z-1a2b3c4d"
        20261126T100000Z-1a2b3c4d/  # key.pem + cert.pem
        20251201T090000Z-9f8e7d6c/  # the previous pair, still published until it expires

Rotation without downtime: a new pair is written under a temporary name and renamed into
place, then ``active`` is replaced atomically (temporary file + ``os.replace``), and the
in-memory :class:`~connector.core.signing.SigningKey` is swapped. Old pairs stay: their
certificates are *published* (counterparties keep trusting them) until they expire, so
messages signed just before the switch still verify. Other processes see the switch when
they load the ring again or call :meth:`KeyRing.refresh` (the service does, before signing,
at most every few seconds).

Library and OS errors are translated here, with the cause kept, into
:class:`~connector.errors.SigningKeyUnavailable` (naming the file, never the passphrase) or
:class:`~connector.errors.ConfigurationError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from connector.core.signing import (
    KeyKind,
    PrivateKey,
    SigningKey,
    algorithm_for,
    fingerprint,
)
from connector.errors import ConfigurationError, SigningKeyUnavailable

__all__ = [
    "ACTIVE_FILE",
    "CERT_FILE",
    "KEY_FILE",
    "KeyEntry",
    "KeyRing",
    "KeyState",
    "days_to_expiry",
    "generate_key",
    "load_certificate",
    "load_signing_key",
    "read_entries",
    "write_key_pair",
]

KEY_FILE: Final = "key.pem"
CERT_FILE: Final = "cert.pem"
ACTIVE_FILE: Final = "active"
RSA_BITS: Final = (2048, 3072)
MAX_DAYS: Final = 3660
# A new certificate is valid from a little before now, so a counterparty whose clock is
# slightly behind does not reject the first messages as "not yet valid".
CLOCK_SKEW: Final = timedelta(minutes=5)
_KEY_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KeyState(StrEnum):
    """Where a key pair of a ring stands."""

    ACTIVE = "active"
    """Signs outgoing messages."""
    PUBLISHED = "published"
    """Not signing, certificate still valid: counterparties keep trusting it."""
    EXPIRED = "expired"
    """Certificate expired; kept on disk for the archive, trusted by no one."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key pair of a ring, as ``keys list`` shows it."""

    key_id: str
    fingerprint: str
    algorithm: str
    subject: str
    not_before: datetime
    not_after: datetime
    state: KeyState
    days_left: int


# --- one key pair ---------------------------------------------------------------------------


def generate_key(
    kind: KeyKind | str,
    cn: str,
    days: int,
    *,
    rsa_bits: int = 2048,
    now: datetime | None = None,
) -> tuple[PrivateKey, x509.Certificate]:
    """A new private key and its self-signed certificate, valid for ``days`` days.

    The certificate: subject and issuer ``CN=cn``, random serial, valid from ``now`` (less
    :data:`CLOCK_SKEW`) to ``now + days``, basicConstraints CA=false and keyUsage
    digitalSignature (both critical), subject key identifier.

    Raises:
        UnknownCode: ``kind`` is not ``rsa`` or ``ec``.
        ConfigurationError: empty ``cn``, ``days`` outside 1..3660, or ``rsa_bits`` other than
            2048 or 3072.
    """
    kind = KeyKind(kind)
    if not cn or not cn.strip() or len(cn) > 64:
        raise ConfigurationError("The certificate CN must be 1-64 characters.", key="cn")
    if isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise ConfigurationError(f"days must be from 1 to {MAX_DAYS}, got {days}.", key="days")
    if rsa_bits not in RSA_BITS:
        raise ConfigurationError(f"RSA keys are 2048 or 3072 bits, not {rsa_bits}.", key="rsa_bits")
    now = now or _utcnow()
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        if kind is KeyKind.RSA
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def write_key_pair(
    directory: Path | str,
    private_key: PrivateKey,
    certificate: x509.Certificate,
    passphrase: bytes,
) -> None:
    """Write ``key.pem`` (PKCS#8 encrypted with ``passphrase``, mode 0600) and ``cert.pem``.

    The directory is created (mode 0700) if needed; existing files are never overwritten.

    Raises:
        ConfigurationError: empty passphrase, or either file already exists.
        SigningKeyUnavailable: the files cannot be written.
    """
    if not passphrase:
        raise ConfigurationError("The key passphrase must not be empty.", key="key_passphrase")
    directory = Path(directory)
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    for path in (key_path, cert_path):
        if path.exists():
            raise ConfigurationError(
                f"{path} already exists; refusing to overwrite a signing key.", file=str(path)
            )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(key_path, key_pem, 0o600)
        _write_new(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot write the key pair to {directory}: {exc.strerror or exc}.",
            file=str(exc.filename or directory),
        ) from exc


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never wider), write and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    finally:
        os.close(fd)


def load_certificate(path: Path | str) -> x509.Certificate:
    """Read one PEM certificate.

    Raises:
        SigningKeyUnavailable: the file cannot be read or holds no PEM certificate.
    """
    path = Path(path)
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot read the certificate {path}: {exc.strerror or exc}.", file=str(path)
        ) from exc
    except ValueError as exc:
        raise SigningKeyUnavailable(
            f"{path} does not hold a PEM X.509 certificate.", file=str(path)
        ) from exc


def load_signing_key(key_path: Path | str, cert_path: Path | str, passphrase: bytes) -> SigningKey:
    """Decrypt ``key_path`` with ``passphrase`` and pair it with ``cert_path``; do it once.

    Raises:
        SigningKeyUnavailable: a file is missing or unreadable, the passphrase is wrong, the
            key is stored unencrypted or is unsupported, or the certificate is of another key.
            The message names the file, never the passphrase.
    """
    key_path = Path(key_path)
    try:
        data = key_path.read_bytes()
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot read the signing key {key_path}: {exc.strerror or exc}.", file=str(key_path)
        ) from exc
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        # cryptography: "Password was given but private key is not encrypted", or the reverse.
        raise SigningKeyUnavailable(
            f"The signing key {key_path} is not stored encrypted with a passphrase.",
            file=str(key_path),
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyUnavailable(
            f"Cannot decrypt the signing key {key_path}: wrong passphrase, or not a PEM "
            "private key.",
            file=str(key_path),
        ) from exc
    certificate = load_certificate(cert_path)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningKeyUnavailable(
            f"The signing key {key_path} is a {type(key).__name__}; use RSA or EC P-256.",
            file=str(key_path),
        )
    try:
        return SigningKey(key, certificate)
    except SigningKeyUnavailable as exc:
        raise SigningKeyUnavailable(
            f"{key_path} with {cert_path}: {exc.message}", file=str(key_path)
        ) from exc


def days_to_expiry(certificate: x509.Certificate, now: datetime) -> int:
    """Whole days until ``certificate`` expires (negative once expired); alert at 30 and 7."""
    return (certificate.not_valid_after_utc - now) // timedelta(days=1)


# --- the key ring ---------------------------------------------------------------------------


def read_entries(directory: Path | str, now: datetime | None = None) -> tuple[KeyEntry, ...]:
    """List a ring's key pairs from their certificates alone (no passphrase), oldest first.

    Raises:
        SigningKeyUnavailable: the directory or a certificate cannot be read.
    """
    directory = Path(directory)
    now = now or _utcnow()
    certificates = _read_certificates(directory)
    active = _read_active(directory) if (directory / ACTIVE_FILE).exists() else None
    return _entries(certificates, active, now)


def _entries(
    certificates: dict[str, x509.Certificate], active: str | None, now: datetime
) -> tuple[KeyEntry, ...]:
    rows = []
    for key_id, certificate in certificates.items():
        if key_id == active:
            state = KeyState.ACTIVE
        elif certificate.not_valid_after_utc <= now:
            state = KeyState.EXPIRED
        else:
            state = KeyState.PUBLISHED
        rows.append(
            KeyEntry(
                key_id=key_id,
                fingerprint=fingerprint(certificate),
                algorithm=_algorithm_name(certificate),
                subject=certificate.subject.rfc4514_string(),
                not_before=certificate.not_valid_before_utc,
                not_after=certificate.not_valid_after_utc,
                state=state,
                days_left=days_to_expiry(certificate, now),
            )
        )
    return tuple(sorted(rows, key=lambda row: (row.not_before, row.key_id)))


def _algorithm_name(certificate: x509.Certificate) -> str:
    try:
        return algorithm_for(certificate.public_key()).name
    except SigningKeyUnavailable:
        return "unsupported"


def _read_certificates(directory: Path) -> dict[str, x509.Certificate]:
    try:
        children = sorted(directory.iterdir())
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot read the key directory {directory}: {exc.strerror or exc}.",
            file=str(directory),
        ) from exc
    found: dict[str, x509.Certificate] = {}
    for child in children:
        # Dot-names are rotations in progress (or editor litter); ``active`` is a file.
        if child.name.startswith(".") or not child.is_dir():
            continue
        if not _KEY_ID.fullmatch(child.name):
            raise SigningKeyUnavailable(
                f"{child} is not a valid key id (letters, digits, '.', '_', '-').",
                file=str(child),
            )
        found[child.name] = load_certificate(child / CERT_FILE)
    return found


def _read_active(directory: Path) -> str:
    path = directory / ACTIVE_FILE
    try:
        key_id = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyUnavailable(
            f"Cannot read {path}; it names the active key (run 'keys rotate').",
            file=str(path),
        ) from exc
    if not _KEY_ID.fullmatch(key_id) or not (directory / key_id).is_dir():
        raise SigningKeyUnavailable(
            f"{path} names {key_id!r}, which is not a key pair in {directory}.", file=str(path)
        )
    return key_id


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class KeyRing:
    """The connector's signing key pairs: one active, the others published until expiry.

    Build it with :meth:`load` (or :meth:`create` for a new directory). The active key is
    decrypted once; :meth:`rotate` and :meth:`activate` swap it under a lock.
    """

    def __init__(
        self,
        directory: Path,
        passphrase: bytes,
        active_id: str,
        active: SigningKey,
        certificates: dict[str, x509.Certificate],
        clock: Clock = _utcnow,
    ) -> None:
        self._directory = directory
        self._passphrase = passphrase
        self._active_id = active_id
        self._active = active
        self._certificates = dict(certificates)
        self._clock = clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyRing({str(self._directory)!r}, active={self._active_id!r})"

    @classmethod
    def load(cls, directory: Path | str, passphrase: bytes, *, clock: Clock = _utcnow) -> KeyRing:
        """Read a ring and decrypt its active key.

        Raises:
            SigningKeyUnavailable: no ``active`` file, it names no pair, or the active key
                cannot be loaded (missing file, wrong passphrase, ...).
        """
        directory = Path(directory)
        certificates = _read_certificates(directory)
        active_id = _read_active(directory)
        active = load_signing_key(
            directory / active_id / KEY_FILE, directory / active_id / CERT_FILE, passphrase
        )
        return cls(directory, passphrase, active_id, active, certificates, clock)

    @classmethod
    def create(
        cls,
        directory: Path | str,
        passphrase: bytes,
        kind: KeyKind | str,
        cn: str,
        days: int,
        *,
        rsa_bits: int = 2048,
        clock: Clock = _utcnow,
    ) -> KeyRing:
        """Start a ring in a new or empty directory with one generated, active key pair.

        Raises:
            ConfigurationError: the directory already holds a ring, or bad key parameters.
        """
        directory = Path(directory)
        if (directory / ACTIVE_FILE).exists():
            raise ConfigurationError(
                f"{directory} already holds a key ring; rotate it instead.", file=str(directory)
            )
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SigningKeyUnavailable(
                f"Cannot create {directory}: {exc.strerror or exc}.", file=str(directory)
            ) from exc
        key_id, key = _add_pair(directory, passphrase, kind, cn, days, rsa_bits, clock())
        _write_active(directory, key_id)
        return cls(directory, passphrase, key_id, key, {key_id: key.certificate}, clock)

    @property
    def directory(self) -> Path:
        """The ring's directory."""
        return self._directory

    @property
    def active_id(self) -> str:
        """The key id of the active pair."""
        return self._active_id

    @property
    def active(self) -> SigningKey:
        """The key that signs now (decrypted once, shared)."""
        return self._active

    @property
    def published(self) -> tuple[x509.Certificate, ...]:
        """What counterparties should trust now: the active certificate first, then every
        other certificate of the ring that has not expired (older ones during the overlap,
        and newer ones added for an upcoming rotation)."""
        now = self._clock()
        with self._lock:
            active_id, certificates = self._active_id, dict(self._certificates)
        others = sorted(
            (
                c
                for key_id, c in certificates.items()
                if key_id != active_id and c.not_valid_after_utc > now
            ),
            key=lambda c: c.not_valid_before_utc,
            reverse=True,
        )
        return (certificates[active_id], *others)

    def entries(self) -> tuple[KeyEntry, ...]:
        """Every pair of the ring with its state, oldest first."""
        with self._lock:
            certificates, active_id = dict(self._certificates), self._active_id
        return _entries(certificates, active_id, self._clock())

    def add(
        self,
        kind: KeyKind | str | None = None,
        cn: str | None = None,
        days: int = 365,
        *,
        rsa_bits: int = 2048,
    ) -> str:
        """Generate and store a new pair without activating it (publish it first); its id.

        ``kind`` and ``cn`` default to those of the active key.
        """
        return self._generate(kind, cn, days, rsa_bits)[0]

    def activate(self, key_id: str) -> SigningKey:
        """Make an existing, unexpired pair the active one (atomically on disk and here).

        Raises:
            SigningKeyUnavailable: no such pair, its key cannot be loaded, or it is expired.
        """
        directory = self._directory / key_id
        if not _KEY_ID.fullmatch(key_id) or not directory.is_dir():
            raise SigningKeyUnavailable(
                f"There is no key pair {key_id!r} in {self._directory}.", file=str(directory)
            )
        key = load_signing_key(directory / KEY_FILE, directory / CERT_FILE, self._passphrase)
        self._switch(key_id, key)
        return key

    def rotate(
        self,
        kind: KeyKind | str | None = None,
        cn: str | None = None,
        days: int = 365,
        *,
        rsa_bits: int = 2048,
    ) -> str:
        """Generate a new pair, make it active and keep the old one published; its id.

        ``kind`` and ``cn`` default to those of the active key.
        """
        key_id, key = self._generate(kind, cn, days, rsa_bits)
        self._switch(key_id, key)
        return key_id

    def refresh(self) -> bool:
        """Follow a rotation made by another process (``keys rotate``); True if it switched.

        Re-reads the ``active`` file and the certificates; a new active pair is decrypted
        once and swapped in. On any problem the current key stays active (and the error is
        raised, for the caller to log): a half-written rotation never stops signing.

        Raises:
            SigningKeyUnavailable: the ring on disk cannot be read or its active key loaded.
        """
        active_id = _read_active(self._directory)
        certificates = _read_certificates(self._directory)
        with self._lock:
            self._certificates.update(certificates)
            if active_id == self._active_id:
                return False
        directory = self._directory / active_id
        key = load_signing_key(directory / KEY_FILE, directory / CERT_FILE, self._passphrase)
        with self._lock:
            self._active_id, self._active = active_id, key
        return True

    def _generate(
        self, kind: KeyKind | str | None, cn: str | None, days: int, rsa_bits: int
    ) -> tuple[str, SigningKey]:
        kind = self._active.kind if kind is None else KeyKind(kind)
        cn = cn or _common_name(self._active.certificate)
        key_id, key = _add_pair(
            self._directory, self._passphrase, kind, cn, days, rsa_bits, self._clock()
        )
        with self._lock:
            self._certificates[key_id] = key.certificate
        return key_id, key

    def _switch(self, key_id: str, key: SigningKey) -> None:
        now = self._clock()
        if key.certificate.not_valid_after_utc <= now:
            raise SigningKeyUnavailable(
                f"The certificate of {key_id} expired on "
                f"{key.certificate.not_valid_after_utc:%Y-%m-%d}; it cannot become active.",
                file=str(self._directory / key_id / CERT_FILE),
            )
        with self._lock:
            _write_active(self._directory, key_id)
            self._certificates[key_id] = key.certificate
            self._active_id, self._active = key_id, key


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else "ead-connector"
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _add_pair(
    directory: Path,
    passphrase: bytes,
    kind: KeyKind | str,
    cn: str,
    days: int,
    rsa_bits: int,
    now: datetime,
) -> tuple[str, SigningKey]:
    """Generate a pair and move it into ``directory/<key id>`` in one rename."""
    private_key, certificate = generate_key(kind, cn, days, rsa_bits=rsa_bits, now=now)
    key = SigningKey(private_key, certificate)
    key_id = f"{now:%Y%m%dT%H%M%SZ}-{key.fingerprint[:8]}"
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".new-{key_id}.", dir=directory))
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot write to the key directory {directory}: {exc.strerror or exc}.",
            file=str(directory),
        ) from exc
    try:
        write_key_pair(staging, private_key, certificate, passphrase)
        staging.rename(directory / key_id)
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot add key pair {key_id} to {directory}: {exc.strerror or exc}.",
            file=str(directory / key_id),
        ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _fsync_directory(directory)
    return key_id, key


def _write_active(directory: Path, key_id: str) -> None:
    """Replace ``directory/active`` atomically: a reader sees the old id or the new one."""
    try:
        fd, name = tempfile.mkstemp(prefix=".active.", dir=directory)
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"Cannot write to the key directory {directory}: {exc.strerror or exc}.",
            file=str(directory),
        ) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(f"{key_id}\n".encode("ascii"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, directory / ACTIVE_FILE)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise SigningKeyUnavailable(
            f"Cannot switch the active key in {directory}: {exc.strerror or exc}.",
            file=str(directory / ACTIVE_FILE),
        ) from exc
    _fsync_directory(directory)
