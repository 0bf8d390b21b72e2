"""What the checks look at: a small view of one item, built from a domain record.

Intake does not build views: building a :class:`PostalItem` costs about as much as
validating the item, so intake scans the parsed elements instead
(:mod:`connector.core.checks.scan`), reading the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.core.model import Party, PostalItem

__all__ = ["ItemView", "LineView", "PartyView", "view_of_item"]

#: Where items sit in an item batch (positions are 1-based and always given).
DEFAULT_ITEMS_PATH = "/ItemBatch/Items"


@dataclass(frozen=True, slots=True)
class PartyView:
    """Sender or addressee: name, address and country as declared."""

    role: str  # "Sender" or "Addressee"
    name: str
    address_text: str  # the address's values on one line, in document order
    country: str


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    hs_code: str | None


@dataclass(frozen=True, slots=True)
class ItemView:
    """One item as the checks see it."""

    index: int
    item_id: str
    category: str
    destination: str
    sender: PartyView
    addressee: PartyView
    lines: tuple[LineView, ...]
    path: str  # the item's own path, e.g. /ItemBatch/Items/Item[3]


def _party_view(role: str, party: Party) -> PartyView:
    address = party.address
    values = (*address.street, address.city, address.postcode, address.subdivision)
    text = " ".join(value for value in (*values, address.country) if value)
    return PartyView(role, party.name, text, address.country)


def view_of_item(index: int, item: PostalItem, items_path: str = DEFAULT_ITEMS_PATH) -> ItemView:
    """The view of a domain record at 0-based ``index`` of its batch."""
    return ItemView(
        index=index,
        item_id=item.item_id,
        category=item.category.value,
        destination=item.destination_country,
        sender=_party_view("Sender", item.sender),
        addressee=_party_view("Addressee", item.addressee),
        lines=tuple(LineView(line.description, line.hs_code) for line in item.lines),
        path=f"{items_path}/Item[{index + 1}]",
    )
