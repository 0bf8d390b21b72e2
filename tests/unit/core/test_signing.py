"""Tests for enveloped XML-DSig signing and pinned verification (connector.core.signing)."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from connector.core import signing
from connector.core.signing import SigningKey, VerifyPolicy, sign, verify
from connector.errors import (
    CertificateUntrusted,
    ConfigurationError,
    InvalidMessage,
    SignatureInvalid,
    SigningKeyUnavailable,
    UnknownCode,
    XmlDoctypeForbidden,
)

MESSAGES = Path(__file__).resolve().parents[2] / "data" / "messages"
DS = signing.DS_NS
NS = {"ds": DS, "r": "urn:ead-connector:customs-response:1"}
EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
NOW = datetime.now(UTC)


def _certificate(
    key: signing.PrivateKey, cn: str, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def make_key(
    kind: str,
    cn: str = "test signer",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> SigningKey:
    """A fresh key of ``kind`` (rsa2048, rsa3072, ec) with a self-signed certificate."""
    key: signing.PrivateKey
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    certificate = _certificate(
        key,
        cn,
        not_before or NOW - timedelta(days=1),
        not_after or NOW + timedelta(days=30),
    )
    return SigningKey(key, certificate)


@dataclass(frozen=True)
class Keys:
    rsa2048: SigningKey
    rsa3072: SigningKey
    ec: SigningKey
    other: SigningKey

    def __getitem__(self, kind: str) -> SigningKey:
        key: SigningKey = getattr(self, kind)
        return key


@pytest.fixture(scope="session")
def keys() -> Keys:
    """One key of each supported kind, plus an unrelated one, generated once per session."""
    return Keys(make_key("rsa2048"), make_key("rsa3072"), make_key("ec"), make_key("rsa2048"))


@pytest.fixture(scope="session")
def document() -> bytes:
    """A realistic unsigned Customs response."""
    return (MESSAGES / "customs-response.xml").read_bytes()


@pytest.fixture(scope="session")
def signed(keys: Keys, document: bytes) -> bytes:
    """The Customs response signed with the RSA-2048 key."""
    return sign(document, keys.rsa2048)


def policy(*keys: SigningKey) -> VerifyPolicy:
    return VerifyPolicy(tuple(k.certificate for k in keys))


def edit(data: bytes, change: Callable[[etree._Element], object]) -> bytes:
    """Parse ``data`` plainly, apply ``change`` to the root and serialize it again."""
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def signature_of(root: etree._Element) -> etree._Element:
    found = root.find(".//ds:Signature", NS)
    assert found is not None
    return found


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def expect_invalid(
    data: bytes, verify_policy: VerifyPolicy, check: str, error: type[SignatureInvalid]
) -> SignatureInvalid:
    with pytest.raises(error) as caught:
        verify(data, verify_policy)
    assert caught.value.context["check"] == check, caught.value.message
    return caught.value


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("rsa2048", SignatureMethod.RSA_SHA256),
        ("rsa3072", SignatureMethod.RSA_SHA256),
        ("ec", SignatureMethod.ECDSA_SHA256),
    ],
)
def test_sign_then_verify_round_trip(
    keys: Keys, document: bytes, kind: str, algorithm: SignatureMethod
) -> None:
    """A document signed with each supported key verifies and yields exactly its content."""
    key = keys[kind]
    result = verify(sign(document, key), policy(key))
    assert result.algorithm is algorithm
    assert result.fingerprint == key.fingerprint
    assert result.certificate == key.certificate
    assert c14n(result.signed_xml) == c14n(etree.fromstring(document))


def test_signature_has_the_documented_shape(keys: Keys, signed: bytes) -> None:
    """One enveloped Signature as the last child: URI="", exc-C14N, SHA-256, certificate."""
    root = etree.fromstring(signed)
    signature = root[-1]
    assert signature.tag == f"{{{DS}}}Signature"
    assert len(root.findall(".//ds:Signature", NS)) == 1
    references = signature.findall("ds:SignedInfo/ds:Reference", NS)
    assert [r.get("URI") for r in references] == [""]
    transforms = [t.get("Algorithm") for t in references[0].iterfind(".//ds:Transform", NS)]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        EXC_C14N.value,
    ]
    algorithms = {
        e.get("Algorithm")
        for e in signature.iterfind(".//*[@Algorithm]")
        if e.tag != f"{{{DS}}}Transform"
    }
    assert algorithms == {
        EXC_C14N.value,
        SignatureMethod.RSA_SHA256.value,
        DigestAlgorithm.SHA256.value,
    }
    assert signature.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS) is not None
    assert signed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_sign_accepts_an_element_and_leaves_it_unchanged(keys: Keys, document: bytes) -> None:
    """Signing an element gives a verifiable document and does not modify the element."""
    root = etree.fromstring(document)
    before = etree.tostring(root)
    result = verify(sign(root, keys.ec), policy(keys.ec))
    assert etree.tostring(root) == before
    assert c14n(result.signed_xml) == c14n(root)


def _signxml_reference(root: etree._Element, key: SigningKey) -> bytes:
    """What signxml's own enveloped signer makes of ``root`` (a copy; root is kept)."""
    from signxml import SignatureConstructionMethod

    from connector.core.signing import _SIGN_C14N, _SIGN_DIGEST

    signed = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.algorithm,
        digest_algorithm=_SIGN_DIGEST,
        c14n_algorithm=_SIGN_C14N,
    ).sign(copy.deepcopy(root), key=key.private_key, cert=[key.certificate])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("kind", ["rsa2048", "rsa3072"])
