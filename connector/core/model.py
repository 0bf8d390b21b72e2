"""Domain records and closed vocabularies.

Records are frozen dataclasses: the core never holds an ORM object or a mutable message. Every
closed vocabulary is a ``str`` Enum whose unknown values raise :class:`UnknownCode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Self

from connector.errors import UnknownCode

__all__ = [
    "AcceptedItem",
    "Address",
    "BatchHeader",
    "ContentLine",
    "CustomsDecision",
    "ItemCategory",
    "ItemError",
    "Party",
    "PostalItem",
    "Transport",
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
    """An item that passed schema and business rules, by position and id."""

    item_index: int
    item_id: str
