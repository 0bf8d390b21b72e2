"""Agency copies: schema-valid, minimized to the allow-list, nothing else ever copied."""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from connector.adapters import keystore
from connector.core import signing
from connector.core.agency import agency_copy, minimized_fields, new_agency_copy_id
from connector.core.checks.outcome import Finding, Severity
from connector.core.declarations import Declared
from connector.core.inbound import validate_item_batch
from connector.core.schemas import MessageKind, default_registry
from connector.errors import ConfigurationError, InvalidMessage
from connector.flow.accept import incoming_items

MESSAGES = Path(__file__).parents[2] / "data" / "messages"
KIND = MessageKind.AGENCY_COPY
NS = KIND.namespace
NOW = datetime(2026, 11, 26, 10, 5, 31, tzinfo=UTC)
ITEMS = [
    incoming.item_xml
    for incoming in incoming_items(validate_item_batch((MESSAGES / "item-batch.xml").read_bytes()))
]
FIELDS = (
    "ItemId",
    "Contents/Line/HsCode",
    "Contents/Line/Description",
    "Transport/DestinationCountry",
)


def declared(*indexes: int) -> list[Declared]:
    return [
        Declared(f"EAD{index:021d}", "CH-POST", 1, ITEMS[index]) for index in indexes or (0, 1, 2)
    ]


def copy(entries: list[Declared], fields: tuple[str, ...] = FIELDS) -> etree._Element:
    return agency_copy("AC-DE-BVL-1", "EADC-CH-01", "DE-BVL", NOW, entries, fields)


def assert_valid(root: etree._Element) -> None:
    schema = default_registry().lxml(KIND)
    assert schema.validate(root), schema.error_log
    data = etree.tostring(root, encoding="UTF-8")
    assert default_registry().xmlschema(KIND).is_valid(io.BytesIO(data))


def fields_of(root: etree._Element) -> list[list[tuple[str, str | None]]]:
    return [
        [(field.get("path", ""), field.text) for field in item.iterfind(f"{{{NS}}}Fields/*")]
        for item in root.iterfind(f"{{{NS}}}Items/{{{NS}}}Item")
    ]


def test_copy_is_valid_with_header_and_item_identity() -> None:
    """The copy validates and names the agency, each item's reference, operator and version."""
    root = copy(declared())
    assert_valid(root)
    ns = {"a": NS}
    assert root.findtext("a:Header/a:Agency", namespaces=ns) == "DE-BVL"
    assert root.findtext("a:Header/a:CreatedAt", namespaces=ns) == "2026-11-26T10:05:31.000Z"
    assert root.xpath("a:Items/a:Item/a:ItemReference/text()", namespaces=ns) == [
        entry.reference for entry in declared()
    ]


def test_repeated_lines_give_one_positioned_field_each() -> None:
    """Each allow-listed path in allow-list order; repeated lines carry their 1-based position."""
    assert fields_of(copy(declared(0, 1))) == [
        [
            ("ItemId", "RR123456785CH"),
            ("Contents/Line/HsCode", "610910"),
            ("Contents/Line/Description", "Men's knitted cotton t-shirt, size L"),
            ("Transport/DestinationCountry", "DE"),
        ],
        [
            ("ItemId", "CP204817360CH"),
            ("Contents/Line[1]/HsCode", "691200"),
            ("Contents/Line[2]/HsCode", "180632"),
            ("Contents/Line[1]/Description", "Stoneware coffee mug, 350 ml, for household use"),
            ("Contents/Line[2]/Description", "Milk chocolate bars, not filled, 100 g each"),
            ("Transport/DestinationCountry", "DE"),
        ],
    ]


