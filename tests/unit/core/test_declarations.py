"""Declaration batches: schema-valid, items moved intact into their namespace, warnings only."""

from __future__ import annotations

import dataclasses
import io
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from connector.adapters import keystore
from connector.core import declarations, signing
from connector.core.checks.outcome import Finding, Severity
from connector.core.declarations import Declared, declaration_batch, new_declaration_batch_id
from connector.core.inbound import validate_item_batch
from connector.core.outbound import renamespace
from connector.core.schemas import MessageKind, default_registry
from connector.errors import InvalidMessage, XmlMalformed
from connector.flow.accept import incoming_items

MESSAGES = Path(__file__).parents[2] / "data" / "messages"
KIND = MessageKind.DECLARATION_BATCH
NS = KIND.namespace
ITEM_NS = MessageKind.ITEM_BATCH.namespace
NOW = datetime(2026, 11, 26, 10, 5, 30, 123456, tzinfo=UTC)
IDENTIFIER = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


def stored_items() -> list[bytes]:
    """The items of the example batch, serialized exactly as the intake stores them."""
    report = validate_item_batch((MESSAGES / "item-batch.xml").read_bytes())
    return [incoming.item_xml for incoming in incoming_items(report)]


ITEMS = stored_items()


def finding(severity: Severity, code: str, message: str = "Something to look at.") -> Finding:
    return Finding(1, "CP204817360CH", severity, code, "/ItemBatch/Items/Item[2]", message)


def declared(count: int = 3, **overrides: object) -> list[Declared]:
    entries = [
        Declared(
            reference=f"EAD{index:021d}",
            operator_id="CH-POST",
            version=1 + index % 3,
            item_xml=ITEMS[index % len(ITEMS)],
        )
        for index in range(count)
    ]
    if overrides:
        entries[0] = dataclasses.replace(entries[0], **overrides)  # type: ignore[arg-type]
    return entries


def build(entries: list[Declared]) -> etree._Element:
    return declaration_batch("DB-EU-ICS2-1", "EADC-CH-01", "EU-ICS2", NOW, entries)


def assert_valid(root: etree._Element) -> None:
    schema = default_registry().lxml(KIND)
    assert schema.validate(root), schema.error_log
    data = etree.tostring(root, encoding="UTF-8")
    assert default_registry().xmlschema(KIND).is_valid(io.BytesIO(data))


def content(element: etree._Element) -> list[tuple[str, str | None]]:
    """Local names and texts of an element and its descendants, in document order."""
    return [(etree.QName(node).localname, node.text) for node in element.iter()]


def test_batch_is_valid_and_carries_header_and_declarations_in_order() -> None:
    """The builder's output validates and holds the header values and every item in order."""
    entries = declared()
    root = build(entries)
    assert_valid(root)
    ns = {"d": NS}
    assert root.findtext("d:Header/d:DeclarationBatchId", namespaces=ns) == "DB-EU-ICS2-1"
    assert root.findtext("d:Header/d:ConnectorId", namespaces=ns) == "EADC-CH-01"
    assert root.findtext("d:Header/d:Destination", namespaces=ns) == "EU-ICS2"
    assert root.findtext("d:Header/d:CreatedAt", namespaces=ns) == "2026-11-26T10:05:30.123Z"
    rows = [
        (
            node.findtext("d:ItemReference", namespaces=ns),
            node.findtext("d:OperatorId", namespaces=ns),
            node.findtext("d:Version", namespaces=ns),
        )
        for node in root.iterfind("d:Declarations/d:Declaration", namespaces=ns)
    ]
    assert rows == [(e.reference, e.operator_id, str(e.version)) for e in entries]


def test_item_content_is_preserved_exactly_and_moved_into_the_batch_namespace() -> None:
    """Every element and text of each stored item reappears, in the declaration namespace."""
    root = build(declared())
    items = root.findall(f"{{{NS}}}Declarations/{{{NS}}}Declaration/{{{NS}}}Item")
    assert len(items) == len(ITEMS)
    for item, stored in zip(items, ITEMS, strict=True):
        original = etree.fromstring(stored)
        assert content(item) == content(original)
        assert {etree.QName(node).namespace for node in item.iter()} == {NS}
    serialized = etree.tostring(root)
    assert ITEM_NS.encode() not in serialized
    assert serialized.count(b"xmlns=") == 1  # one declaration, on the root


