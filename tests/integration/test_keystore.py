"""Tests for signing keys on disk, the key ring and the keys/sign/verify commands."""

from __future__ import annotations

import argparse
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from connector import keys_cli
from connector.adapters import keystore
from connector.adapters.keystore import KeyRing, KeyState
from connector.core import signing
from connector.errors import ConfigurationError, SigningKeyUnavailable, UnknownCode

PASSPHRASE = b"correct horse battery staple"
MESSAGES = Path(__file__).resolve().parents[1] / "data" / "messages"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class FakeClock:
    """A settable clock for the key ring."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# --- one key pair ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "key_type", "algorithm"),
    [
        ("rsa", rsa.RSAPrivateKey, "RSA_SHA256"),
        ("ec", ec.EllipticCurvePrivateKey, "ECDSA_SHA256"),
    ],
)
def test_generate_write_load_round_trip(
    tmp_path: Path, kind: str, key_type: type, algorithm: str
) -> None:
    """A generated pair written to disk loads back as the same signing key."""
    private_key, certificate = keystore.generate_key(kind, "CH Post EAD", 30, now=T0)
    assert isinstance(private_key, key_type)
    keystore.write_key_pair(tmp_path, private_key, certificate, PASSPHRASE)
    loaded = keystore.load_signing_key(tmp_path / "key.pem", tmp_path / "cert.pem", PASSPHRASE)
    assert loaded.algorithm.name == algorithm
    assert loaded.certificate == certificate
    assert loaded.fingerprint == signing.fingerprint(certificate)
    document = (MESSAGES / "customs-response.xml").read_bytes()
    result = signing.verify(
        signing.sign(document, loaded), signing.VerifyPolicy((certificate,)), at=T0
    )
    assert result.fingerprint == loaded.fingerprint


def test_generated_certificate_has_the_documented_profile() -> None:
    """Self-signed, CN as given, random serial, now (less the clock skew) to now + days,
    CA=false, digitalSignature only, with a subject key identifier."""
    _, certificate = keystore.generate_key("rsa", "EAD signer", 10, now=T0)
    _, other = keystore.generate_key("rsa", "EAD signer", 10, now=T0)
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "EAD signer"
    assert certificate.issuer == certificate.subject
    assert certificate.serial_number != other.serial_number
    assert certificate.not_valid_before_utc == T0 - keystore.CLOCK_SKEW
    assert certificate.not_valid_after_utc == T0 + timedelta(days=10)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is False
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)


def test_rsa_3072_can_be_generated() -> None:
    """rsa_bits=3072 gives a 3072-bit key."""
    private_key, _ = keystore.generate_key("rsa", "big", 1, rsa_bits=3072)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size == 3072


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kind": "dsa"}, UnknownCode),
        ({"cn": ""}, ConfigurationError),
        ({"days": 0}, ConfigurationError),
        ({"rsa_bits": 1024}, ConfigurationError),
    ],
)
def test_generate_refuses_bad_parameters(kwargs: dict[str, object], error: type) -> None:
    """Unknown kinds, empty names, no validity and weak RSA sizes are refused."""
    arguments: dict[str, object] = {"kind": "rsa", "cn": "x", "days": 1}
    arguments.update(kwargs)
    with pytest.raises(error):
        keystore.generate_key(**arguments)  # type: ignore[arg-type]


def test_key_file_is_private_and_encrypted(tmp_path: Path) -> None:
    """key.pem is mode 0600 and PKCS#8-encrypted: it does not load without the passphrase."""
    private_key, certificate = keystore.generate_key("ec", "x", 1)
    keystore.write_key_pair(tmp_path / "pair", private_key, certificate, PASSPHRASE)
    key_path = tmp_path / "pair" / "key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pair").stat().st_mode) == 0o700
    text = key_path.read_bytes()
    assert text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(text, password=None)


def test_write_never_overwrites_a_key(tmp_path: Path) -> None:
    """A second write into the same directory is refused and leaves the first key intact."""
    private_key, certificate = keystore.generate_key("ec", "x", 1)
    keystore.write_key_pair(tmp_path, private_key, certificate, PASSPHRASE)
    before = (tmp_path / "key.pem").read_bytes()
    other_key, other_certificate = keystore.generate_key("ec", "y", 1)
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        keystore.write_key_pair(tmp_path, other_key, other_certificate, PASSPHRASE)
    assert (tmp_path / "key.pem").read_bytes() == before


