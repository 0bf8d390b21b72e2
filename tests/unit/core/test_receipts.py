"""The declaration receipt: built valid per its schema, read back, refused when malformed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from connector.core import signing
from connector.core.receipts import (
    DeclarationReceiptInfo,
    ReceiptStatus,
    declaration_receipt_xml,
    read_declaration_receipt,
)
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import parse_xml
from connector.errors import InvalidMessage, MessageKindUnknown, UnknownCode

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "messages" / "declaration-receipt.xml"
NS = MessageKind.DECLARATION_RECEIPT.namespace
AT = datetime(2026, 11, 26, 10, 5, 31, 204000, tzinfo=UTC)


def _valid(data: bytes) -> bool:
    root = parse_xml(data)
    registry = default_registry()
    lxml_ok = bool(registry.lxml(MessageKind.DECLARATION_RECEIPT).validate(root))
    xs_ok = bool(registry.xmlschema(MessageKind.DECLARATION_RECEIPT).is_valid(root))
    assert lxml_ok == xs_ok, "lxml and xmlschema disagree"
    return lxml_ok


def _signing_key() -> signing.SigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mock customs")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return signing.SigningKey(key, certificate)


def test_built_receipt_is_valid_and_reads_back() -> None:
    """A built receipt is schema-valid and reads back to the values it was built from."""
    data = declaration_receipt_xml("DB-1", "EU-ICS2", AT, 3, customs_reference="SUB-9")
    assert _valid(data)
    info = read_declaration_receipt(parse_xml(data))
    assert info == DeclarationReceiptInfo(
        declaration_batch_id="DB-1",
        destination="EU-ICS2",
        received_at=AT,
        status=ReceiptStatus.ACCEPTED,
        item_count=3,
        customs_reference="SUB-9",
    )
    assert not info.duplicate


def test_duplicate_receipt_without_reference() -> None:
    """A duplicate receipt says so, and the customs reference is optional."""
    data = declaration_receipt_xml("DB-1", "EU-ICS2", AT, 1, duplicate=True)
    assert _valid(data)
    info = read_declaration_receipt(parse_xml(data))
    assert info.status is ReceiptStatus.DUPLICATE
    assert info.duplicate
    assert info.customs_reference is None
    assert b"CustomsReference" not in data


def test_received_at_is_written_in_utc() -> None:
    """A receipt time in another zone is written in UTC and reads back as the same instant."""
    local = AT.astimezone(timezone(timedelta(hours=2)))
    data = declaration_receipt_xml("DB-1", "EU-ICS2", local, 1)
    assert b"<ReceivedAt>2026-11-26T10:05:31.204Z</ReceivedAt>" in data
    assert read_declaration_receipt(parse_xml(data)).received_at == AT


def test_signed_receipt_verifies_and_reads_from_the_verified_tree() -> None:
    """Signed with the Customs key, the receipt verifies and reads from VerifyResult."""
    key = _signing_key()
    signed = signing.sign(declaration_receipt_xml("DB-1", "EU-ICS2", AT, 2), key)
    assert _valid(signed)  # the enveloped signature is admitted by the schema
    result = signing.verify(signed, signing.VerifyPolicy((key.certificate,)))
    assert read_declaration_receipt(result.signed_xml).item_count == 2


def test_example_message_reads() -> None:
    """The example in tests/data/messages is a receipt the reader understands."""
    info = read_declaration_receipt(parse_xml(EXAMPLE.read_bytes()))
    assert info.declaration_batch_id == "DB-EU-ICS2-20261126-0042"
    assert info.item_count == 3
    assert info.customs_reference == "ICS2-SUB-20261126-118204"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"received_at": datetime(2026, 11, 26, 10, 5)}, "timezone"),
        ({"item_count": 0}, "item_count"),
        ({"item_count": 10_001}, "item_count"),
    ],
)
def test_builder_refuses_values_the_schema_would_reject(
    kwargs: dict[str, object], message: str
) -> None:
    """A naive time or an item count outside 1..10,000 is refused before building."""
    arguments: dict[str, object] = {
        "batch_id": "DB-1",
        "destination": "EU-ICS2",
        "received_at": AT,
        "item_count": 1,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        declaration_receipt_xml(**arguments)  # type: ignore[arg-type]


def _mutated(mutate: Callable[[etree._Element], None]) -> etree._Element:
    root = parse_xml(EXAMPLE.read_bytes())
    mutate(root)
    return root


def _set(name: str, text: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        element = root.find(f"{{{NS}}}{name}")
        assert element is not None
        element.text = text

    return mutate


def _drop(name: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        element = root.find(f"{{{NS}}}{name}")
        assert element is not None
        root.remove(element)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_drop("DeclarationBatchId"), "DeclarationBatchId"),
        (_drop("ReceivedAt"), "ReceivedAt"),
        (_set("ReceivedAt", "2026-11-26T10:05:31"), "ReceivedAt"),
        (_set("ReceivedAt", "yesterday"), "ReceivedAt"),
        (_set("Status", "maybe"), "Status"),
        (_set("ItemCount", "0"), "ItemCount"),
        (_set("ItemCount", "ten"), "ItemCount"),
        (_set("ItemCount", "10001"), "ItemCount"),
    ],
    ids=[
        "no-batch-id",
        "no-received-at",
        "no-time-zone",
        "not-a-time",
        "unknown-status",
        "zero-items",
        "not-a-count",
        "too-many-items",
    ],
)
def test_reader_refuses_malformed_receipts(
    mutate: Callable[[etree._Element], None], field: str
) -> None:
    """A receipt with a missing or malformed field is an InvalidMessage naming the field."""
    root = _mutated(mutate)
    with pytest.raises(InvalidMessage) as caught:
        read_declaration_receipt(root)
    assert caught.value.context["field"] == field


@pytest.mark.parametrize(
    "mutate",
    [
        _drop("Destination"),
        _set("Status", "ACCEPTED"),
        _set("ItemCount", "0"),
        _set("ItemCount", "10001"),
        _set("DeclarationBatchId", "DB 1"),
    ],
    ids=["no-destination", "upper-case-status", "zero-items", "too-many-items", "bad-batch-id"],
)
def test_schema_rejects_broken_receipts(mutate: Callable[[etree._Element], None]) -> None:
    """The schema rejects a receipt without a destination, with an unknown status or count."""
    root = _mutated(mutate)
    assert not _valid(etree.tostring(root))


def test_reader_refuses_another_message_kind() -> None:
    """Another document than a declaration receipt is refused by its root."""
    root = etree.fromstring(b'<CustomsResponse xmlns="urn:ead-connector:customs-response:1"/>')
    with pytest.raises(MessageKindUnknown):
        read_declaration_receipt(root)


def test_status_enum_refuses_unknown_values() -> None:
    """An unknown receipt status is an UnknownCode error."""
    with pytest.raises(UnknownCode):
        ReceiptStatus("pending")
