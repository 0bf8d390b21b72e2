"""Realistic, reproducible item batches (``urn:ead-connector:item-batch:1``) with seeded faults.

:func:`generate_batch` is pure: no I/O, no clock and no global random state. Everything,
including the batch id and ``CreatedAt``, comes from ``random.Random(seed)``, so the same
arguments always give the same bytes.

Valid items are schema-valid and keep every business rule of :mod:`connector.core.rules`:
S10 ids with the right check digit and the operator's country, ISO countries and currencies,
line currencies equal to the item's, ``TotalValue`` equal to the sum of the line values,
``GrossWeight`` above the sum of the net weights, HS codes (chapters 01-97 except 77) on every
line except for DOCUMENTS, IOSS numbers of the form IM + EU numeric country code + 7 digits,
and the transport destination equal to the addressee's country.

A faulty item carries exactly one fault, and :class:`SeededFault` names the code validation
must report for it. Amounts are kept in minor units and weights in grams (integers), so sums
are exact and every value is written with exactly 2 (amounts) or 3 (kilograms) decimals.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import TypeVar

from lxml import etree

from connector.core.inbound import MAX_ITEMS
from connector.core.rules import RULE_CODES
from connector.core.s10 import check_digit
from connector.core.schemas import MessageKind
from connector.sample_data import (
    BY_CODE,
    CATEGORIES,
    COUNTRIES,
    DESTINATION_WEIGHT,
    DOCUMENTS,
    EU_ALPHA,
    EU_NUMERIC,
    GB_LETTERS,
    GOODS,
    GOODS_BY_HS,
    INTERNATIONAL_CARRIERS,
    MAKERS,
    NL_LETTERS,
    OPERATORS,
    PER_EUR,
    SERVICES_LETTER,
    SERVICES_PARCEL,
    WHOLE_UNITS,
    City,
    Country,
    Goods,
)

__all__ = [
    "FAULT_CODES",
    "NAMESPACE",
    "RULE_FAULT_CODES",
    "SCHEMA_FAULT_CODES",
    "SampleBatch",
    "SeededFault",
    "generate_batch",
]

NAMESPACE = MessageKind.ITEM_BATCH.namespace

#: Faults that leave the item schema-valid and break one business rule: one per rule of
#: :mod:`connector.core.rules`, in its order (the order feeds the seeded shuffle).
RULE_FAULT_CODES: tuple[str, ...] = RULE_CODES
#: Faults that make the item schema-invalid.
SCHEMA_FAULT_CODES: tuple[str, ...] = (
    "schema_pattern",
    "schema_enumeration",
    "schema_missing_element",
    "schema_unexpected_element",
    "schema_value",
)
#: Every fault kind :func:`generate_batch` can seed, by the code validation must report.
FAULT_CODES: tuple[str, ...] = RULE_FAULT_CODES + SCHEMA_FAULT_CODES

_IDENTIFIER = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


@dataclass(frozen=True, slots=True)
class SeededFault:
    """One deliberate fault: the item at ``index`` (0-based) must be reported with ``code``."""

    index: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """A generated item batch and the faults seeded in it (sorted by index)."""

    xml: bytes
    batch_id: str
    operator_id: str
    item_count: int
    faults: tuple[SeededFault, ...]


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


# --- the item model the generator fills, mutates (faults) and renders ---------------------


@dataclass(slots=True)
class _Party:
    name: str | None
    streets: list[str]
    city: str
    postcode: str | None
    subdivision: str | None
    country: str
    email: str | None = None
    phone: str | None = None
    eori: str | None = None


@dataclass(slots=True)
class _Line:
    description: str
    quantity: int
    grams: int
    value: int  # minor units
    currency: str
    hs: str | None
    origin: str


@dataclass(slots=True)
class _Item:
    item_id: str
    category: str
    posting_date: str
    office: str | None
    sender: _Party
    addressee: _Party
    gross_grams: int
    total: int  # minor units
    currency: str
    postage: int | None
    insured: int | None
    ioss: str | None
    importer_eori: str | None
    lines: list[_Line]
    departure: str
    airport: str | None
    departure_time: str | None
    destination: str
    carrier: str | None
    flight: str | None
    receptacle: str | None
    comments: str | None
    gross_text: str | None = None  # overrides the formatted gross weight (schema_value fault)
    colour: str | None = None  # an element the schema does not know (unexpected element fault)


def _amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _kg(grams: int) -> str:
    return f"{grams // 1000}.{grams % 1000:03d}"


# --- generation ----------------------------------------------------------------------------

_T = TypeVar("_T")

#: Cumulative weights of CATEGORIES (in its order) and of 1..5 content lines per item.
_CATEGORY_CUM = tuple(accumulate((55, 20, 7, 7, 6, 5)))
_LINE_COUNT_CUM = tuple(accumulate((50, 25, 13, 7, 5)))


class _Rng:
    """Fast draws from one ``random.Random`` (``randint``/``choice`` cost ~1 us each in Python)."""

    __slots__ = ("random",)

    def __init__(self, base: random.Random) -> None:
        self.random = base.random

    def between(self, low: int, high: int) -> int:
        """An integer in ``low..high`` (both included)."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[int(self.random() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.random() < p

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def weighted(self, cumulative: Sequence[int]) -> int:
        """An index drawn with the given cumulative weights."""
        return bisect_right(cumulative, self.random() * cumulative[-1])