def test_nothing_outside_the_allow_list_leaks() -> None:
    """Names, addresses, contacts, values and findings of the items never appear in the copy."""
    entries = [
        Declared(
            e.reference,
            e.operator_id,
            e.version,
            e.item_xml,
            (Finding(0, "x", Severity.WARNING, "party_possible_match", "/x", "Anna Müller"),),
        )
        for e in declared()
    ]
    serialized = etree.tostring(copy(entries), encoding="unicode")
    for secret in (
        "Anna Müller",
        "Bahnhofstrasse",
        "Zürich",
        "anna.mueller@example.ch",
        "Keramik und Kakao",
        "+41 31 555 01 23",
        "Kaiserstraße",
        "IM2760000123",
        "DE123456789012345",
        "Invoice 2026-11-4711",
        "64.80",
        "party_possible_match",
    ):
        assert secret not in serialized, secret
    allowed = {f"{root_path}" for root_path in FIELDS}
    for item_fields in fields_of(copy(declared())):
        for path, _ in item_fields:
            assert re.sub(r"\[\d+\]", "", path) in allowed


def test_a_container_path_copies_the_leaves_below_it() -> None:
    """Allow-listing an element with children copies each leaf below it with its path."""
    assert fields_of(copy(declared(1), ("Addressee/Address",))) == [
        [
            ("Addressee/Address/Street[1]", "Kaiserstraße 88"),
            ("Addressee/Address/Street[2]", "3. OG"),
            ("Addressee/Address/City", "Frankfurt am Main"),
            ("Addressee/Address/Postcode", "60329"),
            ("Addressee/Address/Subdivision", "Hessen"),
            ("Addressee/Address/Country", "DE"),
        ]
    ]


def test_items_without_the_listed_fields_get_an_empty_field_list() -> None:
    """A document item has no HS code: its copy has an empty, valid Fields element."""
    root = copy(declared(2), ("Contents/Line/HsCode", "Importer/IossNumber"))
    assert_valid(root)
    assert fields_of(root) == [[]]


def test_allow_list_duplicates_are_copied_once() -> None:
    """A path listed twice yields its fields once."""
    assert fields_of(copy(declared(0), ("ItemId", "ItemId"))) == [[("ItemId", "RR123456785CH")]]


def test_minimized_fields_collapses_white_space() -> None:
    """Values are copied with white space collapsed, as the schema reads them."""
    item = etree.fromstring(b"<Item><Comments>  two\n   words </Comments><Empty/></Item>")
    assert minimized_fields(item, ["Comments", "Empty", "Missing"]) == (("Comments", "two words"),)


@pytest.mark.parametrize("path", ["", "Contents/", "/ItemId", "Contents/Line[2]", "a:b", "Line/*"])
def test_bad_allow_list_path_is_a_configuration_error(path: str) -> None:
    """Only plain element-name paths are accepted."""
    with pytest.raises(ConfigurationError, match="not a path"):
        copy(declared(0), ("ItemId", path))


@pytest.mark.parametrize("count", [0, 10_001])
def test_copy_sizes_outside_the_schema_are_refused(count: int) -> None:
    """No items, or more than 10,000, is an InvalidMessage."""
    with pytest.raises(InvalidMessage, match="1 to 10,000"):
        copy(declared(0) * count)


def test_bad_stored_item_is_refused_naming_it() -> None:
    """A stored item that does not parse raises InvalidMessage with its reference."""
    entries = [Declared("EAD-BAD", "CH-POST", 1, b"<Item>")]
    with pytest.raises(InvalidMessage, match="EAD-BAD"):
        copy(entries)


def test_copy_signs_and_verifies() -> None:
    """The copy signs as built and verifies against the pinned certificate."""
    private_key, certificate = keystore.generate_key("ec", "EADC-CH-01", 1)
    signed = signing.sign(copy(declared()), signing.SigningKey(private_key, certificate))
    assert default_registry().lxml(KIND).validate(etree.fromstring(signed))
    result = signing.verify(signed, signing.VerifyPolicy((certificate,)))
    assert result.signed_xml.findtext(f"{{{NS}}}Header/{{{NS}}}Agency") == "DE-BVL"


def test_copy_id_names_the_agency() -> None:
    """Copy ids are AC-<agency>-<time>-<random>, deterministic with a seeded random."""
    copy_id = new_agency_copy_id("DE-BVL", NOW, random.Random(1))
    assert re.fullmatch(r"AC-DE-BVL-20261126T100531000Z-[0-9a-f]{12}", copy_id)
    assert copy_id == new_agency_copy_id("DE-BVL", NOW, random.Random(1))
