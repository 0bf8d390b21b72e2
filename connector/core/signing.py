"""Enveloped XML-DSig signatures over whole messages: sign ours, verify our counterparties'.

Pure: bytes, trees and key objects in; bytes and results out. No file, clock or environment
access (callers pass ``at`` to verify at another time than now, e.g. an archived message).

What a signature looks like (both directions):

- one ``ds:Signature``, the **last child of the root element**, enveloped;
- one ``ds:Reference`` with ``URI=""`` (the whole document) and the transforms
  *enveloped-signature* then *exclusive C14N 1.0* (no comments);
- digest SHA-256; signature RSA-SHA256 (RSA 2048/3072/4096) or ECDSA-SHA256 (P-256);
- ``ds:KeyInfo/ds:X509Data`` carries the signer's certificate, for information only: the
  verifying key always comes from a **pinned** certificate of the :class:`VerifyPolicy`.

:func:`verify` parses with :func:`connector.core.xmlsafe.parse_xml` first, so a DOCTYPE,
entity or over-deep document is refused with its own error before signxml sees anything.
It then checks the shape above on the (still untrusted) tree, which can only *reject*, and
lets signxml check the cryptography against each pinned certificate in turn. Callers use
only :attr:`VerifyResult.signed_xml`: the canonical form of what the signature covers,
re-parsed, never the input tree.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Final, TypeAlias, TypeVar

import cryptography.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, parse_xml
from connector.errors import (
    CertificateUntrusted,
    ConfigurationError,
    InvalidMessage,
    SignatureInvalid,
    SigningKeyUnavailable,
    UnknownCode,
)

__all__ = [
    "ALLOWED_CANONICALIZATION_METHODS",
    "ALLOWED_DIGEST_ALGORITHMS",
    "ALLOWED_SIGNATURE_METHODS",
    "DS_NS",
    "KeyKind",
    "PrivateKey",
    "SigningKey",
    "VerifyPolicy",
    "VerifyResult",
    "algorithm_for",
    "fingerprint",
    "sign",
    "verify",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The private key types the connector signs with."""

DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
_DS_SIGNATURE: Final = f"{{{DS_NS}}}Signature"
_DS_DIGEST_VALUE: Final = f"{{{DS_NS}}}DigestValue"
_DS_SIGNATURE_VALUE: Final = f"{{{DS_NS}}}SignatureValue"
_NS: Final = {"ds": DS_NS}

ALLOWED_SIGNATURE_METHODS: Final = frozenset(
    {SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}
)
"""Signature methods a :class:`VerifyPolicy` accepts by default (no SHA-1, no HMAC)."""

ALLOWED_DIGEST_ALGORITHMS: Final = frozenset({DigestAlgorithm.SHA256})
"""Reference digest algorithms a :class:`VerifyPolicy` accepts by default."""

ALLOWED_CANONICALIZATION_METHODS: Final = frozenset(
    {
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        CanonicalizationMethod.CANONICAL_XML_1_0,
        CanonicalizationMethod.CANONICAL_XML_1_1,
    }
)
"""Canonicalizations accepted from counterparties; we sign with exclusive C14N. The
``#WithComments`` forms are refused: the hardened parser drops comments."""

_SIGN_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
_SIGN_DIGEST: Final = DigestAlgorithm.SHA256
_ENVELOPED: Final = SignatureConstructionMethod.enveloped.value
_MIN_RSA_BITS: Final = 2048
_MAX_RSA_BITS: Final = 4096
_E = TypeVar("_E", bound=Enum)
# Methods that must never be allowed by a policy, whatever it says.
_NEVER_ALLOWED: Final = frozenset(
    m for m in SignatureMethod if "SHA1" in m.name or m.name.startswith("HMAC")
)