@pytest.mark.parametrize(
    "message", ["customs-response.xml", "declaration-batch.xml", "item-notice.xml"]
)
def test_signing_gives_the_bytes_of_signxml_own_path(keys: Keys, kind: str, message: str) -> None:
    """Signing from the per-key template gives signxml's bytes (RSA PKCS#1 v1.5 is
    deterministic, so the signature values can be compared too)."""
    data = (MESSAGES / message).read_bytes()
    key = keys[kind]
    expected = _signxml_reference(etree.fromstring(data), key)
    assert sign(data, key) == expected
    assert sign(data, key) == expected  # the template is copied, not moved


def _without_signature_value(data: bytes) -> bytes:
    root = etree.fromstring(data)
    value = signature_of(root).find("ds:SignatureValue", NS)
    assert value is not None
    assert value.text
    value.text = ""
    return etree.tostring(root)


_NAMES = st.sampled_from(["Notice", "Item", "a", "Zz"])
_NAMESPACES = st.sampled_from(
    [None, "urn:ead-connector:item-notice:1", "urn:ead-connector:test:1", DS]
)
_TEXTS = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
    )
    | st.sampled_from("\t\n&<>\"'"),
    max_size=40,
)


@st.composite
def _documents(draw: st.DrawFn) -> etree._Element:
    """Small documents: default or prefixed namespaces, attributes, text, tails, nesting."""
    namespace = draw(_NAMESPACES)
    prefix = draw(st.sampled_from([None, "n", "ds"])) if namespace is not None else None
    if prefix == "ds" and namespace != DS:
        prefix = "n"
    nsmap = {prefix: namespace} if namespace is not None else None

    def tag(name: str) -> str:
        return f"{{{namespace}}}{name}" if namespace is not None else name

    root = etree.Element(tag(draw(_NAMES)), nsmap=nsmap)  # type: ignore[arg-type]
    if draw(st.booleans()):
        root.set("version", draw(_TEXTS))
    parents = [root]
    for _ in range(draw(st.integers(0, 8))):
        parent = draw(st.sampled_from(parents))
        child = etree.SubElement(parent, tag(draw(_NAMES)))
        child.text = draw(st.none() | _TEXTS)
        if draw(st.booleans()):
            child.tail = draw(_TEXTS)
        parents.append(child)
    # As parsed: an empty text is no text (signxml's own path re-parses, which writes an
    # element whose text is "" as <a/>; signing in place keeps <a></a>, the same in C14N).
    return etree.fromstring(etree.tostring(root))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(root=_documents())
