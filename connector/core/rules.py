"""Business rules beyond the XSD, checked on schema-valid items.

The rules run in one pass over the items. They rely on the schema having accepted each item
(element order and presence), so they read children by position and never re-validate
structure. Reference data comes from maintained sources, not hand-typed lists: ISO 3166-1
countries and ISO 4217 currencies from pycountry; HS chapters are 01-97 except the reserved 77.

=========================  ==========================================================
code                       fault
=========================  ==========================================================
s10_check_digit            the S10 item id's check digit is wrong
country_unknown            a country code is not an ISO 3166-1 alpha-2 country
currency_unknown           a currency code is not an ISO 4217 currency
currency_mismatch          a content line's currency differs from the item's
value_total_mismatch       the content line values do not add up to the total value
weight_exceeds_gross       the content net weights add up to more than the gross weight
duplicate_item_id          the item id already occurs earlier in the same batch
ioss_invalid               the IOSS number is not IM + 3-digit country + 7 digits
hs_code_missing            a content line has no HS code (required except for documents)
hs_chapter_unknown         the HS code's chapter (first 2 digits) does not exist
destination_mismatch       the transport destination is not the addressee's country
=========================  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from functools import cache

import pycountry
from lxml import etree

from connector.core.model import ItemError
from connector.core.s10 import check_digit

__all__ = ["RULE_CODES", "PathFinder", "check_items", "element_path", "judge_items"]

RULE_CODES: tuple[str, ...] = (
    "s10_check_digit",
    "country_unknown",
    "currency_unknown",
    "currency_mismatch",
    "value_total_mismatch",
    "weight_exceeds_gross",
    "duplicate_item_id",
    "ioss_invalid",
    "hs_code_missing",
    "hs_chapter_unknown",
    "destination_mismatch",
)

HS_CHAPTERS = frozenset(f"{chapter:02d}" for chapter in range(1, 98) if chapter != 77)
_IOSS_FORM = re.compile(r"IM([0-9]{3})[0-9]{7}")
_ZERO = Decimal(0)


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes of all countries."""
    return frozenset(country.alpha_2 for country in pycountry.countries)


@cache
def _country_numeric_codes() -> frozenset[str]:
    return frozenset(country.numeric for country in pycountry.countries)


@cache
def currency_codes() -> frozenset[str]:
    """ISO 4217 alphabetic codes of all currencies."""
    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def element_path(node: etree._Element) -> str:
    """XPath-like path of ``node`` with local names and 1-based positions where repeated."""
    return PathFinder()(node)


class PathFinder:
    """:func:`element_path` for many nodes of one tree.

    A position among same-name siblings needs a walk over the siblings, and walking the
    10,000 items of a batch costs about a millisecond (each is a cache miss). The finder lists
    each parent's children of one name once and keeps the listing, so the paths of many
    faulty items cost one walk, not one each.
    """

    __slots__ = ("_positions",)

    def __init__(self) -> None:
        self._positions: dict[tuple[etree._Element, str], dict[etree._Element, int]] = {}

    def __call__(self, node: etree._Element) -> str:
        steps: list[str] = []
        current: etree._Element | None = node
        while current is not None:
            name = etree.QName(current).localname
            parent = current.getparent()
            if parent is not None:
                tag = current.tag
                same = self._positions.get((parent, tag))
                if same is None:
                    same = {child: at for at, child in enumerate(parent.iterchildren(tag), 1)}
                    self._positions[parent, tag] = same
                if len(same) > 1:
                    name = f"{name}[{same[current]}]"
            steps.append(name)
            current = parent
        return "/" + "/".join(reversed(steps))


def _text(node: etree._Element) -> str:
    return (node.text or "").strip()


def _known(text: str | None, codes: frozenset[str]) -> bool:
    """Whether ``text``, white space collapsed as by the schema, is one of ``codes``."""
    return text in codes or (text is not None and text.strip() in codes)


