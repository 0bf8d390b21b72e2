"""Domain records and closed vocabularies.

Records are frozen dataclasses: the core never holds an ORM object or a mutable message. Every
closed vocabulary is a ``str`` Enum whose unknown values raise :class:`UnknownCode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Self

from connector.errors import UnknownCode

if TYPE_CHECKING:
    # Only for annotations: the checks' outcome module builds on these records.
    from connector.core.checks.outcome import Finding

__all__ = [
    "AcceptedItem",
    "AckItem",
    "Acknowledgement",
    "Address",
    "BatchHeader",
    "ContentLine",
    "CustomsDecision",
    "DocumentType",
    "IncomingItem",
    "Intake",
    "IntakeResult",
    "IntakeStatus",
    "ItemCategory",
    "ItemError",
    "ItemEvent",
    "ItemState",
    "Party",
    "PostalItem",
    "ScreeningMethod",
    "ScreeningOutcome",
    "StoredItem",
    "Transport",
    "finding_dict",
]


class _ClosedEnum(StrEnum):
    """A str Enum that refuses unknown values with a domain error."""

    @classmethod
    def _missing_(cls, value: object) -> Self:
        allowed = ", ".join(member.value for member in cls)
        raise UnknownCode(f"{value!r} is not a valid {cls.__name__} (allowed: {allowed})")


class ItemCategory(_ClosedEnum):
    """Category of item as declared on CN 22 / CN 23."""

    GIFT = "GIFT"
    DOCUMENTS = "DOCUMENTS"
    COMMERCIAL_SAMPLE = "COMMERCIAL_SAMPLE"
    RETURNED_GOODS = "RETURNED_GOODS"
    SALE_OF_GOODS = "SALE_OF_GOODS"
    OTHER = "OTHER"


class CustomsDecision(_ClosedEnum):
    """A Customs decision on one item (see domain.md for the ICS2 and UPU equivalents)."""

    #: Assessment complete: the item carries on.
    RELEASE = "RELEASE"
    #: Hold for inspection: keep the item available to Customs.
    HOLD = "HOLD"
    #: The item must not travel; highest priority.
    DO_NOT_LOAD = "DO_NOT_LOAD"
    #: Request for information (referral); the operator answers with more data.
    REQUEST_INFO = "REQUEST_INFO"
    #: Request for high-risk screening; the operator answers with the screening result.
    REQUEST_SCREENING = "REQUEST_SCREENING"
    #: Customs refused the declaration as invalid.
    REJECTED = "REJECTED"


class ScreeningMethod(_ClosedEnum):
    """Security screening method for air cargo and mail (customs response, notice, answer)."""

    #: X-ray.
    XRY = "XRY"
    #: Explosive detection system.
    EDS = "EDS"
    #: Explosive trace detection.
    ETD = "ETD"
    #: Explosive detection dog.
    EDD = "EDD"
    #: Physical search.
    PHS = "PHS"
    #: Visual check.
    VCK = "VCK"
    #: Metal detection.
    CMD = "CMD"
    #: Another method.
    OTH = "OTH"


class ScreeningOutcome(_ClosedEnum):
    """Result of a screening reported in a referral answer."""

    #: Nothing found: the item may travel.
    CLEAR = "CLEAR"
    #: The threat could not be ruled out.
    NOT_CLEAR = "NOT_CLEAR"


class DocumentType(_ClosedEnum):
    """Kind of a document named in a referral answer (metadata only)."""

    INVOICE = "INVOICE"
    LICENCE = "LICENCE"
    CERTIFICATE = "CERTIFICATE"
    PHOTO = "PHOTO"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class Address:
    street: tuple[str, ...]
    city: str
    country: str
    postcode: str | None = None
    subdivision: str | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """Sender (consignor) or addressee (consignee)."""

    name: str
    address: Address
    email: str | None = None
    phone: str | None = None
    eori: str | None = None


@dataclass(frozen=True, slots=True)
class ContentLine:
    description: str
    quantity: int
    net_weight: Decimal
    value: Decimal
    currency: str
    origin_country: str
    hs_code: str | None = None


@dataclass(frozen=True, slots=True)
class Transport:
    departure_country: str
    destination_country: str
    departure_airport: str | None = None
    departure_time: datetime | None = None
    carrier: str | None = None
    flight_number: str | None = None
    receptacle_id: str | None = None


@dataclass(frozen=True, slots=True)
class PostalItem:
    """One postal item's electronic advance data, as accepted from an operator."""

    item_id: str
    category: ItemCategory
    posting_date: date
    sender: Party
    addressee: Party
    gross_weight: Decimal
    total_value: Decimal
    currency: str
    lines: tuple[ContentLine, ...]
    transport: Transport
    office_of_origin: str | None = None
    postage: Decimal | None = None
    insured_value: Decimal | None = None
    ioss_number: str | None = None
    importer_eori: str | None = None
    comments: str | None = None

    @property
    def destination_country(self) -> str:
        return self.transport.destination_country


