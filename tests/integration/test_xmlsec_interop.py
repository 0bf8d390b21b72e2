"""Interoperability with xmlsec1 (libxmlsec1), the reference XML-DSig implementation.

Our signed output must verify with ``xmlsec1 --verify``, and documents that ``xmlsec1 --sign``
makes from the templates in ``tests/data/signing/`` must verify with our ``verify()``.
Keys and certificates are generated here; none is committed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from connector.adapters import keystore
from connector.core import signing
from connector.errors import CertificateUntrusted, SignatureInvalid
from connector.sample import generate_batch

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 is not installed")

DATA = Path(__file__).resolve().parents[1] / "data"
TEMPLATES = DATA / "signing"
MESSAGES = DATA / "messages"


@dataclass(frozen=True)
class KeyFiles:
    """A signing key and the same pair as files for xmlsec1 (key unencrypted, test only)."""

    key: signing.SigningKey
    key_pem: Path
    cert_pem: Path


@pytest.fixture(scope="module", params=["rsa", "ec"])
def key_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    kind = request.param
    private_key, certificate = keystore.generate_key(kind, f"interop {kind}", 2)
    directory = tmp_path_factory.mktemp(f"xmlsec-{kind}")
    key_pem, cert_pem = directory / "key.pem", directory / "cert.pem"
    key_pem.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return KeyFiles(signing.SigningKey(private_key, certificate), key_pem, cert_pem)


@pytest.fixture(scope="module")
def other_cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, certificate = keystore.generate_key("rsa", "someone else", 2)
    path = tmp_path_factory.mktemp("xmlsec-other") / "cert.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def xmlsec1(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert XMLSEC1 is not None
    return subprocess.run(
        [XMLSEC1, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def xmlsec_verify(document: Path, trusted: Path) -> subprocess.CompletedProcess[str]:
    """The documented hand check: only URI="" references, the pinned cert as trust anchor."""
    return xmlsec1(
        "--verify", "--enabled-reference-uris", "empty", "--trusted-pem", trusted, document
    )


def _documents() -> dict[str, bytes]:
    return {
        "customs_response": (MESSAGES / "customs-response.xml").read_bytes(),
        "item_batch_1": generate_batch(1, seed=7).xml,
        "item_batch_100": generate_batch(100, seed=7).xml,
        "item_batch_1000": generate_batch(1000, seed=7).xml,
    }


DOCUMENTS = _documents()


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_xmlsec1_verifies_our_signatures(key_files: KeyFiles, tmp_path: Path, name: str) -> None:
    """Our RSA and ECDSA signatures verify with xmlsec1, from 1 to 1,000 items."""
    signed = tmp_path / "signed.xml"
    signed.write_bytes(signing.sign(DOCUMENTS[name], key_files.key))
    result = xmlsec_verify(signed, key_files.cert_pem)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 1/1" in result.stderr + result.stdout


def test_xmlsec1_rejects_our_tampered_output(key_files: KeyFiles, tmp_path: Path) -> None:
    """xmlsec1 refuses a signed document whose content changed after signing."""
    signed = signing.sign(DOCUMENTS["customs_response"], key_files.key)
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.replace(b"RELEASE", b"HOLD", 1))
    assert xmlsec_verify(tampered, key_files.cert_pem).returncode != 0


def test_xmlsec1_rejects_our_output_with_another_trust_anchor(
    key_files: KeyFiles, other_cert: Path, tmp_path: Path
) -> None:
    """xmlsec1 does not trust our signature when given someone else's certificate."""
    signed = tmp_path / "signed.xml"
    signed.write_bytes(signing.sign(DOCUMENTS["customs_response"], key_files.key))
    assert xmlsec_verify(signed, other_cert).returncode != 0


def _xmlsec_signed(key_files: KeyFiles, tmp_path: Path) -> bytes:
    algorithm = "rsa-sha256" if key_files.key.kind is signing.KeyKind.RSA else "ecdsa-sha256"
    template = TEMPLATES / f"customs-response.{algorithm}.template.xml"
    output = tmp_path / "xmlsec-signed.xml"
    result = xmlsec1(
        "--sign",
        "--privkey-pem",
        f"{key_files.key_pem},{key_files.cert_pem}",
        "--output",
        output,
        template,
    )
    assert result.returncode == 0, result.stderr
    return output.read_bytes()


def test_we_verify_xmlsec1_signatures(key_files: KeyFiles, tmp_path: Path) -> None:
    """A document xmlsec1 signed from our template verifies with verify() and the pin."""
    data = _xmlsec_signed(key_files, tmp_path)
    result = signing.verify(data, signing.VerifyPolicy((key_files.key.certificate,)))
    assert result.fingerprint == key_files.key.fingerprint
    assert result.algorithm is key_files.key.algorithm
    original = etree.fromstring((MESSAGES / "customs-response.xml").read_bytes())
    decisions = result.signed_xml.findall(".//{*}Decision")
    assert len(decisions) == len(original.findall(".//{*}Decision"))
    assert result.signed_xml.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature") is None


def test_we_reject_tampered_or_unpinned_xmlsec1_signatures(
    key_files: KeyFiles, tmp_path: Path
) -> None:
    """xmlsec1-signed documents fail verify() when changed or when the signer is not pinned."""
    data = _xmlsec_signed(key_files, tmp_path)
    pinned = signing.VerifyPolicy((key_files.key.certificate,))
    with pytest.raises(SignatureInvalid) as caught:
        signing.verify(data.replace(b"RELEASE", b"HOLD", 1), pinned)
    assert caught.value.context["check"] == "digest"
    _, stranger = keystore.generate_key("ec", "stranger", 1)
    with pytest.raises(CertificateUntrusted):
        signing.verify(data, signing.VerifyPolicy((stranger,)))