class KeyKind(StrEnum):
    """Kinds of signing key the connector generates and uses."""

    RSA = "rsa"
    """RSA, signing with RSA-SHA256 (PKCS#1 v1.5)."""
    EC = "ec"
    """ECDSA on NIST P-256, signing with ECDSA-SHA256."""

    @classmethod
    def _missing_(cls, value: object) -> KeyKind:
        raise UnknownCode(
            f"Unknown key kind {value!r}; expected one of: {', '.join(k.value for k in cls)}.",
            value=str(value),
        )


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lower-case hex (64 characters)."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def algorithm_for(public_key: object) -> SignatureMethod:
    """The signature method used with ``public_key`` (or its private key).

    Raises:
        SigningKeyUnavailable: the key is not RSA of 2048-4096 bits or EC on P-256.
    """
    if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if not _MIN_RSA_BITS <= public_key.key_size <= _MAX_RSA_BITS:
            raise SigningKeyUnavailable(
                f"RSA keys of {_MIN_RSA_BITS}-{_MAX_RSA_BITS} bits are supported, "
                f"not {public_key.key_size} bits."
            )
        return SignatureMethod.RSA_SHA256
    if isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise SigningKeyUnavailable(
                f"EC keys on P-256 (secp256r1) are supported, not {public_key.curve.name}."
            )
        return SignatureMethod.ECDSA_SHA256
    raise SigningKeyUnavailable(
        f"{type(public_key).__name__} keys are not supported; use RSA or EC P-256."
    )