def test_write_needs_a_passphrase(tmp_path: Path) -> None:
    """An empty passphrase would store the key in effect unprotected; it is refused."""
    private_key, certificate = keystore.generate_key("ec", "x", 1)
    with pytest.raises(ConfigurationError, match="passphrase"):
        keystore.write_key_pair(tmp_path, private_key, certificate, b"")


def test_wrong_passphrase_names_the_file_never_the_passphrase(tmp_path: Path) -> None:
    """A wrong passphrase is SigningKeyUnavailable naming key.pem, without either passphrase."""
    private_key, certificate = keystore.generate_key("ec", "x", 1)
    keystore.write_key_pair(tmp_path, private_key, certificate, PASSPHRASE)
    wrong = b"Tr0ub4dor&3-wrong"
    with pytest.raises(SigningKeyUnavailable) as caught:
        keystore.load_signing_key(tmp_path / "key.pem", tmp_path / "cert.pem", wrong)
    error = caught.value
    assert str(tmp_path / "key.pem") in error.message
    for secret in (wrong, PASSPHRASE):
        assert secret.decode() not in error.message
        assert secret.decode() not in str(error.as_dict())
        assert secret.decode() not in repr(error.__cause__)
    assert error.code == "signing_key_unavailable"


@pytest.mark.parametrize("missing", ["key.pem", "cert.pem"])
def test_missing_file_names_the_file(tmp_path: Path, missing: str) -> None:
    """A missing key or certificate file is SigningKeyUnavailable naming that file."""
    private_key, certificate = keystore.generate_key("ec", "x", 1)
    keystore.write_key_pair(tmp_path, private_key, certificate, PASSPHRASE)
    (tmp_path / missing).unlink()
    with pytest.raises(SigningKeyUnavailable, match=missing):
        keystore.load_signing_key(tmp_path / "key.pem", tmp_path / "cert.pem", PASSPHRASE)


def test_unencrypted_key_is_refused(tmp_path: Path) -> None:
    """A key file stored without encryption is not accepted as a signing key."""
    private_key, certificate = keystore.generate_key("ec", "x", 1)
    (tmp_path / "key.pem").write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(SigningKeyUnavailable, match="not stored encrypted"):
        keystore.load_signing_key(tmp_path / "key.pem", tmp_path / "cert.pem", PASSPHRASE)


def test_days_to_expiry_counts_whole_days() -> None:
    """Whole days left, negative once expired."""
    _, certificate = keystore.generate_key("ec", "x", 30, now=T0)
    assert keystore.days_to_expiry(certificate, T0) == 30
    assert keystore.days_to_expiry(certificate, T0 + timedelta(days=23, hours=1)) == 6
    assert keystore.days_to_expiry(certificate, T0 + timedelta(days=31)) == -1


# --- the key ring ---------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ring(tmp_path: Path, clock: FakeClock) -> KeyRing:
    """A new ring with one active EC key valid for 30 days."""
    return KeyRing.create(tmp_path / "keys", PASSPHRASE, "ec", "EAD connector", 30, clock=clock)


def test_rotate_switches_active_and_keeps_the_old_one_published(
    ring: KeyRing, clock: FakeClock
) -> None:
    """After a rotation the new key signs and both certificates are published."""
    old = ring.active
    old_id = ring.active_id
    clock.now += timedelta(days=1)
    new_id = ring.rotate(days=60)
    assert new_id != old_id
    assert ring.active_id == new_id
    assert ring.active.fingerprint != old.fingerprint
    assert ring.active.kind is signing.KeyKind.EC
    assert ring.published == (ring.active.certificate, old.certificate)
    assert (ring.directory / "active").read_text() == f"{new_id}\n"
    states = {entry.key_id: entry.state for entry in ring.entries()}
    assert states == {old_id: KeyState.PUBLISHED, new_id: KeyState.ACTIVE}


def test_refresh_follows_a_rotation_made_by_another_process(
    ring: KeyRing, clock: FakeClock
) -> None:
    """A running service's ring picks up ``keys rotate`` from the CLI without a restart."""
    service = KeyRing.load(ring.directory, PASSPHRASE, clock=clock)
    assert service.refresh() is False  # nothing changed
    old = service.active
    clock.now += timedelta(days=1)
    new_id = ring.rotate(days=60)  # "the CLI", another KeyRing on the same directory
    assert service.active_id != new_id
    assert service.refresh() is True
    assert service.active_id == new_id
    assert service.active.fingerprint == ring.active.fingerprint
    assert service.published == (service.active.certificate, old.certificate)