class _Checker:
    """Judges the items of one message (the namespace decides the tags).

    A good item costs one read of each value it is judged on, in one loop that binds the
    tags and code sets once per batch: no generator, closure or path is made for it. Only a
    fault builds its :class:`ItemError` (and the element's path).
    """

    __slots__ = ("countries", "currencies", "destination", "ioss", "numeric")

    def __init__(self, namespace: str) -> None:
        def tag(name: str) -> str:
            return f"{{{namespace}}}{name}"

        self.countries = country_codes()
        self.currencies = currency_codes()
        self.numeric = _country_numeric_codes()
        self.ioss = tag("IossNumber")
        self.destination = tag("DestinationCountry")

    def check(
        self, items: Sequence[etree._Element], skip: frozenset[int]
    ) -> tuple[list[ItemError], list[str], list[str]]:
        """Faults of the schema-valid ``items`` whose index is not in ``skip``, in item order,
        and each item's id and transport destination (white space stripped; empty for a
        skipped item)."""
        out = _Faults()
        ids: list[str] = []
        destinations: list[str] = []
        seen: dict[str, int] = {}
        countries, currencies = self.countries, self.currencies
        destination_tag = self.destination
        for index, item in enumerate(items):
            if index in skip:
                ids.append("")
                destinations.append("")
                continue
            # Item: ItemId, Category, PostingDate, OfficeOfOrigin?, Sender, Addressee,
            # GrossWeight, TotalValue, Currency, Postage?, InsuredValue?, Importer?, Contents,
            # Transport, Comments?
            # The optional elements are told apart by whether they have children (Sender,
            # Transport and Importer do, the others are text): reading ``tag`` builds a
            # string, and would cost a tenth of the pass.
            id_node = item[0]
            item_id = (id_node.text or "").strip()
            ids.append(item_id)
            at = 3 if len(item[3]) else 4  # Sender, else OfficeOfOrigin
            end = -1 if len(item[-1]) else -2  # Transport, else Comments

            expected = check_digit(item_id[2:10])
            if expected != int(item_id[10]):
                out.add(
                    index,
                    item_id,
                    id_node,
                    "s10_check_digit",
                    f"check digit of item id {item_id!r} should be {expected}, not {item_id[10]}",
                )
            if item_id[11:] not in countries:
                out.add(
                    index,
                    item_id,
                    id_node,
                    "country_unknown",
                    f"the issuer country {item_id[11:]!r} of item id {item_id!r} "
                    "is not an ISO 3166-1 alpha-2 country",
                )

            sender_country = item[at][1][-1]  # Party/Address/Country
            addressee_country = item[at + 1][1][-1]
            transport = item[end]
            departure_country = transport[0]
            # Transport: DepartureCountry, DepartureAirport?, DepartureTime?,
            # DestinationCountry, Carrier?, FlightNumber?, ReceptacleId?: with all seven or
            # only the two countries, the destination's place is known; else the tags tell.
            size = len(transport)
            destination_country = transport[3 if size == 7 else 1]
            if 2 < size < 7:
                while destination_country.tag != destination_tag:
                    destination_country = destination_country.getnext()  # type: ignore[assignment]
            addressee = addressee_country.text
            destination = destination_country.text
            destinations.append((destination or "").strip())
            if not (
                sender_country.text in countries
                and addressee in countries
                and departure_country.text in countries
                and destination in countries
            ):
                for node in (sender_country, addressee_country, departure_country):
                    if not _known(node.text, countries):
                        out.unknown_country(index, item_id, node)
                if not _known(destination, countries):
                    out.unknown_country(index, item_id, destination_country)
            if destination != addressee and _text(destination_country) != _text(addressee_country):
                out.add(
                    index,
                    item_id,
                    destination_country,
                    "destination_mismatch",
                    f"transport destination {_text(destination_country)!r} is not the "
                    f"addressee's country {_text(addressee_country)!r}",
                )

            currency_node = item[at + 4]
            currency = (currency_node.text or "").strip()
            if currency not in currencies:
                out.unknown_currency(index, item_id, currency_node)

            category = item[1]
            needs_hs = category.text != "DOCUMENTS" and _text(category) != "DOCUMENTS"
            total_value = net_weight = _ZERO
            # Contents: 1 to 99 Line; stepping from one to the next costs less than an iterator.
            line: etree._Element | None = item[end - 1][0]
            while line is not None:
                # Line: Description, Quantity, NetWeight, Value, Currency, HsCode?,
                # OriginCountry. Decimal() ignores surrounding white space, as the schema does.
                net_weight += Decimal(line[2].text)  # type: ignore[arg-type]
                total_value += Decimal(line[3].text)  # type: ignore[arg-type]
                currency_line = line[4]
                if currency_line.text != currency:
                    line_currency = _text(currency_line)
                    if line_currency not in currencies:
                        out.unknown_currency(index, item_id, currency_line)
                    elif line_currency != currency:
                        out.add(
                            index,
                            item_id,
                            currency_line,
                            "currency_mismatch",
                            f"line currency {line_currency!r} differs from the item "
                            f"currency {currency!r}; declare all lines in the item's "
                            "currency",
                        )
                hs_node = line[5] if len(line) == 7 else None  # HsCode is the optional one
                if hs_node is None:
                    if needs_hs:
                        out.add(
                            index,
                            item_id,
                            line,
                            "hs_code_missing",
                            "content line has no HS code; an HS code of 6 to 10 digits "
                            "is required for every category except DOCUMENTS",
                        )
                elif (hs_node.text or "")[:2] not in HS_CHAPTERS and _text(hs_node)[
                    :2
                ] not in HS_CHAPTERS:
                    out.add(
                        index,
                        item_id,
                        hs_node,
                        "hs_chapter_unknown",
                        f"HS code {_text(hs_node)!r} has chapter {_text(hs_node)[:2]!r}; "
                        "HS chapters are 01 to 97 (77 is reserved)",
                    )
                origin = line[-1]
                if origin.text not in countries and not _known(origin.text, countries):
                    out.unknown_country(index, item_id, origin)
                line = line.getnext()

            total_node = item[at + 3]
            if Decimal(total_node.text) != total_value:  # type: ignore[arg-type]
                out.add(
                    index,
                    item_id,
                    total_node,
                    "value_total_mismatch",
                    f"total value {_text(total_node)} is not the sum of the content line "
                    f"values ({total_value})",
                )
            gross_node = item[at + 2]
            if net_weight > Decimal(gross_node.text):  # type: ignore[arg-type]
                out.add(
                    index,
                    item_id,
                    gross_node,
                    "weight_exceeds_gross",
                    f"content net weights add up to {net_weight} kg, more than the gross "
                    f"weight {_text(gross_node)} kg",
                )

            importer = item[end - 2]
            # Importer: IossNumber?, Eori?
            if len(importer):  # an Importer with children (the elements before are text)
                self._ioss(index, item_id, importer[0], out)

            first = seen.setdefault(item_id, index)
            if first != index:
                out.add(
                    index,
                    item_id,
                    id_node,
                    "duplicate_item_id",
                    f"item id {item_id!r} already occurs at position {first} of this batch",
                )
        return out.errors, ids, destinations

    def _ioss(self, index: int, item_id: str, node: etree._Element, out: _Faults) -> None:
        """The IOSS rule, when ``node`` (an Importer's first child) is an IossNumber."""
        if node.tag != self.ioss:
            return
        form = _IOSS_FORM.fullmatch(_text(node))
        if form is None or form.group(1) not in self.numeric:
            out.add(
                index,
                item_id,
                node,
                "ioss_invalid",
                f"IOSS number {_text(node)!r} must be IM, a 3-digit ISO 3166-1 numeric "
                "country code and 7 digits (e.g. IM2500000001)",
            )


