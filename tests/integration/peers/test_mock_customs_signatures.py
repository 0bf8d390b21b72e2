"""The mock Customs verifies each batch's signature for real, whichever path it takes.

A batch in the layout the connector signs is verified on the parsed tree itself; anything else
goes through the full :func:`connector.core.signing.verify`. Either way a batch is stored only
when its signature verifies with a trusted certificate, and every fault is refused with the
same code the full verification gives.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from connector.adapters import keystore
from connector.core import signing
from connector.peers.customs import MockCustoms

from .conftest import Keys, new_key, signed_batch

DS = signing.DS_NS
XML = {"Content-Type": "application/xml"}


async def _post(http: aiohttp.ClientSession, customs: MockCustoms, body: bytes) -> tuple[int, str]:
    async with http.post(customs.declarations_url, data=body, headers=XML) as response:
        text = await response.text()
        code = json.loads(text)["code"] if response.status != 200 else ""
        return response.status, code


def _edit(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _signature(root: etree._Element) -> etree._Element:
    found = root.find(f"{{{DS}}}Signature")
    assert found is not None
    return found


def _ds(root: etree._Element, path: str) -> etree._Element:
    found = _signature(root).find(path, {"ds": DS})
    assert found is not None
    return found


def _value_changed(data: bytes, keys: Keys) -> bytes:
    assert b"<Version>1</Version>" in data
    return data.replace(b"<Version>1</Version>", b"<Version>2</Version>", 1)


def _signature_value_zeroed(data: bytes, keys: Keys) -> bytes:
    def change(root: etree._Element) -> None:
        _ds(root, "ds:SignatureValue").text = base64.b64encode(bytes(64)).decode()

    return _edit(data, change)


def _digest_value_replaced(data: bytes, keys: Keys) -> bytes:
    def change(root: etree._Element) -> None:
        digest = hashlib.sha256(b"something else").digest()
        _ds(root, "ds:SignedInfo/ds:Reference/ds:DigestValue").text = base64.b64encode(
            digest
        ).decode()

    return _edit(data, change)


def _signature_moved_first(data: bytes, keys: Keys) -> bytes:
    def change(root: etree._Element) -> None:
        root.insert(0, _signature(root))

    return _edit(data, change)


def _second_signature(data: bytes, keys: Keys) -> bytes:
    def change(root: etree._Element) -> None:
        root[0].append(copy.deepcopy(_signature(root)))

    return _edit(data, change)


def _extra_reference(data: bytes, keys: Keys) -> bytes:
    def change(root: etree._Element) -> None:
        reference = _ds(root, "ds:SignedInfo/ds:Reference")
        reference.addnext(copy.deepcopy(reference))

    return _edit(data, change)


def _trusted_certificate_embedded(data: bytes, keys: Keys) -> bytes:
    """Signed by an intruder, naming the trusted connector certificate in KeyInfo."""
    forged = signed_batch(new_key("Intruder"), "DB-1")
    der = keys.connector.certificate.public_bytes(Encoding.DER)

    def change(root: etree._Element) -> None:
        _ds(root, "ds:KeyInfo/ds:X509Data/ds:X509Certificate").text = base64.b64encode(der).decode()

    return _edit(forged, change)


def _untrusted_signer(data: bytes, keys: Keys) -> bytes:
    return signed_batch(new_key("Intruder"), "DB-1")


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_value_changed, "signature_invalid"),
        (_signature_value_zeroed, "signature_invalid"),
        (_digest_value_replaced, "signature_invalid"),
        (_signature_moved_first, "signature_invalid"),
        (_second_signature, "signature_invalid"),
        (_extra_reference, "signature_invalid"),
        (_trusted_certificate_embedded, "signature_invalid"),
        (_untrusted_signer, "certificate_untrusted"),
    ],
    ids=lambda value: getattr(value, "__name__", value).strip("_"),
)
async def test_a_batch_whose_signature_does_not_verify_is_refused(
    customs: MockCustoms,
    http: aiohttp.ClientSession,
    keys: Keys,
    tamper: Callable[[bytes, Keys], bytes],
    code: str,
) -> None:
    """Each fault gets the full verification's code and nothing is stored."""
    body = tamper(signed_batch(keys.connector, "DB-1"), keys)
    assert await _post(http, customs, body) == (400, code)
    assert customs.batches == []
    assert customs.refusals == [code]


async def test_the_usual_layout_is_stored_as_signed(
    customs: MockCustoms,
    http: aiohttp.ClientSession,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch signed by the connector is verified on its parsed tree (the full verification
    is not needed) and stored with the signer's fingerprint and its items."""

    def full_verification(*args: object, **kwargs: object) -> signing.VerifyResult:
        raise AssertionError("the connector's usual layout takes the in-place path")

    monkeypatch.setattr(signing, "verify", full_verification)
    assert await _post(http, customs, signed_batch(keys.connector, "DB-1")) == (200, "")
    batch = customs.received["DB-1"]
    assert batch.signer_fingerprint == keys.connector.fingerprint
    assert [d.version for d in batch.declarations] == [1] * len(batch.declarations)


async def test_an_rsa_signature_is_verified(
    customs: MockCustoms, http: aiohttp.ClientSession
) -> None:
    """An RSA-SHA256 signature by a trusted certificate is accepted."""
    private_key, certificate = keystore.generate_key("rsa", "EADC-RSA", 30)
    key = signing.SigningKey(private_key, certificate)
    customs.trust(certificate)
    assert await _post(http, customs, signed_batch(key, "DB-RSA")) == (200, "")
    assert customs.received["DB-RSA"].signer_fingerprint == key.fingerprint


async def test_another_allowed_layout_is_verified_in_full(
    customs: MockCustoms, http: aiohttp.ClientSession, keys: Keys
) -> None:
    """C14N 1.1 is allowed by the policy though the connector never signs with it: accepted."""
    root = etree.fromstring(signed_batch(keys.connector, "DB-11"))
    root.remove(_signature(root))
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm="ecdsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2006/12/xml-c14n11",
    )
    signed = signer.sign(root, key=keys.connector.private_key, cert=[keys.connector.certificate])
    body = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    assert await _post(http, customs, body) == (200, "")
    assert customs.received["DB-11"].signer_fingerprint == keys.connector.fingerprint


async def test_an_expired_trusted_certificate_is_refused(
    customs: MockCustoms, http: aiohttp.ClientSession
) -> None:
    """A trusted certificate past its validity verifies nothing."""
    past = datetime.now(UTC) - timedelta(days=10)
    private_key, certificate = keystore.generate_key("ec", "EADC-OLD", 1, now=past)
    customs.trust(certificate)
    body = signed_batch(signing.SigningKey(private_key, certificate), "DB-OLD")
    status, code = await _post(http, customs, body)
    assert status == 400
    assert code == "certificate_untrusted"
    assert customs.batches == []