def test_refresh_keeps_the_active_key_when_the_ring_is_broken(
    ring: KeyRing, clock: FakeClock
) -> None:
    """A rotation half done (or a bad edit) raises, and the key that signed keeps signing."""
    active = ring.active
    (ring.directory / "active").write_text("no-such-pair\n")
    with pytest.raises(SigningKeyUnavailable, match="no-such-pair"):
        ring.refresh()
    assert ring.active is active


def test_documents_signed_with_the_old_key_still_verify(ring: KeyRing, clock: FakeClock) -> None:
    """Messages signed just before a rotation verify against the published certificates."""
    document = (MESSAGES / "customs-response.xml").read_bytes()
    before = signing.sign(document, ring.active)
    clock.now += timedelta(days=1)
    ring.rotate("rsa", "EAD connector 2027", 365)
    after = signing.sign(document, ring.active)
    trust = signing.VerifyPolicy(ring.published)
    assert signing.verify(before, trust, at=clock.now).algorithm.name == "ECDSA_SHA256"
    assert signing.verify(after, trust, at=clock.now).algorithm.name == "RSA_SHA256"


def test_expired_certificates_leave_the_published_set(ring: KeyRing, clock: FakeClock) -> None:
    """Once the old certificate expires it is no longer published, only listed as expired."""
    old_id = ring.active_id
    ring.rotate(days=365)
    clock.now += timedelta(days=31)
    assert ring.published == (ring.active.certificate,)
    states = {entry.key_id: entry.state for entry in ring.entries()}
    assert states[old_id] is KeyState.EXPIRED


def test_a_key_added_ahead_is_published_before_it_signs(ring: KeyRing, clock: FakeClock) -> None:
    """add() stores a new pair that counterparties can trust before activate() switches."""
    active_id = ring.active_id
    clock.now += timedelta(seconds=5)
    upcoming = ring.add(days=90)
    assert ring.active_id == active_id
    assert len(ring.published) == 2
    key = ring.activate(upcoming)
    assert ring.active_id == upcoming
    assert ring.active is key


def test_load_reads_the_ring_back(ring: KeyRing, clock: FakeClock) -> None:
    """A ring loaded from disk has the same active key and published certificates."""
    clock.now += timedelta(days=1)
    ring.rotate()
    again = KeyRing.load(ring.directory, PASSPHRASE, clock=clock)
    assert again.active_id == ring.active_id
    assert again.active.fingerprint == ring.active.fingerprint
    assert again.published == ring.published
    assert again.entries() == ring.entries()


def test_load_with_wrong_passphrase_fails_clearly(ring: KeyRing) -> None:
    """The active key cannot be decrypted: SigningKeyUnavailable naming its key.pem."""
    with pytest.raises(SigningKeyUnavailable, match=f"{ring.active_id}/key.pem"):
        KeyRing.load(ring.directory, b"wrong")


def test_load_without_active_file_fails_clearly(tmp_path: Path) -> None:
    """A directory that is not a ring says which file is missing."""
    with pytest.raises(SigningKeyUnavailable, match="active"):
        KeyRing.load(tmp_path, PASSPHRASE)


def test_active_file_cannot_point_outside_the_ring(ring: KeyRing) -> None:
    """A tampered ``active`` naming a path is refused, not followed."""
    (ring.directory / "active").write_text("../../etc\n")
    with pytest.raises(SigningKeyUnavailable, match="not a key pair"):
        KeyRing.load(ring.directory, PASSPHRASE)


def test_rotation_leaves_no_temporary_files(ring: KeyRing) -> None:
    """The staging directory and the temporary ``active`` file are gone after a rotation."""
    ring.rotate()
    assert not [p for p in ring.directory.iterdir() if p.name.startswith(".")]


def test_an_expired_key_cannot_be_activated(ring: KeyRing, clock: FakeClock) -> None:
    """Switching to a key whose certificate has expired is refused; the active key stays."""
    short = ring.add(days=1)
    clock.now += timedelta(days=2)
    active = ring.active_id
    with pytest.raises(SigningKeyUnavailable, match="expired"):
        ring.activate(short)
    assert ring.active_id == active
    assert (ring.directory / "active").read_text().strip() == active


def test_create_refuses_an_existing_ring(ring: KeyRing) -> None:
    """create() never overwrites a ring; rotate it instead."""
    with pytest.raises(ConfigurationError, match="already holds a key ring"):
        KeyRing.create(ring.directory, PASSPHRASE, "ec", "x", 1)