def _public_der(key: object) -> bytes:
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise SigningKeyUnavailable(f"{type(public).__name__} keys are not supported.")
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key and its certificate, checked to belong together; build it once, reuse it.

    Raises:
        SigningKeyUnavailable: unsupported key type or size, or a certificate of another key.
    """

    private_key: PrivateKey = field(repr=False)
    """The key object itself: signing never re-parses PEM (≈37 ms per call for RSA)."""
    certificate: x509.Certificate = field(repr=False)
    """The certificate sent in ``ds:KeyInfo`` and published to counterparties."""
    algorithm: SignatureMethod = field(init=False)
    """RSA_SHA256 for RSA keys, ECDSA_SHA256 for P-256 keys."""
    fingerprint: str = field(init=False)
    """SHA-256 of the certificate DER, lower-case hex."""

    def __post_init__(self) -> None:
        algorithm = algorithm_for(self.private_key)
        if _public_der(self.private_key) != _public_der(self.certificate.public_key()):
            raise SigningKeyUnavailable("The certificate does not belong to the private key.")
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "fingerprint", fingerprint(self.certificate))

    @property
    def kind(self) -> KeyKind:
        """RSA or EC."""
        return KeyKind.RSA if self.algorithm is SignatureMethod.RSA_SHA256 else KeyKind.EC

    def __repr__(self) -> str:
        return f"SigningKey(algorithm={self.algorithm.name}, fingerprint={self.fingerprint})"


def sign(xml: bytes | etree._Element, key: SigningKey) -> bytes:
    """Sign a whole document with an enveloped signature and return the signed bytes (UTF-8).

    ``xml`` as bytes is parsed with :func:`~connector.core.xmlsafe.parse_xml`; an element is
    used as it is and not modified. The ``ds:Signature`` is appended as the last child of the
    root.

    Raises:
        InvalidMessage: the document cannot be signed: unsafe or malformed bytes (an ``Xml*``
            subclass), a ``ds:Signature`` already present, a root ``Id``/``ID`` attribute
            (signxml would then sign only ``#id``), or a processing instruction (the hardened
            parser refuses them, so the signed document could not be read back).
    """
    root = parse_xml(xml) if isinstance(xml, bytes) else xml
    if not isinstance(root, etree._Element):
        raise TypeError(f"sign() takes bytes or an lxml element, not {type(xml).__name__}")
    _check_signable(root)
    if DS_NS in root.nsmap.values():
        # The document binds the XML-DSig namespace itself: an attached template would take
        # the document's prefix for it and no longer be what was signed. signxml signs a
        # copy of its own, so ``root`` stays as it came.
        signed = _signer(key).sign(root, key=key.private_key, cert=[key.certificate])
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    signature = _signature_of(root, key)
    root.append(signature)  # after the digest was taken, as the enveloped transform implies
    try:
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    finally:
        root.remove(signature)  # the caller's element is left as it came


def _signature_of(root: etree._Element, key: SigningKey) -> etree._Element:
    """The ``ds:Signature`` of the whole document ``root`` (not attached to it).

    A copy of the key's template (:func:`_template`, signxml's own signature element) with
    the two values that depend on the document filled in: the digest of its exclusive C14N
    form, and the signature over the exclusive C14N form of the completed ``SignedInfo``,
    exactly as signxml computes them (tests compare the bytes with signxml's output).
    Building the template element by element was ~2/3 of signing a small document.
    """
    signature = copy.deepcopy(_template(key))
    signed_info = signature[0]
    document = etree.tostring(root, method="c14n", exclusive=True)
    signed_info[2][2].text = base64.b64encode(hashlib.sha256(document).digest()).decode()
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True)
    signature[1].text = base64.b64encode(_signature_value(key, canonical)).decode()
    return signature


def _signature_value(key: SigningKey, data: bytes) -> bytes:
    """RSA PKCS#1 v1.5 or ECDSA over SHA-256; ECDSA as ``r || s`` (XML-DSig, RFC 4050)."""
    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    der = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    size = (private_key.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


#: Signature templates of this thread (lxml trees stay in the thread that made them).
_TEMPLATES = threading.local()
_TEMPLATES_KEPT: Final = 8


def _template(key: SigningKey) -> etree._Element:
    """signxml's ``ds:Signature`` for ``key``, with empty digest and signature values.

    Made once per key and thread by letting signxml sign an empty document, so everything
    but the two values is signxml's own output. The positions :func:`_signature_of` fills
    are checked here.
    """
    kept: dict[tuple[str, str], etree._Element] | None = getattr(_TEMPLATES, "kept", None)
    if kept is None:
        kept = _TEMPLATES.kept = {}
    template = kept.get((key.algorithm.value, key.fingerprint))
    if template is not None:
        return template
    signed = _signer(key).sign(
        etree.Element("template"), key=key.private_key, cert=[key.certificate]
    )
    template = signed[0]
    signed.remove(template)
    values = (template[0][2][2], template[1])
    if [value.tag for value in values] != [_DS_DIGEST_VALUE, _DS_SIGNATURE_VALUE]:
        raise AssertionError("signxml's signature layout changed; the signing template is stale")
    for value in values:
        value.text = None
    if len(kept) >= _TEMPLATES_KEPT:
        kept.clear()
    kept[(key.algorithm.value, key.fingerprint)] = template
    return template


def _signer(key: SigningKey) -> XMLSigner:
    """signxml's enveloped signer with the connector's algorithms for ``key``."""
    return XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.algorithm,
        digest_algorithm=_SIGN_DIGEST,
        c14n_algorithm=_SIGN_C14N,
    )


def _check_signable(root: etree._Element) -> None:
    if root.tag == _DS_SIGNATURE or next(root.iter(_DS_SIGNATURE), None) is not None:
        raise InvalidMessage("The document already contains a ds:Signature; sign it only once.")
    if root.get("Id") is not None or root.get("ID") is not None:
        raise InvalidMessage(
            'The root element has an Id attribute; only whole-document signatures (URI="") '
            "are produced."
        )
    if next(root.iter(etree.PI), None) is not None:
        raise InvalidMessage("The document contains a processing instruction; remove it first.")


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """What a counterparty's signature must satisfy; the defaults are the documented policy.

    Raises:
        ConfigurationError: no trusted certificate, an SHA-1 or HMAC method, or a reference
            count other than 1.
    """

    trusted_certificates: tuple[x509.Certificate, ...]
    """Pinned signer certificates, tried in turn: more than one during a rotation overlap."""
    signature_methods: frozenset[SignatureMethod] = ALLOWED_SIGNATURE_METHODS
    """Accepted ``SignatureMethod`` algorithms."""
    digest_algorithms: frozenset[DigestAlgorithm] = ALLOWED_DIGEST_ALGORITHMS
    """Accepted ``DigestMethod`` algorithms."""
    canonicalization_methods: frozenset[CanonicalizationMethod] = ALLOWED_CANONICALIZATION_METHODS
    """Accepted ``CanonicalizationMethod`` and reference C14N transforms."""
    expect_references: int = 1
    """Number of ``ds:Reference`` elements; only 1 (``URI=""``, the whole document) is valid."""
    limits: ParseLimits = DEFAULT_LIMITS
    """Size and depth limits of the hardened parse."""

    def __post_init__(self) -> None:
        certificates = tuple(self.trusted_certificates)
        if not certificates:
            raise ConfigurationError(
                "A verify policy needs at least one trusted certificate.",
                key="trusted_certificates",
            )
        if not all(isinstance(c, x509.Certificate) for c in certificates):
            raise ConfigurationError(
                "Trusted certificates must be cryptography x509.Certificate objects.",
                key="trusted_certificates",
            )
        object.__setattr__(self, "trusted_certificates", certificates)
        weak = sorted(m.name for m in self.signature_methods if m in _NEVER_ALLOWED)
        weak += sorted(d.name for d in self.digest_algorithms if "SHA1" in d.name)
        if weak:
            raise ConfigurationError(
                f"Signature policy must not allow {', '.join(weak)}.", key="signature_methods"
            )
        if not self.signature_methods or not self.digest_algorithms:
            raise ConfigurationError(
                "A verify policy needs at least one signature method and one digest.",
                key="signature_methods",
            )
        if not self.canonicalization_methods or any(
            c.value.endswith("#WithComments") for c in self.canonicalization_methods
        ):
            raise ConfigurationError(
                "Canonicalization methods must be non-empty and without comments.",
                key="canonicalization_methods",
            )
        if self.expect_references != 1:
            raise ConfigurationError(
                "Only whole-document signatures with exactly one reference are supported.",
                key="expect_references",
            )

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The SHA-256 fingerprints of the pinned certificates, in order."""
        return tuple(fingerprint(c) for c in self.trusted_certificates)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A signature that verified, and what it covers."""

    signed_xml: etree._Element
    """The signed document (without its signature), re-parsed from its canonical form: the
    only tree callers may read."""
    fingerprint: str
    """SHA-256 of the pinned certificate that verified the signature, lower-case hex."""
    algorithm: SignatureMethod
    """The signature method used."""
    certificate: x509.Certificate = field(repr=False)
    """The pinned certificate that verified the signature."""
    digest_value: str = ""
    """The reference's base64 SHA-256 digest, for the evidence record."""


def verify(data: bytes, policy: VerifyPolicy, *, at: datetime | None = None) -> VerifyResult:
    """Verify the enveloped signature of ``data`` against the policy's pinned certificates.

    ``at`` is the time certificate validity is checked at (timezone-aware; default now).

    Raises:
        InvalidMessage: an ``Xml*`` subclass when :func:`parse_xml` refuses the bytes.
        CertificateUntrusted: signed with a certificate that is not pinned, or the pinned
            certificate is not valid at ``at``.
        SignatureInvalid: every other failure; ``context["check"]`` names the check and
            signxml's exception, if any, is the ``__cause__``.
    """
    if at is not None and at.utcoffset() is None:
        raise ValueError("verify(at=...) needs a timezone-aware datetime")
    root = parse_xml(data, policy.limits)
    signature = _locate_signature(root)
    method, digest_value = _check_signed_info(signature, policy)
    embedded = _embedded_fingerprints(signature)
    config = SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=policy.expect_references,
        signature_methods=policy.signature_methods,
        digest_algorithms=policy.digest_algorithms,
        verification_time=at,
    )
    failures: list[tuple[x509.Certificate, Exception]] = []
    for certificate in _candidates(policy, embedded):
        try:
            outcome = XMLVerifier().verify(root, x509_cert=certificate, expect_config=config)
        except InvalidDigest as exc:
            # The signature value verified with this certificate: the content changed.
            raise _invalid(
                "digest",
                "The signed content was changed after signing (reference digest mismatch).",
            ) from exc
        except etree.DocumentInvalid as exc:
            raise _invalid(
                "signature_malformed", "The ds:Signature element does not match its schema."
            ) from exc
        except (
            SignXMLException,
            cryptography.exceptions.InvalidSignature,
            ValueError,
            etree.LxmlError,
        ) as exc:
            failures.append((certificate, exc))
            continue
        if isinstance(outcome, list):  # pragma: no cover - expect_references is always 1
            raise _invalid("reference_count", "The signature has more than one reference.")
        signed_xml = outcome.signed_xml
        if signed_xml is None or signed_xml.tag != root.tag:
            raise _invalid("reference_uri", "The signature does not cover the whole document.")
        return VerifyResult(
            signed_xml=signed_xml,
            fingerprint=fingerprint(certificate),
            algorithm=method,
            certificate=certificate,
            digest_value=digest_value,
        )
    error = _no_certificate_verified(policy, embedded, failures)
    raise error from error.__cause__


