"""A declaration batch is parsed once from its parts when the stored items allow it, and the
result is exactly the batch built element by element; stored bytes that are not one ``Item``
element cannot change the batch's shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from connector.core import declarations
from connector.core.checks.outcome import Finding, Severity
from connector.core.declarations import Declared, declaration_batch
from connector.core.inbound import validate_item_batch
from connector.core.schemas import MessageKind, default_registry
from connector.errors import InvalidMessage
from connector.flow.accept import incoming_items

MESSAGES = Path(__file__).parents[2] / "data" / "messages"
NS = MessageKind.DECLARATION_BATCH.namespace
NOW = datetime(2026, 11, 26, 10, 5, 30, 123456, tzinfo=UTC)
ITEMS = [
    incoming.item_xml
    for incoming in incoming_items(validate_item_batch((MESSAGES / "item-batch.xml").read_bytes()))
]
WARNING = Finding(1, "X", Severity.WARNING, "value.low", "/ItemBatch/Items/Item[2]", "a < b & c")


def entries(count: int) -> list[Declared]:
    return [
        Declared(
            f"EAD{index:021d}",
            "CH-POST",
            1 + index % 2,
            ITEMS[index % len(ITEMS)],
            (WARNING,) if index % 3 == 0 else (),
        )
        for index in range(count)
    ]


def built(declared: list[Declared]) -> bytes:
    """The batch as the element-by-element path builds it."""
    return etree.tostring(declarations._built(*_parts(declared)))


def _parts(
    declared: list[Declared],
) -> tuple[tuple[str, str, str, str], list[tuple[str, str, str]], list[Declared]]:
    header = ("DB-EU-ICS2-1", "EADC-CH-01", "EU-ICS2", "2026-11-26T10:05:30.123Z")
    fields = [(entry.reference, entry.operator_id, str(entry.version)) for entry in declared]
    return header, fields, declared


def batch(declared: list[Declared]) -> etree._Element:
    return declaration_batch("DB-EU-ICS2-1", "EADC-CH-01", "EU-ICS2", NOW, declared)


@pytest.mark.parametrize("count", [1, 7, 1000])
def test_the_assembled_batch_is_the_built_batch(count: int) -> None:
    """Same bytes as the element-by-element path, findings included, and schema-valid."""
    declared = entries(count)
    assert declarations._assembled(*_parts(declared)) is not None
    root = batch(declared)
    assert etree.tostring(root) == built(declared)
    schema = default_registry().lxml(MessageKind.DECLARATION_BATCH)
    assert schema.validate(root), schema.error_log


def test_blanks_after_a_stored_item_are_dropped() -> None:
    """An item stored with the whitespace that followed it in its batch declares the same."""
    declared = entries(3)
    padded = [dataclasses.replace(entry, item_xml=entry.item_xml + b"\n  ") for entry in declared]
    assert declarations._assembled(*_parts(padded)) is not None
    assert etree.tostring(batch(padded)) == built(declared)


def test_one_unusual_item_builds_the_batch_element_by_element() -> None:
    """A stored item not in its usual form sends the whole batch down the other path."""
    declared = entries(3)
    redeclared = declared[1].item_xml.replace(
        b"<ItemId>", f'<ItemId xmlns="{MessageKind.ITEM_BATCH.namespace}">'.encode(), 1
    )
    mixed = [declared[0], dataclasses.replace(declared[1], item_xml=redeclared), declared[2]]
    assert declarations._assembled(*_parts(mixed)) is None
    assert etree.tostring(batch(mixed)) == built(declared)


def _two_items(item: bytes) -> bytes:
    return item + item


def _text_after(item: bytes) -> bytes:
    return item + b"trailing"


def _smuggled_declaration(item: bytes) -> bytes:
    body = item[len(b'<Item xmlns="' + MessageKind.ITEM_BATCH.namespace.encode() + b'">') :]
    return (
        item + b"</Declaration><Declaration><ItemReference>EAD999</ItemReference>"
        b"<OperatorId>XX</OperatorId><Version>1</Version><Item>" + body
    )


def _declaration_closed_early(item: bytes) -> bytes:
    return item + b"</Declaration><Declaration>"


def _text_between_declarations(item: bytes) -> bytes:
    body = item[len(b'<Item xmlns="' + MessageKind.ITEM_BATCH.namespace.encode() + b'">') :]
    return item + b"</Declaration>text<Declaration><Item>" + body


def _element_after_the_declarations(item: bytes) -> bytes:
    """In the last item: close the declarations, add an element, open them again."""
    body = item[len(b'<Item xmlns="' + MessageKind.ITEM_BATCH.namespace.encode() + b'">') :]
    return (
        item + b"</Declaration></Declarations><Extra/><Declarations><Declaration>"
        b"<ItemReference>EAD999</ItemReference><OperatorId>XX</OperatorId><Version>1</Version>"
        b"<Item>" + body
    )


@pytest.mark.parametrize(
    "damage",
    [
        _two_items,
        _text_after,
        _smuggled_declaration,
        _declaration_closed_early,
        _text_between_declarations,
        _element_after_the_declarations,
    ],
)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_stored_bytes_that_are_not_one_item_are_refused(
    damage: Callable[[bytes], bytes], position: int
) -> None:
    """Whatever the damaged bytes would make of the assembled document, wherever the item
    is, the batch is refused with an error naming the stored item, as when it is parsed on
    its own."""
    declared = entries(3)
    bad = dataclasses.replace(declared[position], item_xml=damage(declared[position].item_xml))
    declared[position] = bad
    with pytest.raises(InvalidMessage) as caught:
        batch(declared)
    assert caught.value.context["reference"] == bad.reference