def test_ring_repr_shows_no_passphrase(ring: KeyRing) -> None:
    """The ring's repr names the directory and active key id only."""
    assert PASSPHRASE.decode() not in repr(ring)
    assert ring.active_id in repr(ring)


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run a command in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv(keys_cli.PASSPHRASE_VARIABLE, PASSPHRASE.decode())

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser()
        commands = parser.add_subparsers(dest="command", required=True)
        keys_cli.register(commands)
        args = parser.parse_args(list(argv))
        code: int = args.handler(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def unsigned(tmp_path: Path) -> Path:
    path = tmp_path / "response.xml"
    path.write_bytes((MESSAGES / "customs-response.xml").read_bytes())
    return path


def test_cli_generate_sign_verify(
    tmp_path: Path, unsigned: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    """generate, then sign with --key/--cert, then verify: exit codes 0, 0, 0."""
    code, out, _ = run(
        "keys", "generate", "--kind", "rsa", "--cn", "EAD", "--out", str(tmp_path / "k")
    )
    assert code == 0
    assert "sha256:" in out
    assert PASSPHRASE.decode() not in out
    key, cert = tmp_path / "k" / "key.pem", tmp_path / "k" / "cert.pem"
    signed = tmp_path / "signed.xml"
    code, _, err = run(
        "sign", str(unsigned), "-o", str(signed), "--key", str(key), "--cert", str(cert)
    )
    assert code == 0, err
    code, out, _ = run("verify", str(signed), "--cert", str(cert))
    assert code == 0
    assert "valid" in out
    assert "RSA_SHA256" in out


def test_cli_verify_invalid_exits_1_with_reason_and_code(
    tmp_path: Path, unsigned: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    """A tampered document and a wrong certificate exit 1 with a one-line reason and code."""
    run("keys", "generate", "--kind", "ec", "--cn", "A", "--out", str(tmp_path / "a"))
    run("keys", "generate", "--kind", "ec", "--cn", "B", "--out", str(tmp_path / "b"))
    signed = tmp_path / "signed.xml"
    run(
        "sign",
        str(unsigned),
        "-o",
        str(signed),
        "--key",
        str(tmp_path / "a" / "key.pem"),
        "--cert",
        str(tmp_path / "a" / "cert.pem"),
    )
    code, out, _ = run("verify", str(signed), "--cert", str(tmp_path / "b" / "cert.pem"))
    assert code == 1
    assert out.count("\n") == 1
    assert "(certificate_untrusted)" in out
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.read_bytes().replace(b"RELEASE", b"HOLD", 1))
    code, out, _ = run("verify", str(tampered), "--cert", str(tmp_path / "a" / "cert.pem"))
    assert code == 1
    assert "(signature_invalid)" in out
    assert "digest" in out
    code, out, _ = run("verify", str(unsigned), "--cert", str(tmp_path / "a" / "cert.pem"))
    assert code == 1
    assert "no ds:Signature" in out


def test_cli_verify_accepts_several_pinned_certificates(
    tmp_path: Path, unsigned: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    """--cert may be repeated for a rotation overlap."""
    for name in ("old", "new"):
        run("keys", "generate", "--kind", "ec", "--cn", name, "--out", str(tmp_path / name))
    signed = tmp_path / "signed.xml"
    run(
        "sign",
        str(unsigned),
        "-o",
        str(signed),
        "--key",
        str(tmp_path / "old" / "key.pem"),
        "--cert",
        str(tmp_path / "old" / "cert.pem"),
    )
    code, _, _ = run(
        "verify",
        str(signed),
        "--cert",
        str(tmp_path / "new" / "cert.pem"),
        "--cert",
        str(tmp_path / "old" / "cert.pem"),
    )
    assert code == 0


@pytest.mark.parametrize("problem", ["missing_file", "doctype", "missing_cert", "bad_cert"])
def test_cli_verify_unusable_input_exits_2(
    tmp_path: Path, run: Callable[..., tuple[int, str, str]], problem: str
) -> None:
    """Unreadable files, unsafe XML and unusable certificates exit 2."""
    run("keys", "generate", "--kind", "ec", "--cn", "A", "--out", str(tmp_path / "a"))
    cert = tmp_path / "a" / "cert.pem"
    document = tmp_path / "doc.xml"
    document.write_bytes(b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>')
    if problem == "missing_file":
        document = tmp_path / "nope.xml"
    elif problem == "missing_cert":
        cert = tmp_path / "nope.pem"
    elif problem == "bad_cert":
        cert.write_text("not a certificate")
    code, _, err = run("verify", str(document), "--cert", str(cert))
    assert code == 2
    assert err.startswith(("error (", f"{document}: unusable ("))


def test_cli_keys_rotate_and_list(tmp_path: Path, run: Callable[..., tuple[int, str, str]]) -> None:
    """rotate creates a ring, rotates it, and list shows one active and one published key."""
    ring = tmp_path / "ring"
    code, _, err = run("keys", "rotate", "--dir", str(ring))
    assert code == 2
    assert "--kind and --cn" in err
    code, out, _ = run("keys", "rotate", "--dir", str(ring), "--kind", "ec", "--cn", "EAD")
    assert code == 0
    first = (ring / "active").read_text().strip()
    assert first in out
    code, out, _ = run("keys", "rotate", "--dir", str(ring), "--kind", "rsa", "--days", "90")
    assert code == 0
    assert f"{first} stays published" in out
    second = (ring / "active").read_text().strip()
    assert second != first
    code, out, _ = run("keys", "list", "--dir", str(ring))
    assert code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:]}
    assert rows == {first: ["published", "ECDSA_SHA256"], second: ["active", "RSA_SHA256"]}
    code, out, _ = run("keys", "rotate", "--dir", str(ring), "--to", first)
    assert code == 0
    assert (ring / "active").read_text().strip() == first


def test_cli_generate_into_a_ring_publishes_before_rotate_to(
    tmp_path: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    """The documented procedure: generate into the ring (published), then rotate --to it."""
    ring = tmp_path / "ring"
    run("keys", "rotate", "--dir", str(ring), "--kind", "ec", "--cn", "EAD")
    old = (ring / "active").read_text().strip()
    code, _, _ = run(
        "keys", "generate", "--kind", "rsa", "--cn", "EAD 2027", "--out", str(ring / "next-2027")
    )
    assert code == 0
    _, out, _ = run("keys", "list", "--dir", str(ring))
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert states == {old: "active", "next-2027": "published"}
    code, out, _ = run("keys", "rotate", "--dir", str(ring), "--to", "next-2027")
    assert code == 0
    assert f"{old} stays published" in out
    assert (ring / "active").read_text() == "next-2027\n"


def test_cli_sign_with_keys_dir(
    tmp_path: Path, unsigned: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    """sign --keys-dir signs with the ring's active key."""
    ring = tmp_path / "ring"
    run("keys", "rotate", "--dir", str(ring), "--kind", "ec", "--cn", "EAD")
    signed = tmp_path / "signed.xml"
    code, _, err = run("sign", str(unsigned), "-o", str(signed), "--keys-dir", str(ring))
    assert code == 0, err
    active = (ring / "active").read_text().strip()
    code, _, _ = run("verify", str(signed), "--cert", str(ring / active / "cert.pem"))
    assert code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "generate", "--kind", "ec", "--cn", "x", "--out", "{tmp}/k"],
        ["keys", "rotate", "--dir", "{tmp}/ring", "--kind", "ec", "--cn", "x"],
        [
            "sign",
            "{tmp}/doc.xml",
            "-o",
            "{tmp}/out.xml",
            "--key",
            "{tmp}/k.pem",
            "--cert",
            "{tmp}/c",
        ],
    ],
    ids=["generate", "rotate", "sign"],
)
def test_cli_missing_passphrase_is_a_clear_error(
    tmp_path: Path,
    run: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """Without CONNECTOR_KEY_PASSPHRASE the commands exit 2 naming the variable, writing nothing."""
    monkeypatch.delenv(keys_cli.PASSPHRASE_VARIABLE)
    code, out, err = run(*(arg.format(tmp=tmp_path) for arg in argv))
    assert code == 2
    assert "CONNECTOR_KEY_PASSPHRASE is not set" in err
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_cli_sign_with_wrong_passphrase_exits_2_without_echoing_it(
    tmp_path: Path,
    unsigned: Path,
    run: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong passphrase names the key file and never prints the passphrase."""
    run("keys", "generate", "--kind", "ec", "--cn", "A", "--out", str(tmp_path / "a"))
    monkeypatch.setenv(keys_cli.PASSPHRASE_VARIABLE, "not-the-passphrase")
    code, out, err = run(
        "sign",
        str(unsigned),
        "-o",
        str(tmp_path / "s.xml"),
        "--key",
        str(tmp_path / "a" / "key.pem"),
        "--cert",
        str(tmp_path / "a" / "cert.pem"),
    )
    assert code == 2
    assert "(signing_key_unavailable)" in err
    assert "key.pem" in err
    assert "not-the-passphrase" not in out + err
    assert not (tmp_path / "s.xml").exists()