class _Faults:
    """The faults of one check, their paths found by one :class:`PathFinder`."""

    __slots__ = ("_path", "errors")

    def __init__(self) -> None:
        self.errors: list[ItemError] = []
        self._path = PathFinder()

    def add(self, index: int, item_id: str, node: etree._Element, code: str, message: str) -> None:
        self.errors.append(ItemError(index, item_id, self._path(node), code, message))

    def unknown_country(self, index: int, item_id: str, node: etree._Element) -> None:
        self.add(
            index,
            item_id,
            node,
            "country_unknown",
            f"country code {_text(node)!r} is not an ISO 3166-1 alpha-2 country",
        )

    def unknown_currency(self, index: int, item_id: str, node: etree._Element) -> None:
        self.add(
            index,
            item_id,
            node,
            "currency_unknown",
            f"currency code {_text(node)!r} is not an ISO 4217 currency",
        )


@cache
def _checker(namespace: str) -> _Checker:
    return _Checker(namespace)


def check_items(
    container: etree._Element, items: Sequence[etree._Element], skip: frozenset[int]
) -> Iterator[ItemError]:
    """Business-rule errors of schema-valid ``items`` of the message ``container``.

    Items whose index is in ``skip`` (already rejected by the schema) are not judged, and
    do not count as earlier occurrences of an id.
    """
    yield from judge_items(container, items, skip)[0]


def judge_items(
    container: etree._Element, items: Sequence[etree._Element], skip: frozenset[int]
) -> tuple[list[ItemError], list[str], list[str]]:
    """:func:`check_items` as a list, with the id and the transport destination of each item
    read on the way (white space stripped; empty for an item in ``skip``), so that no caller
    reads them again."""
    return _checker(etree.QName(container).namespace or "").check(items, skip)