def test_signatures_are_signxml_signatures_for_any_small_document(
    keys: Keys, root: etree._Element
) -> None:
    """The signature filled into the per-key template is signxml's own: RSA (deterministic)
    byte for byte, ECDSA (randomized) apart from the signature value, which verifies."""
    before = etree.tostring(root)
    assert sign(root, keys.rsa2048) == _signxml_reference(root, keys.rsa2048)
    signed_ec = sign(root, keys.ec)
    assert _without_signature_value(signed_ec) == _without_signature_value(
        _signxml_reference(root, keys.ec)
    )
    assert c14n(verify(signed_ec, policy(keys.ec)).signed_xml) == c14n(root)
    assert etree.tostring(root) == before


def test_each_key_signs_with_its_own_template(keys: Keys, document: bytes) -> None:
    """Keys used in turn (a rotation) each put their own certificate and algorithm in."""
    for key in (keys.ec, keys.rsa2048, keys.ec, keys.rsa3072, keys.rsa2048):
        result = verify(sign(document, key), policy(key))
        assert result.fingerprint == key.fingerprint
        assert result.algorithm is key.algorithm
        with pytest.raises(SignatureInvalid):
            verify(sign(document, key), policy(keys.other))


def test_threads_sign_concurrently(keys: Keys) -> None:
    """Templates are per thread (lxml trees stay in their thread): signing from a pool of
    threads at once gives documents that all verify and each carry their own content."""
    from concurrent.futures import ThreadPoolExecutor

    def signed(number: int) -> tuple[int, bytes]:
        root = etree.Element("{urn:ead-connector:test:1}Note")
        root.text = str(number)
        key = keys.ec if number % 2 else keys.rsa2048
        return number, sign(root, key)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(signed, range(120)))
    for number, data in results:
        key = keys.ec if number % 2 else keys.rsa2048
        assert verify(data, policy(key)).signed_xml.text == str(number)


