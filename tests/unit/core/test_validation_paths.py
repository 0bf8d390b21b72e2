"""The shortcuts on validation's hot path keep their guarantees.

Item batch validation validates the schema before the depth probe and only probes an invalid
batch; the parser's byte pre-filters (entity references, processing instructions) skip tree
walks only when the tree cannot hold what they look for; the rules' single pass copes with
every shape the schema allows; paths of many faulty items cost one walk over the items.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.core import xmlsafe
from connector.core.inbound import MAX_ITEMS, VALID_DEPTH, validate_item_batch
from connector.core.rules import PathFinder, element_path
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import ParseLimits, check_depth, parse_xml
from connector.errors import XmlProcessingInstructionForbidden, XmlTooDeep
from connector.sample import generate_batch

DATA = Path(__file__).parents[2] / "data"
NS = "{urn:ead-connector:item-batch:1}"


def _valid_tree() -> etree._ElementTree:
    return etree.parse(str(DATA / "valid" / "two_items.xml"))


def _bytes(tree: etree._ElementTree) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


# --- depth: schema first, probe only an invalid batch ----------------------------------------


def _deepest(declaration: Any, seen: tuple[str, ...] = ()) -> int:
    """Depth of the deepest element a document valid against ``declaration`` can hold."""
    assert declaration.name not in seen, "a recursive schema has no depth bound"
    kind = declaration.type
    children = (
        list(kind.content.iter_elements())
        if kind.is_complex() and kind.has_complex_content()
        else []
    )
    for child in children:
        assert getattr(child, "name", None), "a wildcard has no depth bound"
    return 1 + max((_deepest(child, (*seen, declaration.name)) for child in children), default=0)


def test_valid_depth_is_the_deepest_element_the_item_batch_schema_allows() -> None:
    schema = default_registry().xmlschema(MessageKind.ITEM_BATCH)
    assert _deepest(schema.elements[MessageKind.ITEM_BATCH.root]) == VALID_DEPTH


def test_a_deep_element_in_an_item_is_refused_as_too_deep() -> None:
    """The schema fails first, so the probe runs before anything reads the items."""
    tree = _valid_tree()
    nest = tree.getroot()[1][1].find(f"{NS}Sender/{NS}Address")
    assert nest is not None
    for _ in range(40):
        nest = etree.SubElement(nest, f"{NS}Street")
    with pytest.raises(XmlTooDeep) as info:
        validate_item_batch(_bytes(tree))
    assert info.value.context["limit"] == 32


def test_a_deep_batch_with_a_foreign_root_is_too_deep_before_unknown() -> None:
    inner = b"<a>" * 40 + b"</a>" * 40
    data = b'<Amendment xmlns="urn:ead-connector:amendment:1">' + inner + b"</Amendment>"
    with pytest.raises(XmlTooDeep):
        validate_item_batch(data)


@pytest.mark.parametrize("max_depth", [1, VALID_DEPTH - 1])
def test_a_limit_below_the_schema_depth_still_refuses_a_valid_batch(max_depth: int) -> None:
    data = (DATA / "valid" / "two_items.xml").read_bytes()
    with pytest.raises(XmlTooDeep):
        validate_item_batch(data, limits=ParseLimits(max_depth=max_depth))


def test_a_limit_at_the_schema_depth_accepts_a_valid_batch() -> None:
    data = (DATA / "valid" / "two_items.xml").read_bytes()
    report = validate_item_batch(data, limits=ParseLimits(max_depth=VALID_DEPTH))
    assert report.all_valid


def test_parse_without_the_probe_leaves_it_to_check_depth() -> None:
    deep = b"<a>" * 40 + b"</a>" * 40
    root = parse_xml(deep, depth=False)
    with pytest.raises(XmlTooDeep):
        check_depth(root)
    check_depth(root, ParseLimits(max_depth=40))
    with pytest.raises(XmlTooDeep):
        parse_xml(deep)


# --- byte pre-filters --------------------------------------------------------------------------

_PIECES = [b"&amp;", b"&lt;", b"&gt;", b"&quot;", b"&apos;", b"&#38;", b"&#x26;", b"&x;"]
_PIECES += [b"&", b"&am", b"&ampx;", b"a", b"<b/>", b"?"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_PIECES), max_size=700))
def test_entity_pre_filter_agrees_with_one_scan(pieces: list[bytes]) -> None:
    """The hop-then-scan search answers exactly as one regular expression scan does."""
    data = b"".join(pieces)
    expected = xmlsafe._ENTITY_REFERENCE.search(data) is not None
    assert xmlsafe._may_hold_entity_reference(data) is expected


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0" encoding="UTF-8"?><r><?pi x?></r>',
        b'<?xml version="1.0"?>\n<?xml-stylesheet href="x"?><r/>',
        b"<?target?><r/>",
        b'<?xml version="1.0"?><r/><?after?>',
        b'\xef\xbb\xbf<?xml version="1.0"?><r>why?<?pi?></r>',
    ],
    ids=["body", "prolog", "no-declaration", "epilog", "bom-and-question-mark"],
)
def test_instruction_pre_filter_lets_no_instruction_through(data: bytes) -> None:
    with pytest.raises(XmlProcessingInstructionForbidden):
        parse_xml(data)


def test_question_marks_in_text_are_data() -> None:
    root = parse_xml(b'<?xml version="1.0"?><r a="?">why? <![CDATA[<?no?>]]></r>')
    assert root.text == "why? <?no?>"


# --- rules on every shape the schema allows ----------------------------------------------------


def test_an_empty_importer_is_a_valid_item() -> None:
    """Importer's children are both optional: an empty one is schema-valid and breaks no rule."""
    tree = _valid_tree()
    item = tree.getroot()[1][0]
    contents = item.find(f"{NS}Contents")
    assert contents is not None
    for old in item.findall(f"{NS}Importer"):
        item.remove(old)
    contents.addprevious(etree.Element(f"{NS}Importer"))
    report = validate_item_batch(_bytes(tree))
    assert report.errors == ()
    assert [accepted.item_index for accepted in report.accepted] == [0, 1]