def _invalid(check: str, message: str) -> SignatureInvalid:
    return SignatureInvalid(message, check=check)


def _locate_signature(root: etree._Element) -> etree._Element:
    """Return the one ``ds:Signature``; it must be the last child element of the root."""
    if root.tag == _DS_SIGNATURE:
        raise _invalid(
            "signature_location",
            "The root element is a ds:Signature (enveloping); an enveloped signature is expected.",
        )
    signatures = list(root.iter(_DS_SIGNATURE))
    if not signatures:
        raise _invalid("no_signature", "The message is not signed: it has no ds:Signature.")
    if len(signatures) > 1:
        raise _invalid(
            "duplicate_signature",
            f"The message has {len(signatures)} ds:Signature elements; exactly one is accepted.",
        )
    signature = signatures[0]
    if signature.getparent() is not root or root[-1] is not signature:
        raise _invalid(
            "signature_location",
            "The ds:Signature is not the last child of the root element (moved or wrapped).",
        )
    return signature


def _check_signed_info(
    signature: etree._Element, policy: VerifyPolicy
) -> tuple[SignatureMethod, str]:
    """Check the algorithms and the one whole-document reference; this can only reject."""
    signed_info = signature.find("ds:SignedInfo", _NS)
    if signed_info is None:
        raise _invalid("signature_malformed", "The ds:Signature has no ds:SignedInfo.")
    c14n = _member(
        CanonicalizationMethod,
        _algorithm(signed_info, "ds:CanonicalizationMethod"),
        "canonicalization method",
    )
    if c14n not in policy.canonicalization_methods:
        raise _forbidden("canonicalization method", c14n.value)
    method = _member(
        SignatureMethod, _algorithm(signed_info, "ds:SignatureMethod"), "signature method"
    )
    if method not in policy.signature_methods:
        raise _forbidden("signature method", method.value)
    references = signed_info.findall("ds:Reference", _NS)
    if len(references) != policy.expect_references:
        raise _invalid(
            "reference_count",
            f"The signature has {len(references)} references; exactly "
            f'{policy.expect_references} (URI="", the whole document) is accepted.',
        )
    reference = references[0]
    uri = reference.get("URI")
    if uri != "":
        raise _invalid(
            "reference_uri",
            f'The reference must cover the whole document (URI=""), not URI={uri!r}.',
        )
    transforms = [t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", _NS)]
    if _ENVELOPED not in transforms:
        raise _invalid("transform", "The reference lacks the enveloped-signature transform.")
    for transform in transforms:
        if transform == _ENVELOPED:
            continue
        c14n_transform = _member(CanonicalizationMethod, transform, "transform")
        if c14n_transform not in policy.canonicalization_methods:
            raise _forbidden("transform", c14n_transform.value)
    digest = _member(DigestAlgorithm, _algorithm(reference, "ds:DigestMethod"), "digest method")
    if digest not in policy.digest_algorithms:
        raise _forbidden("digest method", digest.value)
    digest_value = reference.findtext("ds:DigestValue", default="", namespaces=_NS)
    return method, "".join(digest_value.split())


def _algorithm(parent: etree._Element, path: str) -> str:
    element = parent.find(path, _NS)
    value = element.get("Algorithm") if element is not None else None
    if value is None:
        raise _invalid("signature_malformed", f"The signature has no {path} Algorithm.")
    return value


def _member(enum: type[_E], value: str | None, what: str) -> _E:
    try:
        return enum(value)
    except ValueError as exc:  # signxml's InvalidInput is a ValueError
        raise _invalid(
            "algorithm_forbidden", f"The {what} {value!r} is unknown or not allowed."
        ) from exc


def _forbidden(what: str, uri: str) -> SignatureInvalid:
    return _invalid(
        "algorithm_forbidden",
        f"The {what} {uri.rsplit('#', 1)[-1] or uri} ({uri}) is not allowed by the policy.",
    )


def _embedded_fingerprints(signature: etree._Element) -> tuple[str, ...]:
    """Fingerprints of the certificates in ``ds:KeyInfo``; unparsable ones are skipped."""
    found = []
    for text in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
        try:
            der = base64.b64decode("".join((text.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            continue
        found.append(hashlib.sha256(der).hexdigest())
    return tuple(found)


def _candidates(policy: VerifyPolicy, embedded: Iterable[str]) -> list[x509.Certificate]:
    """The pinned certificates, the one the signature names first (one attempt, usually)."""
    named = set(embedded)
    pinned = list(policy.trusted_certificates)
    return sorted(pinned, key=lambda c: fingerprint(c) not in named)


def _no_certificate_verified(
    policy: VerifyPolicy,
    embedded: tuple[str, ...],
    failures: list[tuple[x509.Certificate, Exception]],
) -> SignatureInvalid:
    """The most telling error after every pinned certificate failed; the cause is attached."""
    pinned = set(policy.fingerprints)
    named = [f for f in embedded if f in pinned]
    relevant = [(c, e) for c, e in failures if fingerprint(c) in named] or failures
    certificate, cause = relevant[0]
    count = len(policy.trusted_certificates)
    error: SignatureInvalid
    if embedded and not named:
        error = CertificateUntrusted(
            f"The message is signed with certificate {embedded[0][:16]}…, which is not one of "
            f"the {count} pinned certificate(s) (wrong certificate).",
            check="certificate_not_pinned",
            fingerprint=embedded[0],
        )
    elif all(isinstance(e, InvalidCertificate) for _, e in relevant):
        error = CertificateUntrusted(
            f"The pinned certificate {fingerprint(certificate)[:16]}… is not valid at the "
            f"verification time ({_validity(certificate)}).",
            check="certificate_validity",
            fingerprint=fingerprint(certificate),
        )
    elif named:
        error = _invalid(
            "signature_value",
            "The signature value does not verify with the pinned certificate it names: "
            "SignedInfo or SignatureValue was changed.",
        )
    else:
        error = _invalid(
            "signature_value",
            f"The signature value does not verify with any of the {count} pinned "
            "certificate(s) (wrong certificate, or SignedInfo changed).",
        )
    error.__cause__ = cause
    return error


def _validity(certificate: x509.Certificate) -> str:
    return (
        f"valid {certificate.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
        f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    )
