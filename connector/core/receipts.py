"""The declaration receipt: what Customs answers, signed, to one declaration batch.

Customs builds it with :func:`declaration_receipt_xml` (the mock Customs does; a real one
follows ``declaration-receipt-1.xsd``) and signs it; the connector verifies the signature with
:func:`connector.core.signing.verify` and reads only the verified tree with
:func:`read_declaration_receipt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from lxml import etree

from connector.core.outbound import xml_datetime
from connector.core.schemas import MessageKind
from connector.errors import InvalidMessage, MessageKindUnknown, UnknownCode

__all__ = [
    "MAX_ITEM_COUNT",
    "DeclarationReceiptInfo",
    "ReceiptStatus",
    "declaration_receipt_xml",
    "read_declaration_receipt",
]

MAX_ITEM_COUNT: Final = 10_000
"""The most declarations one batch (and so one receipt) counts."""

_NS: Final = MessageKind.DECLARATION_RECEIPT.namespace
_ROOT: Final = MessageKind.DECLARATION_RECEIPT.root_tag


class ReceiptStatus(StrEnum):
    """What Customs did with the batch."""

    ACCEPTED = "accepted"
    """The batch was new; its declarations were taken."""
    DUPLICATE = "duplicate"
    """The batch id had been received before; nothing was declared again."""

    @classmethod
    def _missing_(cls, value: object) -> ReceiptStatus:
        raise UnknownCode(
            f"Unknown receipt status {value!r}; expected one of: "
            f"{', '.join(s.value for s in cls)}.",
            value=str(value),
        )


@dataclass(frozen=True, slots=True)
class DeclarationReceiptInfo:
    """The content of a verified declaration receipt."""

    declaration_batch_id: str
    destination: str
    received_at: datetime
    """Timezone-aware; when Customs first received the batch."""
    status: ReceiptStatus
    item_count: int
    customs_reference: str | None = None

    @property
    def duplicate(self) -> bool:
        """True when Customs had received this batch id before."""
        return self.status is ReceiptStatus.DUPLICATE


def declaration_receipt_xml(
    batch_id: str,
    destination: str,
    received_at: datetime,
    item_count: int,
    *,
    duplicate: bool = False,
    customs_reference: str | None = None,
) -> bytes:
    """The unsigned receipt of one declaration batch (declaration-receipt-1.xsd), UTF-8.

    Raises:
        ValueError: ``received_at`` is naive or ``item_count`` is outside 1..10,000.
    """
    if received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    if not 1 <= item_count <= MAX_ITEM_COUNT:
        raise ValueError(f"item_count must be from 1 to {MAX_ITEM_COUNT}, got {item_count}")
    root = etree.Element(_ROOT, nsmap={None: _NS})  # type: ignore[dict-item]

    def child(name: str, text: str) -> None:
        etree.SubElement(root, f"{{{_NS}}}{name}").text = text

    child("DeclarationBatchId", batch_id)
    child("Destination", destination)
    child("ReceivedAt", xml_datetime(received_at))
    child("Status", (ReceiptStatus.DUPLICATE if duplicate else ReceiptStatus.ACCEPTED).value)
    child("ItemCount", str(item_count))
    if customs_reference is not None:
        child("CustomsReference", customs_reference)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def read_declaration_receipt(root: etree._Element) -> DeclarationReceiptInfo:
    """Read a receipt tree; pass the *verified* tree (``VerifyResult.signed_xml``).

    Checks what the reading relies on (root, required fields, their forms), not the whole
    schema.

    Raises:
        MessageKindUnknown: the root is not a ``DeclarationReceipt`` of namespace version 1.
        InvalidMessage: a required field is missing or has a wrong form (also a ``ReceivedAt``
            without a time zone, or an unknown ``Status``).
    """
    if root.tag != _ROOT:
        raise MessageKindUnknown(f"expected a declaration receipt ({_ROOT}), got {root.tag}")
    status_text = _text(root, "Status")
    try:
        status = ReceiptStatus(status_text)
    except UnknownCode as exc:
        raise InvalidMessage(
            f"The receipt Status {status_text!r} is not accepted or duplicate.", field="Status"
        ) from exc
    reference = root.find(f"{{{_NS}}}CustomsReference")
    reference_text = (reference.text or "").strip() if reference is not None else ""
    return DeclarationReceiptInfo(
        declaration_batch_id=_text(root, "DeclarationBatchId"),
        destination=_text(root, "Destination"),
        received_at=_datetime(_text(root, "ReceivedAt")),
        status=status,
        item_count=_count(_text(root, "ItemCount")),
        customs_reference=reference_text or None,
    )


def _text(root: etree._Element, name: str) -> str:
    element = root.find(f"{{{_NS}}}{name}")
    text = (element.text or "").strip() if element is not None else ""
    if not text:
        raise InvalidMessage(f"The receipt has no {name}.", field=name)
    return text


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidMessage(
            f"The receipt ReceivedAt {text[:40]!r} is not an xs:dateTime.", field="ReceivedAt"
        ) from exc
    if value.utcoffset() is None:
        raise InvalidMessage(
            f"The receipt ReceivedAt {text[:40]!r} has no time zone.", field="ReceivedAt"
        )
    return value


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_ITEM_COUNT:
        raise InvalidMessage(
            f"The receipt ItemCount {text[:20]!r} is not a number from 1 to {MAX_ITEM_COUNT}.",
            field="ItemCount",
        )
    return int(text)