class _Generator:
    """Builds the items of one batch from one random stream."""

    def __init__(self, rng: _Rng, country: Country, created: datetime) -> None:
        self.rng = rng
        self.origin = country
        self.created = created
        self.year = created.year
        destinations = [
            c.code
            for c in COUNTRIES
            if c.code != country.code and not (country.eu and c.eu)  # no intra-EU customs
        ]
        self.destinations = tuple(destinations)
        self.destination_cum = tuple(accumulate(DESTINATION_WEIGHT[c] for c in destinations))
        self.eu_destinations = tuple(c.code for c in COUNTRIES if c.eu and c.code != country.code)
        self.posting_dates = tuple(
            (created - timedelta(days=d)).date().isoformat() for d in range(4)
        )
        self.company_addresses: dict[str, tuple[list[str], City, str | None]] = {}
        self.dispatches: dict[tuple[str, str], int] = {}
        self.receptacle_weights: dict[tuple[str, str, int], int] = {}

    # -- parties

    def _postcode(self, country: Country, city: City) -> str | None:
        rng = self.rng
        kind = country.postcode
        if kind == "none":
            return None
        value = rng.between(city.low, city.high)
        if kind == "n5":
            return f"{value:05d}"
        if kind in ("n4", "n6", "n7"):
            return f"{value:0{kind[1]}d}"
        if kind == "jp":
            return f"{value:03d}-{rng.between(0, 9999):04d}"
        if kind == "br":
            return f"{value:05d}-{rng.between(0, 999):03d}"
        if kind == "pl":
            return f"{value // 1000:02d}-{value % 1000:03d}"
        if kind == "gr":
            return f"{value // 100:03d} {value % 100:02d}"
        if kind == "nl":
            return f"{value:04d} {rng.pick(NL_LETTERS)}{rng.pick(NL_LETTERS)}"
        # gb: outward code (area + district), inward code (sector + unit)
        inward = f"{rng.between(1, 9)}{rng.pick(GB_LETTERS)}{rng.pick(GB_LETTERS)}"
        return f"{city.prefix}{value} {inward}"

    def _address(self, country: Country) -> tuple[list[str], City, str | None]:
        rng = self.rng
        city = rng.pick(country.cities)
        street = country.street_format.format(
            street=rng.pick(city.streets),
            n=rng.between(1, 180),
            n4=rng.between(1, 9899),
            a=rng.between(1, 9),
            b=rng.between(1, 30),
            c=rng.between(1, 20),
            apt=rng.between(1, 140),
        )
        streets = [street]
        if country.extra_line == "ae":
            streets.append(f"ص.ب. {rng.between(1000, 99999)}")
        elif country.extra_line == "us" and rng.chance(0.25):
            streets.append(f"Apt {rng.between(1, 40)}{rng.pick('ABCDEF')}")
        return streets, city, self._postcode(country, city)

    def _party(self, country: Country, *, company: bool, contact: float) -> _Party:
        rng = self.rng
        eori = None
        if company:
            name, slug = rng.pick(country.companies)
            local = rng.pick(("info", "orders", "sales", "export"))
            domain = f"{slug}.{country.tld}"
            if country.eu and rng.chance(0.5):
                eori = f"{country.code}{rng.between(10**11, 10**12 - 1)}"
        else:
            female = rng.chance(0.5)
            given, given_latin = rng.pick(country.women if female else country.men)
            surname = rng.pick(country.surnames)
            family = surname[1] if female else surname[0]
            family_latin = surname[3] if female else surname[2]
            name = country.name_format.format(g=given, s=family)
            local = f"{given_latin}.{family_latin}".lower().replace(" ", "")
            if rng.chance(0.4):
                local += str(rng.between(1, 99))
            domain = rng.pick(country.mail)
        if company:  # a business keeps one address across the batch
            known = self.company_addresses.get(name)
            if known is None:
                known = self.company_addresses[name] = self._address(country)
            streets, city, postcode = known
        else:
            streets, city, postcode = self._address(country)
        party = _Party(name, list(streets), city.name, postcode, city.subdivision, country.code)
        party.eori = eori
        if rng.chance(contact):
            party.email = f"{local}@{domain}"
        if rng.chance(contact):
            party.phone = f"+{country.calling} {rng.between(20, 999)} {rng.between(1000, 9999999)}"
        return party

    # -- contents

    def _money(self, eur_cents: float, currency: str) -> int:
        minor = round(eur_cents * PER_EUR[currency])
        if currency in WHOLE_UNITS:
            minor = max(100, round(minor, -2))
        return max(1, minor)

    def _goods_lines(self, category: str, destination: str, currency: str) -> list[_Line]:
        rng = self.rng
        count = 1 + rng.weighted(_LINE_COUNT_CUM)
        chosen: list[Goods] = []
        specialties = self.origin.specialties
        while len(chosen) < count:
            if specialties and rng.chance(0.35):
                goods = GOODS[rng.pick(GOODS_BY_HS[rng.pick(specialties)])]
            else:
                goods = rng.pick(GOODS)
            if goods not in chosen:
                chosen.append(goods)
        lines = []
        gift = category in ("GIFT", "OTHER")
        sender = self.origin.code
        for goods in chosen:
            quantity = 1 if rng.chance(0.6) else rng.between(1, goods.max_quantity)
            if gift:
                quantity = min(quantity, 2)
            unit = self._money(goods.value_eur_cents * rng.uniform(0.7, 1.3), currency)
            grams = max(1, round(quantity * goods.grams * rng.uniform(0.85, 1.15)))
            hs = goods.hs
            if rng.chance(0.25):
                if destination in EU_ALPHA and goods.eu_code:
                    hs = goods.eu_code
                elif destination == "US" and goods.us_code:
                    hs = goods.us_code
            roll = rng.random()
            if sender == "CN" or roll < 0.35:
                origin = sender
            elif roll < 0.7:
                origin = "CN"
            else:
                origin = rng.pick(MAKERS)
            lines.append(
                _Line(goods.description, quantity, grams, quantity * unit, currency, hs, origin)
            )
        return lines

    def _document_lines(self, currency: str) -> list[_Line]:
        rng = self.rng
        first = rng.between(0, len(DOCUMENTS) - 1)
        picks = [first] if rng.chance(0.8) else [first, (first + 1) % len(DOCUMENTS)]
        origin = self.origin.code
        return [
            _Line(DOCUMENTS[n], rng.between(1, 3), rng.between(15, 250), 0, currency, None, origin)
            for n in picks
        ]

    # -- item

    def item(self, serial: int, kind: str | None) -> _Item:
        rng = self.rng
        origin = self.origin
        category = CATEGORIES[rng.weighted(_CATEGORY_CUM)]
        if category == "DOCUMENTS" and kind in ("hs_code_missing", "hs_chapter_unknown"):
            category = "SALE_OF_GOODS"
        destination = self.destinations[rng.weighted(self.destination_cum)]
        if kind == "ioss_invalid" and not origin.eu:
            destination = rng.pick(self.eu_destinations)
        target = BY_CODE[destination]
        currency = origin.currency
        business = category in ("SALE_OF_GOODS", "COMMERCIAL_SAMPLE")
        sender = self._party(origin, company=business and rng.chance(0.8), contact=0.6)
        addressee = self._party(target, company=category == "RETURNED_GOODS", contact=0.5)
        if category == "DOCUMENTS":
            lines = self._document_lines(currency)
        else:
            lines = self._goods_lines(category, destination, currency)
        total = sum(line.value for line in lines)
        net = sum(line.grams for line in lines)
        if category == "DOCUMENTS":
            gross = net + rng.between(10, 40)
        else:
            gross = net + max(30, round(net * rng.uniform(0.05, 0.2)))
        service = rng.pick(SERVICES_PARCEL if gross > 2000 else SERVICES_LETTER)
        digits = f"{serial:08d}"
        item_id = f"{service}{digits}{check_digit(digits)}{origin.code}"
        total_eur = total / 100 / PER_EUR[currency]
        postage = insured = None
        if rng.chance(0.5):
            postage = self._money(300 + gross * (0.8 if gross > 2000 else 1.5), currency)
        if service[0] == "V" or (service[0] in "CE" and rng.chance(0.15)):
            whole = 100 * (10 if currency not in WHOLE_UNITS else 1000)
            insured = max(whole, -(-total // whole) * whole)
        ioss = importer_eori = None
        if destination in EU_ALPHA and not origin.eu:
            if category == "SALE_OF_GOODS" and total_eur <= 150 and rng.chance(0.6):
                ioss = f"IM{rng.pick(EU_NUMERIC)}{rng.between(0, 10**7 - 1):07d}"
            if rng.chance(0.08):
                importer_eori = f"{destination}{rng.between(10**11, 10**12 - 1)}"
        comments = None
        roll = rng.random()
        if category == "SALE_OF_GOODS" and roll < 0.5:
            comments = f"Invoice INV-{self.year}-{rng.between(1, 99999):05d}"
        elif category == "COMMERCIAL_SAMPLE" and roll < 0.6:
            comments = f"Pro forma invoice PF-{self.year}-{rng.between(1, 9999):04d}"
        elif category == "RETURNED_GOODS" and roll < 0.8:
            comments = f"Return of goods, RMA-{rng.between(10000, 99999)}"
        elif roll < 0.05:
            comments = f"Certificate of origin CO-{origin.code}-{rng.between(100000, 999999)}"
        hub = rng.pick(origin.hubs)
        carrier = rng.pick(origin.carriers if rng.chance(0.75) else INTERNATIONAL_CARRIERS)
        receptacle = self._receptacle(origin.code, hub, target, service, insured is not None)
        departure_time = flight = None
        if rng.chance(0.9):
            departs = self.created + timedelta(minutes=rng.between(120, 2400))
            departure_time = departs.isoformat() + "Z"
            flight = f"{carrier}{rng.between(1, 9899)}"
        return _Item(
            item_id=item_id,
            category=category,
            posting_date=rng.pick(self.posting_dates),
            office=f"{origin.code}{hub}{rng.pick('ABC')}" if rng.chance(0.4) else None,
            sender=sender,
            addressee=addressee,
            gross_grams=gross,
            total=total,
            currency=currency,
            postage=postage,
            insured=insured,
            ioss=ioss,
            importer_eori=importer_eori,
            lines=lines,
            departure=origin.code,
            airport=hub,
            departure_time=departure_time,
            destination=destination,
            carrier=carrier if flight else None,
            flight=flight,
            receptacle=receptacle,
            comments=comments,
        )

    def _receptacle(
        self, origin: str, hub: str, target: Country, service: str, insured: bool
    ) -> str:
        """A UPU S9-style receptacle id (29 characters): offices of exchange, mail category and
        subclass, year digit, dispatch and receptacle numbers, flags, weight in hectograms."""
        rng = self.rng
        subclass = {"E": "EM", "C": "CN"}.get(service[0], "UN")
        key = (target.code, subclass)
        dispatch = self.dispatches.get(key)
        if dispatch is None:
            dispatch = self.dispatches[key] = rng.between(1, 9999)
        number = rng.between(1, 30)
        weight = self.receptacle_weights.get((*key, number))
        if weight is None:
            weight = self.receptacle_weights[(*key, number)] = rng.between(20, 300)
        return (
            f"{origin}{hub}A{target.code}{target.hubs[0]}AA{subclass}{self.year % 10}"
            f"{dispatch:04d}{number:03d}0{int(insured)}{weight:04d}"
        )


# --- faults --------------------------------------------------------------------------------

_UNKNOWN_COUNTRIES = ("QQ", "XZ", "ZZ", "QM", "XY")  # unassigned / user-assigned in ISO 3166-1
_UNKNOWN_CURRENCIES = ("QQQ", "XYZ", "ZZZ", "EUX")  # not in ISO 4217
_BAD_CHAPTERS = ("00", "77", "98", "99")
_BAD_CATEGORIES = ("PRESENT", "MIXED_CONTENT", "MERCHANDISE")


def _assign_faults(rng: random.Random, items: int, count: int) -> dict[int, str]:
    """Which item gets which fault: every kind in turn, in a shuffled order.

    A duplicate id needs an earlier valid item to copy; where none exists the kind moves to a
    later faulty item, or (when every item is faulty) gives way to another kind.
    """
    if count == 0:
        return {}
    indices = sorted(rng.sample(range(items), count))
    order = list(FAULT_CODES)
    rng.shuffle(order)
    kinds = [order[k % len(order)] for k in range(count)]
    rng.shuffle(kinds)
    faulty = set(indices)
    first_valid = next((i for i in range(items) if i not in faulty), items)
    eligible = {p for p, index in enumerate(indices) if index > first_valid}
    free = [p for p in sorted(eligible) if kinds[p] != "duplicate_item_id"]
    others = [code for code in order if code != "duplicate_item_id"]
    for p, kind in enumerate(kinds):
        if kind == "duplicate_item_id" and p not in eligible:
            if free:
                q = free.pop(rng.randrange(len(free)))
                kinds[p], kinds[q] = kinds[q], kinds[p]
            else:
                kinds[p] = others[p % len(others)]
    return dict(zip(indices, kinds, strict=True))


def _pick_line(rng: _Rng, item: _Item) -> tuple[int, _Line]:
    n = rng.between(0, len(item.lines) - 1)
    return n, item.lines[n]


def _seed_fault(rng: _Rng, item: _Item, kind: str, valid_ids: list[str]) -> str:
    """Break ``item`` in the way ``kind`` names; returns the human description."""
    if kind == "s10_check_digit":
        right = int(item.item_id[10])
        wrong = (right + rng.between(1, 9)) % 10
        item.item_id = f"{item.item_id[:10]}{wrong}{item.item_id[11:]}"
        return f"ItemId {item.item_id!r} has check digit {wrong}; the right one is {right}"
    if kind == "country_unknown":
        n, line = _pick_line(rng, item)
        line.origin = rng.pick(_UNKNOWN_COUNTRIES)
        return f"line {n + 1} OriginCountry {line.origin!r} is not an ISO 3166-1 country"
    if kind == "currency_unknown":
        code = rng.pick(_UNKNOWN_CURRENCIES)
        item.currency = code
        for line in item.lines:
            line.currency = code
        return f"Currency {code!r} (item and lines) is not an ISO 4217 currency"
    if kind == "currency_mismatch":
        n, line = _pick_line(rng, item)
        line.currency = rng.pick([c for c in PER_EUR if c != item.currency])
        return (
            f"line {n + 1} Currency {line.currency!r} differs from item Currency {item.currency!r}"
        )
    if kind == "value_total_mismatch":
        right = item.total
        item.total += rng.pick((1000, 1, 100, 500, 2500))
        return f"TotalValue {_amount(item.total)} is not the sum of line values {_amount(right)}"
    if kind == "weight_exceeds_gross":
        n, line = _pick_line(rng, item)
        net = sum(each.grams for each in item.lines)
        line.grams += item.gross_grams - net + rng.between(1, 250)
        total = sum(each.grams for each in item.lines)
        return f"net weights add up to {_kg(total)} kg, above GrossWeight {_kg(item.gross_grams)}"
    if kind == "duplicate_item_id":
        item.item_id = rng.pick(valid_ids)
        return f"ItemId {item.item_id!r} repeats the id of an earlier valid item"
    if kind == "ioss_invalid":
        good = f"{rng.pick(EU_NUMERIC)}{rng.between(0, 10**7 - 1):07d}"
        item.ioss = rng.pick(
            (f"IM{good[:5]}", f"XX{good}", f"IM{good[:9]}", f"IM{good}{rng.between(0, 9)}")
        )
        return f"IossNumber {item.ioss!r} is not IM + 3-digit country code + 7 digits"
    if kind == "hs_code_missing":
        n, line = _pick_line(rng, item)
        line.hs = None
        return f"line {n + 1} of a {item.category} item has no HsCode"
    if kind == "hs_chapter_unknown":
        n, line = _pick_line(rng, item)
        line.hs = rng.pick(_BAD_CHAPTERS) + (line.hs or "000000")[2:]
        return f"line {n + 1} HsCode {line.hs!r} has no HS chapter {line.hs[:2]!r}"
    if kind == "destination_mismatch":
        taken = {item.addressee.country, item.departure}
        item.destination = rng.pick([c.code for c in COUNTRIES if c.code not in taken])
        return (
            f"Transport DestinationCountry {item.destination!r} is not the addressee's "
            f"country {item.addressee.country!r}"
        )
    if kind == "schema_pattern":
        coded = [line for line in item.lines if line.hs]
        if coded and rng.random() < 0.5:
            line = rng.pick(coded)
            hs = line.hs or ""
            letters = "".join(rng.pick("ABOIS") for _ in range(2))
            line.hs = hs[:2] + letters + hs[4:]
            return f"HsCode {line.hs!r} breaks the pattern [0-9]{{6,10}}"
        item.currency = item.currency.lower()
        for line in item.lines:
            line.currency = item.currency
        return f"Currency {item.currency!r} (item and lines) breaks the pattern [A-Z]{{3}}"
    if kind == "schema_enumeration":
        item.category = rng.pick(_BAD_CATEGORIES)
        return f"Category {item.category!r} is not one of the CN 22/CN 23 categories"
    if kind == "schema_missing_element":
        item.sender.name = None
        return "Sender/Name is missing"
    if kind == "schema_unexpected_element":
        item.colour = rng.pick(("red", "blue", "green"))
        return "unexpected element Colour after Category"
    if kind == "schema_value":
        if rng.random() < 0.5:
            item.gross_text = f"{_kg(item.gross_grams)}{rng.between(1, 9)}"
            return f"GrossWeight {item.gross_text!r} has more than 3 decimals"
        n, line = _pick_line(rng, item)
        line.quantity = 0
        return f"line {n + 1} Quantity '0' is not a positive integer"
    raise AssertionError(kind)  # pragma: no cover


# --- rendering -----------------------------------------------------------------------------
# Items are written as text (one per line) and the document is then parsed and serialized by
# lxml: building ~45 elements per item with SubElement costs about 3x more.


def _esc(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _render_party(out: list[str], tag: str, party: _Party) -> None:
    out.append(f"<{tag}>")
    if party.name is not None:
        out.append(f"<Name>{_esc(party.name)}</Name>")
    out.append("<Address>")
    out.extend(f"<Street>{_esc(street)}</Street>" for street in party.streets)
    out.append(f"<City>{_esc(party.city)}</City>")
    if party.postcode is not None:
        out.append(f"<Postcode>{party.postcode}</Postcode>")
    if party.subdivision is not None:
        out.append(f"<Subdivision>{_esc(party.subdivision)}</Subdivision>")
    out.append(f"<Country>{party.country}</Country></Address>")
    if party.email is not None:
        out.append(f"<Email>{_esc(party.email)}</Email>")
    if party.phone is not None:
        out.append(f"<Phone>{party.phone}</Phone>")
    if party.eori is not None:
        out.append(f"<Eori>{party.eori}</Eori>")
    out.append(f"</{tag}>")


def _render(out: list[str], item: _Item) -> None:
    """Append ``item`` as XML text, elements in the order of the XSD sequences."""
    out.append(f"<Item><ItemId>{item.item_id}</ItemId><Category>{item.category}</Category>")
    if item.colour is not None:
        out.append(f"<Colour>{item.colour}</Colour>")
    out.append(f"<PostingDate>{item.posting_date}</PostingDate>")
    if item.office is not None:
        out.append(f"<OfficeOfOrigin>{item.office}</OfficeOfOrigin>")
    _render_party(out, "Sender", item.sender)
    _render_party(out, "Addressee", item.addressee)
    gross = item.gross_text or _kg(item.gross_grams)
    out.append(
        f"<GrossWeight>{gross}</GrossWeight><TotalValue>{_amount(item.total)}</TotalValue>"
        f"<Currency>{item.currency}</Currency>"
    )
    if item.postage is not None:
        out.append(f"<Postage>{_amount(item.postage)}</Postage>")
    if item.insured is not None:
        out.append(f"<InsuredValue>{_amount(item.insured)}</InsuredValue>")
    if item.ioss is not None or item.importer_eori is not None:
        out.append("<Importer>")
        if item.ioss is not None:
            out.append(f"<IossNumber>{item.ioss}</IossNumber>")
        if item.importer_eori is not None:
            out.append(f"<Eori>{item.importer_eori}</Eori>")
        out.append("</Importer>")
    out.append("<Contents>")
    for line in item.lines:
        hs = f"<HsCode>{line.hs}</HsCode>" if line.hs is not None else ""
        out.append(
            f"<Line><Description>{_esc(line.description)}</Description>"
            f"<Quantity>{line.quantity}</Quantity><NetWeight>{_kg(line.grams)}</NetWeight>"
            f"<Value>{_amount(line.value)}</Value><Currency>{line.currency}</Currency>{hs}"
            f"<OriginCountry>{line.origin}</OriginCountry></Line>"
        )
    out.append(f"</Contents><Transport><DepartureCountry>{item.departure}</DepartureCountry>")
    if item.airport is not None:
        out.append(f"<DepartureAirport>{item.airport}</DepartureAirport>")
    if item.departure_time is not None:
        out.append(f"<DepartureTime>{item.departure_time}</DepartureTime>")
    out.append(f"<DestinationCountry>{item.destination}</DestinationCountry>")
    if item.carrier is not None:
        out.append(f"<Carrier>{item.carrier}</Carrier>")
    if item.flight is not None:
        out.append(f"<FlightNumber>{item.flight}</FlightNumber>")
    if item.receptacle is not None:
        out.append(f"<ReceptacleId>{item.receptacle}</ReceptacleId>")
    out.append("</Transport>")
    if item.comments is not None:
        out.append(f"<Comments>{_esc(item.comments)}</Comments>")
    out.append("</Item>\n")


# --- entry point ---------------------------------------------------------------------------


def _operator_country(operator_id: str) -> Country | None:
    """The country of a known operator id, or of an id that starts with "CC-" (or "CC_" ...)."""
    for code, known in OPERATORS.items():
        if known == operator_id:
            return BY_CODE[code]
    match = re.match(r"([A-Za-z]{2})(?:[-_.:]|$)", operator_id)
    return BY_CODE.get(match.group(1).upper()) if match else None


def generate_batch(
    items: int,
    *,
    invalid_ratio: float = 0.0,
    seed: int = 0,
    operator_id: str | None = None,
) -> SampleBatch:
    """A realistic item batch of ``items`` items, ``round(items * invalid_ratio)`` of them faulty.

    The same arguments give the same bytes. ``operator_id`` defaults to a designated operator
    chosen by the seed; an id such as ``"DE-POST"`` fixes the sender country (DE), and an id
    without a known country prefix gets a seed-chosen sender country.

    Raises:
        ValueError: ``items`` is not in 1..10000, ``invalid_ratio`` not in 0..1, or
            ``operator_id`` is not an Identifier (1-64 of letters, digits and ``._:-``).
    """
    if isinstance(items, bool) or not isinstance(items, int) or not 1 <= items <= MAX_ITEMS:
        raise ValueError(f"items must be an integer from 1 to {MAX_ITEMS}, got {items!r}")
    ratio = float(invalid_ratio)
    if math.isnan(ratio) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"invalid_ratio must be between 0 and 1, got {invalid_ratio!r}")
    if operator_id is not None and not _IDENTIFIER.fullmatch(operator_id):
        raise ValueError(f"operator_id must be 1-64 of A-Z a-z 0-9 . _ : -, got {operator_id!r}")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    country = rng.choice(COUNTRIES)
    if operator_id is None:
        operator_id = OPERATORS[country.code]
    else:
        country = _operator_country(operator_id) or country
    created = datetime(2026, 1, 5) + timedelta(minutes=rng.randrange(355 * 24 * 60))
    batch_id = f"{country.code}-{created:%Y%m%d}-{rng.randrange(16**8):08X}"
    faults_by_index = _assign_faults(rng, items, round(items * ratio))

    out = [
        f'<ItemBatch xmlns="{NAMESPACE}"><Header><BatchId>{batch_id}</BatchId>'
        f"<OperatorId>{operator_id}</OperatorId>"
        f"<CreatedAt>{created.isoformat()}Z</CreatedAt></Header><Items>\n"
    ]
    fast = _Rng(rng)
    generator = _Generator(fast, country, created)
    serials = rng.sample(range(10**8), items)
    valid_ids: list[str] = []
    faults: list[SeededFault] = []
    for index in range(items):
        kind = faults_by_index.get(index)
        item = generator.item(serials[index], kind)
        if kind is None:
            valid_ids.append(item.item_id)
        else:
            faults.append(SeededFault(index, kind, _seed_fault(fast, item, kind, valid_ids)))
        _render(out, item)
    out.append("</Items></ItemBatch>")
    root = etree.fromstring("".join(out).encode(), _PARSER)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return SampleBatch(
        xml=xml,
        batch_id=batch_id,
        operator_id=operator_id,
        item_count=items,
        faults=tuple(faults),
    )