def test_unusual_item_serializations_give_the_same_declaration() -> None:
    """A prefixed item or one redeclaring its namespace inside is moved as the usual form is."""
    usual = build(declared(1))
    element = etree.fromstring(ITEMS[0])
    prefixed = (
        etree.tostring(renamespace(element, ITEM_NS))
        .replace(b"<", b"<ib:")
        .replace(b"<ib:/", b"</ib:")
    )
    prefixed = prefixed.replace(f'xmlns="{ITEM_NS}"'.encode(), f'xmlns:ib="{ITEM_NS}"'.encode())
    redeclared = ITEMS[0].replace(b"<ItemId>", f'<ItemId xmlns="{ITEM_NS}">'.encode(), 1)
    for variant in (prefixed, redeclared):
        assert variant != ITEMS[0]
        root = build(declared(1, item_xml=variant))
        assert etree.tostring(root) == etree.tostring(usual)


def test_only_warnings_are_written_as_findings() -> None:
    """Warnings become Findings with severity, code and message; errors are left out."""
    findings = (
        finding(Severity.WARNING, "description_vague", "Description is vague."),
        finding(Severity.ERROR, "party_denied", "Denied party."),
        finding(Severity.WARNING, "hs_code_unknown", "HS code 999999 is unknown."),
    )
    root = build(declared(2, findings=findings))
    assert_valid(root)
    ns = {"d": NS}
    first, second = root.iterfind("d:Declarations/d:Declaration", namespaces=ns)
    written = [
        [node.findtext(f"d:{name}", namespaces=ns) for name in ("Severity", "Code", "Message")]
        for node in first.iterfind("d:Findings/d:Finding", namespaces=ns)
    ]
    assert written == [
        ["warning", "description_vague", "Description is vague."],
        ["warning", "hs_code_unknown", "HS code 999999 is unknown."],
    ]
    assert second.find("d:Findings", namespaces=ns) is None


def test_errors_only_write_no_findings_element() -> None:
    """An item whose findings are all errors gets no (empty, invalid) Findings element."""
    root = build(declared(1, findings=(finding(Severity.ERROR, "party_denied"),)))
    assert_valid(root)
    assert root.find(f".//{{{NS}}}Findings") is None


@pytest.mark.parametrize(
    ("code", "message", "written_code", "written_message"),
    [
        ("Hs-Code.Odd", "ok", "hs_code_odd", "ok"),
        ("x" * 80, "ok", "x" * 64, "ok"),
        ("", "ok", "finding", "ok"),
        ("vague", "  spread\n\tover   lines ", "vague", "spread over lines"),
        ("vague", "bell\x07 and nul\x00 inside", "vague", "bell and nul inside"),
        ("vague", "   ", "vague", "vague"),
    ],
)
def test_finding_code_and_message_are_made_schema_valid(
    code: str, message: str, written_code: str, written_message: str
) -> None:
    """Codes are reduced to [a-z0-9_]{1,64}; messages to one line of XML characters."""
    root = build(declared(1, findings=(finding(Severity.WARNING, code, message),)))
    assert_valid(root)
    assert root.findtext(f".//{{{NS}}}Finding/{{{NS}}}Code") == written_code
    assert root.findtext(f".//{{{NS}}}Finding/{{{NS}}}Message") == written_message


def test_long_finding_message_is_cut_to_the_schema_limit() -> None:
    """A message over 1,000 characters is cut to 1,000 with an ellipsis and still validates."""
    root = build(declared(1, findings=(finding(Severity.WARNING, "vague", "word " * 400),)))
    assert_valid(root)
    message = root.findtext(f".//{{{NS}}}Finding/{{{NS}}}Message") or ""
    assert len(message) == declarations.MAX_FINDING_MESSAGE
    assert message.endswith("\u2026")


@pytest.mark.parametrize("count", [1, 1000])
def test_batches_of_one_and_a_thousand_items_are_valid(count: int) -> None:
    """A batch of one item and one of 1,000 items both validate."""
    root = build(declared(count))
    assert_valid(root)
    assert len(root[1]) == count


@pytest.mark.slow
def test_the_largest_batch_is_valid() -> None:
    """Exactly 10,000 declarations is still a valid batch."""
    root = build(declared(declarations.MAX_DECLARATIONS))
    assert len(root[1]) == declarations.MAX_DECLARATIONS
    assert default_registry().lxml(KIND).validate(root)


@pytest.mark.parametrize("count", [0, declarations.MAX_DECLARATIONS + 1])
def test_batch_sizes_outside_the_schema_are_refused(count: int) -> None:
    """No declarations, or more than 10,000, is an InvalidMessage naming the limit."""
    entries = declared(1) * count
    with pytest.raises(InvalidMessage, match="1 to 10,000"):
        build(entries)


