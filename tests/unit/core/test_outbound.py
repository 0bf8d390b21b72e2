"""Outbound building blocks: re-namespacing items and XML timestamps."""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

from connector.core.outbound import renamespace, xml_datetime

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
