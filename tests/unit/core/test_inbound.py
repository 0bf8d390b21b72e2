"""Item batch validation: itemized errors, good items go on, unusable batches fail whole."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from connector.core.inbound import MAX_ITEMS, validate_item_batch
from connector.core.model import ItemCategory
from connector.errors import EnvelopeInvalid, InvalidMessage, MessageKindUnknown

DATA = Path(__file__).parents[2] / "data"
VALID = sorted((DATA / "valid").glob("*.xml"))
INVALID = sorted((DATA / "invalid").glob("*.xml"))
NS = "{urn:ead-connector:item-batch:1}"


def _tree(path: Path = DATA / "valid" / "two_items.xml") -> etree._ElementTree:
    return etree.parse(str(path))


def _bytes(tree: etree._ElementTree) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_batches_accept_every_item(path: Path) -> None:
    report = validate_item_batch(path.read_bytes())
    assert report.all_valid
    assert report.errors == ()
    assert len(report.accepted) == report.item_count > 0


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_each_broken_rule_rejects_only_its_item(path: Path) -> None:
    """Each file has a good first item and a second item broken by the rule in its name."""
    expected_code = path.stem.split("__")[0]
    report = validate_item_batch(path.read_bytes())
    assert report.item_count == 2
    assert [a.item_index for a in report.accepted] == [0]
    assert report.rejected_indexes == {1}
    codes = {error.code for error in report.errors}
    assert expected_code in codes, report.errors
    for error in report.errors:
        assert error.path.startswith("/ItemBatch/Items/Item[2]"), error.path
        assert error.message
    assert report.errors[0].item_id is not None or expected_code == "schema_missing_element"


def test_rejected_item_error_names_the_field() -> None:
    report = validate_item_batch((DATA / "invalid" / "schema_pattern__hs_code.xml").read_bytes())
    (error,) = report.errors
    assert error.path == "/ItemBatch/Items/Item[2]/Contents/Line[1]/HsCode"
    assert error.code == "schema_pattern"
    assert "12AB56" in error.message
    assert error.item_id == "LX473124829CN"


def test_missing_element_path_points_at_the_missing_child() -> None:
    report = validate_item_batch((DATA / "invalid" / "schema_missing_element.xml").read_bytes())
    (error,) = report.errors
    assert error.path == "/ItemBatch/Items/Item[2]/Sender/Name"
    assert "Name" in error.message


def test_rule_error_message_is_actionable() -> None:
    report = validate_item_batch((DATA / "invalid" / "s10_check_digit.xml").read_bytes())
    (error,) = report.errors
    assert error.path == "/ItemBatch/Items/Item[2]/ItemId"
    assert "should be 9" in error.message


def test_duplicate_keeps_first_occurrence() -> None:
    report = validate_item_batch((DATA / "invalid" / "duplicate_item_id.xml").read_bytes())
    assert [a.item_id for a in report.accepted] == ["RR123456785DE"]
    (error,) = report.errors
    assert error.code == "duplicate_item_id"
    assert "position 0" in error.message


def test_several_faults_in_one_item_are_all_reported() -> None:
    tree = _tree()
    item = tree.getroot()[1][1]
    item.find(f"{NS}GrossWeight").text = "0.8001"
    item.find(f"{NS}Category").text = "PRESENT"
    report = validate_item_batch(_bytes(tree))
    assert {e.code for e in report.errors} == {"schema_value", "schema_enumeration"}
    assert report.rejected_indexes == {1}


def test_whitespace_around_codes_is_collapsed_like_the_schema_does() -> None:
    tree = _tree()
    item = tree.getroot()[1][0]
    item.find(f"{NS}Currency").text = "  EUR "
    item.find(f"{NS}Transport/{NS}DestinationCountry").text = "\n FR\n"
    report = validate_item_batch(_bytes(tree))
    assert report.all_valid, report.errors


def test_accepted_items_become_domain_records() -> None:
    report = validate_item_batch((DATA / "valid" / "two_items.xml").read_bytes())
    first, second = report.accepted_items()
    assert first.item_id == "RR123456785DE"
    assert first.category is ItemCategory.SALE_OF_GOODS
    assert first.total_value == Decimal("64.80")
    assert first.addressee.address.street == ("12 rue des Lilas", "Bâtiment B")
    assert [line.hs_code for line in first.lines] == ["61091000", "691200"]
    assert first.transport.departure_time is not None
    assert second.sender.name == "王小明"
    assert second.ioss_number == "IM2760000123"
    assert second.destination_country == "DE"
    assert report.header.batch_id == "DE-2026-11-26-0001"
    assert report.header.created_at.tzinfo is not None


def _envelope_case(mutate: str) -> bytes:
    tree = _tree()
    root = tree.getroot()
    header, items = root
    if mutate == "no_header":
        root.remove(header)
    elif mutate == "bad_batch_id":
        header.find(f"{NS}BatchId").text = "has spaces in it"
    elif mutate == "bad_created_at":
        header.find(f"{NS}CreatedAt").text = "yesterday"
    elif mutate == "no_items":
        for item in list(items):
            items.remove(item)
    elif mutate == "foreign_child":
        etree.SubElement(items, f"{NS}Parcel")
    elif mutate == "text_in_items":
        items[0].tail = "stray text"
    elif mutate == "extra_root_child":
        etree.SubElement(root, f"{NS}Trailer")
    return _bytes(tree)


@pytest.mark.parametrize(
    "mutate",
    [
        "no_header",
        "bad_batch_id",
        "bad_created_at",
        "no_items",
        "foreign_child",
        "text_in_items",
        "extra_root_child",
    ],
)
def test_envelope_faults_reject_the_batch_whole(mutate: str) -> None:
    with pytest.raises(EnvelopeInvalid) as info:
        validate_item_batch(_envelope_case(mutate))
    assert info.value.code == "envelope_invalid"
    assert info.value.http_status == 400
    assert "\n" not in info.value.message


def test_too_many_items_is_an_envelope_fault() -> None:
    tree = _tree()
    items = tree.getroot()[1]
    template = items[0]
    for _ in range(MAX_ITEMS - 1):
        items.append(copy.deepcopy(template))
    with pytest.raises(EnvelopeInvalid, match="10001 items"):
        validate_item_batch(_bytes(tree))


def test_other_message_kind_is_refused() -> None:
    notice = (DATA / "messages" / "item-notice.xml").read_bytes()
    with pytest.raises(MessageKindUnknown, match="item-notice"):
        validate_item_batch(notice)


def test_unknown_root_is_refused() -> None:
    with pytest.raises(MessageKindUnknown):
        validate_item_batch(b"<Batch xmlns='urn:other'/>")


def test_unsafe_input_is_an_invalid_message() -> None:
    with pytest.raises(InvalidMessage) as info:
        validate_item_batch(b'<!DOCTYPE x [<!ENTITY a "b">]><ItemBatch/>')
    assert info.value.code == "xml_doctype_forbidden"


def test_accepted_items_carry_their_transport_destination() -> None:
    tree = etree.parse(str(DATA / "valid" / "two_items.xml"))
    ns = "{urn:ead-connector:item-batch:1}"
    second = tree.getroot()[1][1].find(f"{ns}Transport/{ns}DestinationCountry")
    assert second is not None
    second.text = "\n  DE "  # white space the schema collapses
    report = validate_item_batch(etree.tostring(tree))
    assert report.all_valid
    # All seven transport elements, then only some: the place is found either way.
    assert [item.destination_country for item in report.accepted] == ["FR", "DE"]