def test_signing_round_trip_verifies_and_keeps_the_batch_valid() -> None:
    """The returned element signs without a re-parse and verifies against the pinned key."""
    private_key, certificate = keystore.generate_key("ec", "EADC-CH-01", 1)
    key = signing.SigningKey(private_key, certificate)
    root = build(declared(3))
    before = etree.tostring(root)
    signed = signing.sign(root, key)
    assert etree.tostring(root) == before  # the builder's element is not modified
    assert default_registry().lxml(KIND).validate(etree.fromstring(signed))
    result = signing.verify(signed, signing.VerifyPolicy((certificate,)))
    references = result.signed_xml.xpath("//d:ItemReference/text()", namespaces={"d": NS})
    assert references == [entry.reference for entry in declared(3)]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"reference": "EAD 1"}, "item reference"),
        ({"operator_id": ""}, "operator id"),
        ({"version": 0}, "versions start at 1"),
        ({"version": True}, "versions start at 1"),
        ({"item_xml": b"<Contents/>"}, "not an Item"),
    ],
)
def test_bad_declared_values_are_refused(override: dict[str, object], match: str) -> None:
    """A value the schema would refuse raises InvalidMessage naming what is wrong."""
    with pytest.raises(InvalidMessage, match=match):
        build(declared(2, **override))


def test_unparseable_stored_item_names_its_reference() -> None:
    """A stored item that is not well-formed keeps its error class and names the item."""
    with pytest.raises(XmlMalformed, match="EAD000000000000000000000") as caught:
        build(declared(1, item_xml=ITEMS[0][:-40]))
    assert caught.value.context["reference"] == "EAD000000000000000000000"


def test_item_in_a_foreign_namespace_is_refused() -> None:
    """An Item element of another namespace is not declared."""
    foreign = ITEMS[0].replace(ITEM_NS.encode(), b"urn:example:other:1")
    with pytest.raises(InvalidMessage, match="item-batch namespace"):
        build(declared(1, item_xml=foreign))


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("DB 1", "EADC-CH-01", "EU-ICS2", NOW), "declaration batch id"),
        (("DB-1", "EADC/CH", "EU-ICS2", NOW), "connector id"),
        (("DB-1", "EADC-CH-01", "", NOW), "destination"),
        (("DB-1", "EADC-CH-01", "EU-ICS2", NOW.replace(tzinfo=None)), "timezone-aware"),
    ],
)
def test_bad_header_values_are_refused(
    arguments: tuple[str, str, str, datetime], match: str
) -> None:
    """Header values that would not validate raise InvalidMessage naming the field."""
    with pytest.raises(InvalidMessage, match=match):
        declaration_batch(*arguments, declared(1))


# --- batch ids ------------------------------------------------------------------------------


def test_batch_id_has_destination_time_and_random_part() -> None:
    """The id is DB-<destination>-<UTC time to the ms>-<12 hex> and a schema Identifier."""
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    batch_id = new_declaration_batch_id("EU-ICS2", local, random.Random(7))
    assert re.fullmatch(r"DB-EU-ICS2-20261126T100530123Z-[0-9a-f]{12}", batch_id)
    assert IDENTIFIER.fullmatch(batch_id)


def test_batch_id_is_deterministic_with_a_seeded_random() -> None:
    """The same seed gives the same id; another seed another one."""
    first = new_declaration_batch_id("EU-ICS2", NOW, random.Random(42))
    assert first == new_declaration_batch_id("EU-ICS2", NOW, random.Random(42))
    assert first != new_declaration_batch_id("EU-ICS2", NOW, random.Random(43))


def test_batch_ids_are_unique_at_the_same_instant() -> None:
    """Ids made in the same millisecond differ by their random part."""
    ids = {new_declaration_batch_id("EU-ICS2", NOW) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_batch_id_takes_a_caller_token_and_stays_an_identifier() -> None:
    """A token replaces the random part; a long destination is cut so the id fits 64."""
    assert new_declaration_batch_id("EU", NOW, "run42").endswith("-run42")
    long_id = new_declaration_batch_id("D" * 64, NOW, "Z" * 16)
    assert len(long_id) <= 64
    assert IDENTIFIER.fullmatch(long_id)


@pytest.mark.parametrize(
    ("destination", "now", "token", "match"),
    [
        ("EU ICS2", NOW, None, "target"),
        ("EU", NOW.replace(tzinfo=None), None, "timezone-aware"),
        ("EU", NOW, "not-a-token", "token"),
        ("EU", NOW, "", "token"),
    ],
)
def test_batch_id_refuses_bad_input(
    destination: str, now: datetime, token: str | None, match: str
) -> None:
    """A destination that is no identifier, a naive time or a bad token is refused."""
    with pytest.raises(InvalidMessage, match=match):
        new_declaration_batch_id(destination, now, token)