@dataclass(frozen=True, slots=True)
class BatchHeader:
    batch_id: str
    operator_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ItemError:
    """One actionable fault of one item.

    ``item_index`` is the item's 0-based position in its batch; ``path`` is XPath-like with
    1-based positions (``/ItemBatch/Items/Item[3]/Contents/Line[2]/HsCode``); ``item_id`` is
    the item's id as sent, or None when the item has none.
    """

    item_index: int
    item_id: str | None
    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "item_index": self.item_index,
            "item_id": self.item_id,
            "path": self.path,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class AcceptedItem:
    """An item that passed schema and business rules, by position and id, with the country
    its transport goes to (read by the rules)."""

    item_index: int
    item_id: str
    destination_country: str


class ItemState(_ClosedEnum):
    """Where an item is in its life (see :mod:`connector.core.lifecycle`)."""

    RECEIVED = "RECEIVED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FORWARDING = "FORWARDING"
    FORWARDED = "FORWARDED"
    DECIDED = "DECIDED"
    NOTIFIED = "NOTIFIED"
    DEAD = "DEAD"
    AMENDED = "AMENDED"
    CANCELLED = "CANCELLED"


class IntakeStatus(_ClosedEnum):
    """What the store made of one incoming item."""

    #: First time seen: stored, an event written, queued for forwarding.
    NEW = "NEW"
    #: Seen before with the same content: nothing changed (idempotent resend).
    DUPLICATE = "DUPLICATE"
    #: Seen before with other content: refused; changes go through an amendment.
    CONFLICT = "CONFLICT"


def finding_dict(finding: Finding) -> dict[str, object]:
    """A check finding as stored with its item and shown in acknowledgements and views:
    ``severity``, ``code``, ``path``, ``message`` and ``detail`` (JSON-ready)."""
    return {
        "severity": finding.severity.value,
        "code": finding.code,
        "path": finding.path,
        "message": finding.message,
        "detail": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in finding.detail.items()
        },
    }


@dataclass(frozen=True, slots=True)
class IncomingItem:
    """An accepted item on its way into the store, with the warnings of the intake checks.

    ``reference`` is the item's :func:`~connector.core.references.item_reference` for the
    operator the batch names, worked out where the batch was checked (None: the store works
    it out); the batch is refused before storing if it names another operator.
    """

    item_index: int
    item_id: str
    destination_country: str
    digest: str
    item_xml: bytes
    findings: tuple[Finding, ...] = ()
    reference: str | None = None

    def __reduce__(self) -> tuple[type[IncomingItem], tuple[object, ...]]:
        # Positional, not the slots' state: half the cost for the 1,000 items that come
        # back from an intake worker process per batch.
        return IncomingItem, (
            self.item_index,
            self.item_id,
            self.destination_country,
            self.digest,
            self.item_xml,
            self.findings,
            self.reference,
        )


@dataclass(frozen=True, slots=True)
class Intake:
    """One batch to store atomically: its accepted items and (for a pull) the new cursor."""

    operator_id: str
    batch_id: str
    received_at: datetime
    payload_digest: str
    item_count: int
    items: tuple[IncomingItem, ...]
    rejected: tuple[ItemError, ...]
    source: str  # "push" or "pull"
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The store's verdict on one incoming item."""

    item_index: int
    item_id: str
    status: IntakeStatus
    reference: str


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as the connector holds it."""

    reference: str
    operator_id: str
    item_id: str
    version: int
    state: ItemState
    destination_country: str
    batch_id: str
    digest: str
    received_at: datetime
    updated_at: datetime
    item_xml: bytes
    decision: CustomsDecision | None = None
    #: Warnings of the intake checks on this version (errors reject an item, so none here).
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """One row of an item's append-only history."""

    reference: str
    at: datetime
    actor: str
    from_state: ItemState | None
    to_state: ItemState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AckItem:
    """The acknowledgement of one item of a batch.

    ``findings`` are every check finding on the item: warnings of an accepted item, and on a
    rejected one its error findings (also listed in ``errors``) with any warnings.
    """

    item_index: int
    item_id: str
    accepted: bool
    reference: str | None = None
    errors: tuple[ItemError, ...] = ()
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The answer to an item batch: per item accepted (with reference) or rejected."""

    batch_id: str
    operator_id: str
    received_at: datetime
    items: tuple[AckItem, ...]

    def as_dict(self) -> dict[str, object]:
        """The JSON form of DESIGN.md section 5."""
        return {
            "batch_id": self.batch_id,
            "operator_id": self.operator_id,
            "received_at": self.received_at.isoformat(),
            "items": [
                {
                    "item_index": item.item_index,
                    "item_id": item.item_id,
                    "status": "accepted" if item.accepted else "rejected",
                    "reference": item.reference,
                    "errors": [
                        {"code": e.code, "path": e.path, "message": e.message} for e in item.errors
                    ],
                    "findings": [finding_dict(finding) for finding in item.findings],
                }
                for item in self.items
            ],
        }