def test_the_key_object_is_used_directly(
    keys: Keys, document: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sign() never re-parses PEM: loading a PEM key during signing would fail the test."""

    def no_pem(*args: object, **kwargs: object) -> None:
        raise AssertionError("PEM re-parsed during sign()")

    monkeypatch.setattr("signxml.signer.load_pem_private_key", no_pem)
    verify(sign(document, keys.rsa2048), policy(keys.rsa2048))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
        )
        | st.sampled_from("\t\n"),
        max_size=200,
    )
)
def test_any_text_content_round_trips(keys: Keys, text: str) -> None:
    """Whatever text an element holds, verify(sign(doc)) returns exactly that text."""
    root = etree.Element("{urn:ead-connector:test:1}Note")
    etree.SubElement(root, "{urn:ead-connector:test:1}Text").text = text
    result = verify(sign(root, keys.ec), policy(keys.ec))
    assert (result.signed_xml[0].text or "") == text


# --- pinning and rotation -------------------------------------------------------------------


def test_wrong_certificate_is_rejected(keys: Keys, signed: bytes) -> None:
    """A signature by a key whose certificate is not pinned fails as certificate_untrusted."""
    error = expect_invalid(
        signed, policy(keys.other), "certificate_not_pinned", CertificateUntrusted
    )
    assert isinstance(error, SignatureInvalid)
    assert error.code == "certificate_untrusted"
    assert error.__cause__ is not None


def test_wrong_certificate_without_key_info_is_rejected(keys: Keys, signed: bytes) -> None:
    """Without ds:KeyInfo the pinned certificate alone decides, and the wrong one fails."""
    bare = edit(signed, lambda r: signature_of(r).remove(signature_of(r)[-1]))
    assert b"X509Certificate" not in bare
    assert verify(bare, policy(keys.rsa2048)).fingerprint == keys.rsa2048.fingerprint
    expect_invalid(bare, policy(keys.other, keys.ec), "signature_value", SignatureInvalid)


def test_key_info_certificate_never_replaces_the_pinned_one(keys: Keys, signed: bytes) -> None:
    """Swapping the KeyInfo certificate for a pinned one does not make a signature valid."""
    pinned = keys.other.certificate

    def swap(root: etree._Element) -> None:
        element = signature_of(root).find(".//ds:X509Certificate", NS)
        assert element is not None
        element.text = base64.b64encode(pinned.public_bytes(Encoding.DER)).decode()

    expect_invalid(edit(signed, swap), policy(keys.other), "signature_value", SignatureInvalid)


@pytest.mark.parametrize("order", ["old_first", "new_first"])
def test_two_pinned_certificates_accept_both_keys(keys: Keys, document: bytes, order: str) -> None:
    """During a rotation overlap documents from the old and the new key both verify."""
    old, new = keys.rsa2048, keys.ec
    overlap = policy(old, new) if order == "old_first" else policy(new, old)
    assert verify(sign(document, old), overlap).fingerprint == old.fingerprint
    assert verify(sign(document, new), overlap).fingerprint == new.fingerprint


def test_expired_pinned_certificate_is_untrusted_now_but_fine_at_signing_time(
    document: bytes,
) -> None:
    """An archived message verifies at its reception time even after the certificate expired."""
    expired = make_key(
        "ec", not_before=NOW - timedelta(days=60), not_after=NOW - timedelta(days=30)
    )
    data = sign(document, expired)
    expect_invalid(data, policy(expired), "certificate_validity", CertificateUntrusted)
    at = NOW - timedelta(days=45)
    assert verify(data, policy(expired), at=at).fingerprint == expired.fingerprint


def test_verification_time_must_be_timezone_aware(keys: Keys, signed: bytes) -> None:
    """A naive ``at`` is a programming error, not a verification result."""
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(signed, policy(keys.rsa2048), at=datetime(2026, 1, 1))


# --- tampering ------------------------------------------------------------------------------


def _change_text(root: etree._Element) -> None:
    code = root.find(".//r:Decision/r:Code", NS)
    assert code is not None
    code.text = "HOLD"


def _add_element_before_signature(root: etree._Element) -> None:
    signature_of(root).addprevious(etree.Element("{urn:ead-connector:customs-response:1}Note"))


def _change_signature_value(root: etree._Element) -> None:
    value = signature_of(root).find("ds:SignatureValue", NS)
    assert value is not None
    assert value.text is not None
    value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]


def _change_digest_method_to_sha1(root: etree._Element) -> None:
    method = signature_of(root).find(".//ds:DigestMethod", NS)
    assert method is not None
    method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")


def _change_signature_method_to_rsa_sha1(root: etree._Element) -> None:
    method = signature_of(root).find(".//ds:SignatureMethod", NS)
    assert method is not None
    method.set("Algorithm", SignatureMethod.RSA_SHA1.value)


def _change_c14n_to_with_comments(root: etree._Element) -> None:
    method = signature_of(root).find(".//ds:CanonicalizationMethod", NS)
    assert method is not None
    method.set(
        "Algorithm", CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS.value
    )


def _duplicate_reference(root: etree._Element) -> None:
    reference = signature_of(root).find(".//ds:Reference", NS)
    assert reference is not None
    reference.addnext(copy.deepcopy(reference))


def _point_reference_elsewhere(root: etree._Element) -> None:
    reference = signature_of(root).find(".//ds:Reference", NS)
    assert reference is not None
    reference.set("URI", "#decision-1")


def _drop_enveloped_transform(root: etree._Element) -> None:
    transform = signature_of(root).find(".//ds:Transform", NS)
    assert transform is not None
    transform.getparent().remove(transform)  # type: ignore[union-attr]


def _add_xpath_transform(root: etree._Element) -> None:
    transforms = signature_of(root).find(".//ds:Transforms", NS)
    assert transforms is not None
    etree.SubElement(
        transforms, f"{{{DS}}}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
    )


def _duplicate_signature(root: etree._Element) -> None:
    root.append(copy.deepcopy(signature_of(root)))


def _move_signature_into_child(root: etree._Element) -> None:
    signature = signature_of(root)
    root.remove(signature)
    root[0].append(signature)


def _add_sibling_after_signature(root: etree._Element) -> None:
    evil = etree.SubElement(root, "{urn:ead-connector:customs-response:1}Decisions")
    etree.SubElement(evil, "{urn:ead-connector:customs-response:1}Code").text = "RELEASE"


def _remove_signature(root: etree._Element) -> None:
    root.remove(signature_of(root))


def _add_unknown_element_to_signature(root: etree._Element) -> None:
    etree.SubElement(signature_of(root), f"{{{DS}}}Unexpected")


@pytest.mark.parametrize(
    ("tamper", "check"),
    [
        (_change_text, "digest"),
        (_add_element_before_signature, "digest"),
        (_change_signature_value, "signature_value"),
        (_change_digest_method_to_sha1, "algorithm_forbidden"),
        (_change_signature_method_to_rsa_sha1, "algorithm_forbidden"),
        (_change_c14n_to_with_comments, "algorithm_forbidden"),
        (_duplicate_reference, "reference_count"),
        (_point_reference_elsewhere, "reference_uri"),
        (_drop_enveloped_transform, "transform"),
        (_add_xpath_transform, "algorithm_forbidden"),
        (_duplicate_signature, "duplicate_signature"),
        (_move_signature_into_child, "signature_location"),
        (_add_sibling_after_signature, "signature_location"),
        (_remove_signature, "no_signature"),
        (_add_unknown_element_to_signature, "signature_malformed"),
    ],
    ids=lambda value: getattr(value, "__name__", value).lstrip("_"),
)
def test_tampering_is_rejected(
    keys: Keys, signed: bytes, tamper: Callable[[etree._Element], None], check: str
) -> None:
    """Each change to a signed document fails with SignatureInvalid naming the failed check."""
    expect_invalid(edit(signed, tamper), policy(keys.rsa2048), check, SignatureInvalid)


def test_wrapped_document_is_rejected(keys: Keys, signed: bytes) -> None:
    """Signed content moved under an attacker's root, beside attacker data, is rejected."""
    original = etree.fromstring(signed)
    wrapper = etree.Element("{urn:ead-connector:customs-response:1}CustomsResponse")
    etree.SubElement(wrapper, "{urn:ead-connector:customs-response:1}ResponseId").text = "EVIL"
    wrapper.append(original)
    data = etree.tostring(wrapper)
    expect_invalid(data, policy(keys.rsa2048), "signature_location", SignatureInvalid)
    # Even with the signature moved up beside the wrapped original, the digest covers the
    # attacker's root, so nothing verifies.
    signature = signature_of(wrapper)
    original.remove(signature)
    wrapper.append(signature)
    expect_invalid(etree.tostring(wrapper), policy(keys.rsa2048), "digest", SignatureInvalid)


def test_signed_xml_excludes_unsigned_content(keys: Keys, signed: bytes) -> None:
    """Comments and data inside ds:Signature are not signed, and signed_xml never shows them."""

    def add_unsigned(root: etree._Element) -> None:
        code = root.find(".//r:Code", NS)
        assert code is not None
        code.append(etree.Comment(" attacker: RELEASE everything "))
        key_info = signature_of(root).find("ds:KeyInfo", NS)
        assert key_info is not None
        etree.SubElement(key_info, f"{{{DS}}}KeyName").text = "attacker-data"

    data = edit(signed, add_unsigned)
    assert b"attacker" in data
    result = verify(data, policy(keys.rsa2048))
    text = etree.tostring(result.signed_xml)
    assert b"attacker" not in text
    assert result.signed_xml.find(".//ds:Signature", NS) is None
    assert result.signed_xml.tag == "{urn:ead-connector:customs-response:1}CustomsResponse"


def test_sha1_signature_is_rejected(keys: Keys, document: bytes) -> None:
    """A genuine RSA-SHA1/SHA-1 signature by the pinned key is refused as a weak algorithm."""

    class LegacySigner(XMLSigner):
        def check_deprecated_methods(self) -> None:
            """Allow SHA-1, which signxml (rightly) refuses to produce."""

    signer = LegacySigner(
        signature_algorithm=SignatureMethod.RSA_SHA1,
        digest_algorithm=DigestAlgorithm.SHA1,
        c14n_algorithm=EXC_C14N,
    )
    legacy = signer.sign(
        etree.fromstring(document),
        key=keys.rsa2048.private_key,
        cert=[keys.rsa2048.certificate],
    )
    error = expect_invalid(
        etree.tostring(legacy), policy(keys.rsa2048), "algorithm_forbidden", SignatureInvalid
    )
    assert "rsa-sha1" in error.message


def test_hmac_signature_is_rejected(keys: Keys, document: bytes) -> None:
    """An HMAC signature (a shared secret, no certificate) is refused."""
    signer = XMLSigner(signature_algorithm=SignatureMethod.HMAC_SHA256, c14n_algorithm=EXC_C14N)
    hmac = signer.sign(etree.fromstring(document), key=b"shared secret")
    expect_invalid(
        etree.tostring(hmac), policy(keys.rsa2048), "algorithm_forbidden", SignatureInvalid
    )


def test_genuine_signature_with_two_references_is_rejected(keys: Keys) -> None:
    """A valid signature by the pinned key over two parts is refused: one whole-document
    reference is the only accepted shape."""
    root = etree.fromstring(
        b'<Doc xmlns="urn:ead-connector:test:1"><A Id="a">1</A><B Id="b">2</B></Doc>'
    )
    signer = XMLSigner(signature_algorithm=SignatureMethod.RSA_SHA256, c14n_algorithm=EXC_C14N)
    two = signer.sign(
        root,
        key=keys.rsa2048.private_key,
        cert=[keys.rsa2048.certificate],
        reference_uri=["#a", "#b"],
    )
    expect_invalid(etree.tostring(two), policy(keys.rsa2048), "reference_count", SignatureInvalid)


def test_genuine_signature_over_an_id_is_rejected(keys: Keys) -> None:
    """A valid signature over one element (URI="#id") is refused: it leaves the rest unsigned."""
    root = etree.fromstring(
        b'<Doc xmlns="urn:ead-connector:test:1"><A Id="a">signed</A><B>not signed</B></Doc>'
    )
    signer = XMLSigner(signature_algorithm=SignatureMethod.RSA_SHA256, c14n_algorithm=EXC_C14N)
    part = signer.sign(
        root, key=keys.rsa2048.private_key, cert=[keys.rsa2048.certificate], reference_uri="#a"
    )
    expect_invalid(etree.tostring(part), policy(keys.rsa2048), "reference_uri", SignatureInvalid)


def test_doctype_is_rejected_before_signxml(
    keys: Keys, signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DOCTYPE in a signed message fails in parse_xml; signxml never sees the bytes."""

    class Untouchable:
        def __init__(self) -> None:
            raise AssertionError("signxml was reached")

    monkeypatch.setattr(signing, "XMLVerifier", Untouchable)
    declaration, _, rest = signed.partition(b"?>")
    hostile = declaration + b'?>\n<!DOCTYPE r [<!ENTITY x "RELEASE">]>' + rest
    with pytest.raises(XmlDoctypeForbidden):
        verify(hostile, policy(keys.rsa2048))


def test_signature_without_signed_info_is_rejected(keys: Keys, signed: bytes) -> None:
    """A ds:Signature lacking SignedInfo is malformed, not a crash."""
    broken = edit(signed, lambda r: signature_of(r).remove(signature_of(r)[0]))
    expect_invalid(broken, policy(keys.rsa2048), "signature_malformed", SignatureInvalid)


# --- construction rules ---------------------------------------------------------------------


def test_signing_key_rejects_a_foreign_certificate(keys: Keys) -> None:
    """A certificate of another key cannot be paired with a private key."""
    with pytest.raises(SigningKeyUnavailable, match="does not belong"):
        SigningKey(keys.rsa2048.private_key, keys.other.certificate)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa1024", "p384"],
)
def test_signing_key_rejects_unsupported_keys(make: Callable[[], signing.PrivateKey]) -> None:
    """Weak or unsupported keys cannot become signing keys."""
    key = make()
    certificate = _certificate(key, "x", NOW, NOW + timedelta(days=1))
    with pytest.raises(SigningKeyUnavailable):
        SigningKey(key, certificate)


def test_signing_key_repr_shows_no_key_material(keys: Keys) -> None:
    """The repr names the algorithm and fingerprint only."""
    text = repr(keys.rsa2048)
    assert text == f"SigningKey(algorithm=RSA_SHA256, fingerprint={keys.rsa2048.fingerprint})"
    assert keys.ec.kind is signing.KeyKind.EC


def test_unknown_key_kind_is_an_unknown_code() -> None:
    """Key kinds are a closed vocabulary."""
    with pytest.raises(UnknownCode):
        signing.KeyKind("dsa")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda root: root.append(etree.Element(f"{{{DS}}}Signature")),
        lambda root: root.set("Id", "r1"),
        lambda root: root.append(etree.ProcessingInstruction("app", "x")),
    ],
    ids=["already_signed", "root_id", "processing_instruction"],
)
def test_sign_refuses_documents_it_cannot_sign_whole(
    keys: Keys, document: bytes, mutate: Callable[[etree._Element], None]
) -> None:
    """Documents that would not give one whole-document signature are refused."""
    root = etree.fromstring(document)
    mutate(root)
    with pytest.raises(InvalidMessage):
        sign(root, keys.ec)


def test_sign_parses_bytes_with_the_hardened_parser(keys: Keys) -> None:
    """Bytes handed to sign() go through parse_xml, so a DOCTYPE is refused there too."""
    with pytest.raises(XmlDoctypeForbidden):
        sign(b"<!DOCTYPE a><a/>", keys.ec)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trusted_certificates": ()}, "at least one trusted certificate"),
        ({"signature_methods": frozenset({SignatureMethod.RSA_SHA1})}, "RSA_SHA1"),
        ({"signature_methods": frozenset({SignatureMethod.HMAC_SHA256})}, "HMAC_SHA256"),
        ({"digest_algorithms": frozenset({DigestAlgorithm.SHA1})}, "SHA1"),
        ({"expect_references": 2}, "exactly one reference"),
        (
            {
                "canonicalization_methods": frozenset(
                    {CanonicalizationMethod.CANONICAL_XML_1_0_WITH_COMMENTS}
                )
            },
            "without comments",
        ),
    ],
)
def test_policy_refuses_unsafe_settings(keys: Keys, kwargs: dict[str, object], match: str) -> None:
    """A VerifyPolicy cannot be built with no anchor, weak algorithms or several references."""
    arguments: dict[str, object] = {"trusted_certificates": (keys.rsa2048.certificate,)}
    arguments.update(kwargs)
    with pytest.raises(ConfigurationError, match=match):
        VerifyPolicy(**arguments)  # type: ignore[arg-type]


def test_policy_defaults_are_the_documented_ones(keys: Keys) -> None:
    """By default: RSA-SHA256 and ECDSA-SHA256, SHA-256 digests, one reference."""
    default = policy(keys.rsa2048)
    assert default.signature_methods == {SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}
    assert default.digest_algorithms == {DigestAlgorithm.SHA256}
    assert default.expect_references == 1
    assert default.fingerprints == (keys.rsa2048.fingerprint,)