def test_rule_faults_of_many_items_keep_item_order() -> None:
    """Faults are reported item by item, each item's in document order, duplicates last."""
    tree = _valid_tree()
    items = tree.getroot()[1]
    first = items[0]
    items.append(copy.deepcopy(first))  # a duplicate of item 0 at index 2
    currency = items[1].find(f"{NS}Currency")
    total = items[1].find(f"{NS}TotalValue")
    assert currency is not None
    assert total is not None
    currency.text = "ZZZ"
    total.text = "1.00"
    report = validate_item_batch(_bytes(tree))
    second = "/ItemBatch/Items/Item[2]"
    assert [(e.item_index, e.code, e.path) for e in report.errors] == [
        (1, "currency_unknown", f"{second}/Currency"),
        (1, "currency_mismatch", f"{second}/Contents/Line[1]/Currency"),
        (1, "currency_mismatch", f"{second}/Contents/Line[2]/Currency"),
        (1, "value_total_mismatch", f"{second}/TotalValue"),
        (2, "duplicate_item_id", "/ItemBatch/Items/Item[3]/ItemId"),
    ]
    assert [accepted.item_index for accepted in report.accepted] == [0]


# --- paths ---------------------------------------------------------------------------------------


def test_paths_number_only_repeated_names_counting_same_name_siblings() -> None:
    root = etree.fromstring(b'<r xmlns:x="urn:x"><a/><b/><x:a/><!-- c --><a><c/><c/></a></r>')
    a1, b, xa, _comment, a2 = root
    expected = {
        a1: "/r/a[1]",
        b: "/r/b",
        xa: "/r/a",  # another namespace: another name
        a2: "/r/a[2]",
        a2[0]: "/r/a[2]/c[1]",
        a2[1]: "/r/a[2]/c[2]",
    }
    find_path = PathFinder()
    for node, path in expected.items():
        assert element_path(node) == path
        assert find_path(node) == path


def test_one_finder_gives_every_item_the_path_a_lone_call_gives() -> None:
    data = generate_batch(300, invalid_ratio=0.0, seed=3).xml
    items = list(etree.fromstring(data)[1])
    find_path = PathFinder()
    line = items[7].find(f"{NS}Contents/{NS}Line")
    assert line is not None
    picked = [items[0], items[150][4], items[299], line[2], items[150]]
    assert [find_path(node) for node in picked] == [element_path(node) for node in picked]
    assert find_path(items[299]) == "/ItemBatch/Items/Item[300]"


_TRANSPORT_OPTIONAL = (
    "DepartureAirport",
    "DepartureTime",
    "Carrier",
    "FlightNumber",
    "ReceptacleId",
)


@pytest.mark.parametrize("kept", range(2 ** len(_TRANSPORT_OPTIONAL)))
def test_the_destination_is_found_whichever_optional_transport_data_is_sent(kept: int) -> None:
    """Every subset of Transport's optional elements: the destination rule reads the right
    element (a wrong one would be a country mismatch or a country_unknown on another path)."""
    tree = _valid_tree()
    transport = tree.getroot()[1][0].find(f"{NS}Transport")
    assert transport is not None
    for bit, name in enumerate(_TRANSPORT_OPTIONAL):
        node = transport.find(f"{NS}{name}")
        assert node is not None
        if not kept >> bit & 1:
            transport.remove(node)
    assert validate_item_batch(_bytes(tree)).errors == ()
    destination = transport.find(f"{NS}DestinationCountry")
    assert destination is not None
    destination.text = "BE"
    (error,) = validate_item_batch(_bytes(tree)).errors
    assert error.code == "destination_mismatch"
    assert error.path == "/ItemBatch/Items/Item[1]/Transport/DestinationCountry"


def test_an_importer_with_only_an_eori_is_not_judged_as_an_ioss_number() -> None:
    tree = _valid_tree()
    importer = tree.getroot()[1][1].find(f"{NS}Importer")
    assert importer is not None
    importer[0].tag = f"{NS}Eori"
    importer[0].text = "DE123456789012345"
    assert validate_item_batch(_bytes(tree)).errors == ()


def test_a_schema_valid_batch_has_the_envelope_shape() -> None:
    """The envelope check is skipped for a valid batch: the schema must imply it."""
    schema = default_registry().xmlschema(MessageKind.ITEM_BATCH)
    root = schema.elements[MessageKind.ITEM_BATCH.root]
    header, items = root.type.content.iter_elements()
    assert (header.local_name, items.local_name) == ("Header", "Items")
    assert (header.min_occurs, header.max_occurs, items.min_occurs, items.max_occurs) == (
        1,
        1,
        1,
        1,
    )
    (item,) = items.type.content.iter_elements()
    assert item.local_name == "Item"
    assert (item.min_occurs, item.max_occurs) == (1, MAX_ITEMS)
