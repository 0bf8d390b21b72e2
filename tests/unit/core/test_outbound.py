"""Outbound building blocks: re-namespacing items, XML timestamps, acknowledgements."""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from connector.core.checks import Finding, Severity
from connector.core.model import AckItem, Acknowledgement, ItemError
from connector.core.outbound import acknowledgement_xml, renamespace, xml_datetime
from connector.core.schemas import MessageKind, default_registry

DATA = Path(__file__).parents[2] / "data"


def test_renamespace_moves_every_element_and_keeps_content() -> None:
    item = etree.parse(str(DATA / "valid" / "two_items.xml")).getroot()[1][0]
    moved = renamespace(item, "urn:example:other:1")
    serialized = etree.tostring(moved)
    assert b"item-batch" not in serialized
    assert {etree.QName(e).namespace for e in moved.iter()} == {"urn:example:other:1"}
    assert [etree.QName(e).localname for e in moved.iter()] == [
        etree.QName(e).localname for e in item.iter()
    ]
    assert [e.text for e in moved.iter()] == [e.text for e in item.iter()]
    assert moved.tail is None
    reparsed = etree.fromstring(serialized)
    assert reparsed.tag == "{urn:example:other:1}Item"


def test_xml_datetime_is_utc_with_milliseconds() -> None:
    local = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert xml_datetime(local) == "2026-11-26T09:00:00.123Z"
    assert xml_datetime(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00.000Z"


def _tree_acknowledgement(ack: Acknowledgement) -> bytes:
    """The acknowledgement built as an lxml tree: the reference the text writer must match."""
    ns = MessageKind.ACKNOWLEDGEMENT.namespace

    def child(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        node = etree.SubElement(parent, f"{{{ns}}}{name}")
        node.text = text
        return node

    root = etree.Element(f"{{{ns}}}Acknowledgement", nsmap={None: ns})  # type: ignore[dict-item]
    child(root, "BatchId", ack.batch_id)
    child(root, "OperatorId", ack.operator_id)
    child(root, "ReceivedAt", xml_datetime(ack.received_at))
    items = child(root, "Items")
    for item in ack.items:
        node = child(items, "Item")
        child(node, "ItemIndex", str(item.item_index))
        child(node, "ItemId", item.item_id[:64])
        child(node, "Status", "accepted" if item.accepted else "rejected")
        if item.reference is not None:
            child(node, "Reference", item.reference)
        if item.errors:
            errors = child(node, "Errors")
            for error in item.errors:
                entry = child(errors, "Error")
                child(entry, "Code", error.code)
                child(entry, "Path", error.path or ".")
                child(entry, "Message", error.message[:1000])
        if item.findings:
            findings = child(node, "Findings")
            for finding in item.findings:
                entry = child(findings, "Finding")
                child(entry, "Severity", finding.severity.value)
                child(entry, "Code", finding.code)
                child(entry, "Path", finding.path[:512] or ".")
                child(entry, "Message", finding.message[:1000])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# XML characters, with the ones that need escaping made likely.
_TEXT = st.text(
    st.one_of(
        st.sampled_from("&<>\r\n\t\"' é€𝄞"),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"),
    ).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20),
    max_size=40,
)
_ERRORS = st.builds(ItemError, st.integers(0, 9), _TEXT, _TEXT, _TEXT, _TEXT)
_FINDINGS = st.builds(
    Finding, st.integers(0, 9), _TEXT, st.sampled_from(Severity), _TEXT, _TEXT, _TEXT
)
_ITEMS = st.builds(
    AckItem,
    st.integers(0, 10_000),
    _TEXT,
    st.booleans(),
    st.none() | _TEXT,
    st.lists(_ERRORS, max_size=3).map(tuple),
    st.lists(_FINDINGS, max_size=3).map(tuple),
)


@given(
    _TEXT,
    _TEXT,
    st.datetimes(timezones=st.just(UTC)),
    st.lists(_ITEMS, min_size=1, max_size=5).map(tuple),
)
def test_acknowledgement_text_is_byte_identical_to_the_lxml_tree(
    batch_id: str, operator_id: str, at: datetime, items: tuple[AckItem, ...]
) -> None:
    ack = Acknowledgement(batch_id, operator_id, at, items)
    assert acknowledgement_xml(ack) == _tree_acknowledgement(ack)


def test_acknowledgement_of_a_realistic_batch_is_schema_valid_and_escaped() -> None:
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    items = (
        AckItem(0, "EE123456785PL", True, "EADABCDEFGHIJKLMNOPQRSTU"),
        AckItem(
            1,
            "RR<1>&2",
            False,
            errors=(ItemError(1, "RR<1>&2", "/ItemBatch/Items/Item[2]", "s10_invalid", "a < b"),),
            findings=(Finding(1, "RR<1>&2", Severity.WARNING, "hs_unknown", "", "x & y"),),
        ),
    )
    data = acknowledgement_xml(Acknowledgement("B-1", "PL-POCZTA", at, items))
    document = etree.fromstring(data)
    schema = default_registry().lxml(MessageKind.ACKNOWLEDGEMENT)
    assert schema.validate(document), schema.error_log
    ns = {"a": MessageKind.ACKNOWLEDGEMENT.namespace}
    assert document.xpath("//a:Item[2]/a:ItemId/text()", namespaces=ns) == ["RR<1>&2"]
    assert document.xpath("//a:Finding/a:Path/text()", namespaces=ns) == ["."]
    assert data == _tree_acknowledgement(Acknowledgement("B-1", "PL-POCZTA", at, items))


def test_acknowledgement_refuses_text_xml_cannot_carry() -> None:
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="XML compatible"):
        acknowledgement_xml(Acknowledgement("B\x01", "PL-POCZTA", at, ()))
