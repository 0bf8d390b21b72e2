"""Operator item batches: validation into a report, and items into domain records.

Validation goes in three passes over one hardened parse:

1. the schema: lxml's XMLSchema checks the whole document at C speed. A valid batch is at
   most :data:`VALID_DEPTH` elements deep, so the parser's depth probe (a walk over every
   element) runs only when the batch is invalid, before anything else reads the tree;
2. for an invalid batch, the envelope (root, header, item count; a valid batch has its shape
   by the schema): a fault here rejects the batch whole. Then the schema's error paths name
   the faulty items, and only those are re-checked with xmlschema for precise, itemized
   messages;
3. the business rules (:mod:`connector.core.rules`) on the items the schema accepted.

A bad item never rejects the good items beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from lxml import etree

from connector.core import rules
from connector.core.model import (
    AcceptedItem,
    Address,
    BatchHeader,
    ContentLine,
    ItemCategory,
    ItemError,
    Party,
    PostalItem,
    Transport,
)
from connector.core.schemas import MessageKind, SchemaRegistry, default_registry
from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits, check_depth, parse_xml
from connector.errors import EnvelopeInvalid, MessageKindUnknown

__all__ = ["MAX_ITEMS", "VALID_DEPTH", "ValidationReport", "postal_item", "validate_item_batch"]

#: Most items one batch may carry (the XSD's bound: an envelope fault beyond it).
MAX_ITEMS = 10_000

#: Depth of the deepest element a schema-valid item batch can hold
#: (ItemBatch/Items/Item/Sender/Address/Street); the XSD has no wildcard.
VALID_DEPTH = 6

_KIND = MessageKind.ITEM_BATCH
_NS = _KIND.namespace
_count_items = etree.XPath("count(b:Item)", namespaces={"b": _NS})
_ITEM_PATH = re.compile(r"^/\*/\*\[2\]/\*(?:\[(\d+)\])?(?:/|$)")


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The verdict on one item batch: accepted items and itemized errors."""

    header: BatchHeader
    item_count: int
    accepted: tuple[AcceptedItem, ...]
    errors: tuple[ItemError, ...]
    document: etree._Element = field(repr=False, compare=False)

    @property
    def rejected_indexes(self) -> frozenset[int]:
        return frozenset(error.item_index for error in self.errors)

    @property
    def all_valid(self) -> bool:
        return not self.errors

    def accepted_elements(self) -> Iterator[tuple[AcceptedItem, etree._Element]]:
        """Each accepted item with its element, in one walk over the item list."""
        accepted = iter(self.accepted)
        wanted = next(accepted, None)
        for index, element in enumerate(self.document[1]):
            if wanted is None:
                return
            if index == wanted.item_index:
                yield wanted, element
                wanted = next(accepted, None)

    def accepted_items(self) -> Iterator[PostalItem]:
        """The accepted items as domain records (built on demand)."""
        for _, element in self.accepted_elements():
            yield postal_item(element)


def validate_item_batch(
    data: bytes,
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
    registry: SchemaRegistry | None = None,
) -> ValidationReport:
    """Validate an item batch; raise an :class:`InvalidMessage` if it is unusable as a whole."""
    registry = registry or default_registry()
    root = parse_xml(data, limits, depth=False)
    schema = registry.lxml(_KIND)
    valid = schema.validate(root)
    if not valid or limits.max_depth < VALID_DEPTH:
        check_depth(root, limits)
    if root.tag != _KIND.root_tag:
        kind = MessageKind.of_root(root.tag)
        raise MessageKindUnknown(f"expected an item batch, got a {kind.value} message")
    # A valid batch has the envelope's shape by its schema: Header, then Items holding 1 to
    # MAX_ITEMS Item elements. Only an invalid one is checked (two walks over the items).
    header_node, items = root if valid else _envelope(root)
    item_list = list(items)
    errors: list[ItemError] = []
    if not valid:
        errors.extend(_schema_errors(root, item_list, schema, registry))
    header = _header(header_node)
    schema_rejected = frozenset(error.item_index for error in errors)
    rule_errors, ids, destinations = rules.judge_items(root, item_list, schema_rejected)
    errors.extend(rule_errors)
    if not errors:
        accepted = tuple(map(AcceptedItem, range(len(ids)), ids, destinations))
        return ValidationReport(header, len(item_list), accepted, (), root)
    errors.sort(key=lambda error: error.item_index)
    rejected = {error.item_index for error in errors}
    accepted = tuple(
        AcceptedItem(index, item_id, destination)
        for index, (item_id, destination) in enumerate(zip(ids, destinations, strict=True))
        if index not in rejected
    )
    return ValidationReport(header, len(item_list), accepted, tuple(errors), root)


def _envelope(root: etree._Element) -> tuple[etree._Element, etree._Element]:
    """Check the item list's shape; return (header, items).

    The header's content is checked by the schema pass, whose errors outside an item reject
    the batch whole.
    """
    tags = [child.tag for child in root]
    if tags != [f"{{{_NS}}}Header", f"{{{_NS}}}Items"]:
        raise EnvelopeInvalid("an item batch holds exactly a Header followed by Items")
    header, items = root
    counted = _count_items(items)
    assert isinstance(counted, float)
    count = int(counted)
    if count != len(items):
        foreign = next(child for child in items if child.tag != f"{{{_NS}}}Item")
        raise EnvelopeInvalid(
            f"Items may only hold Item elements, found {etree.QName(foreign).localname!r}"
        )
    if count == 0:
        raise EnvelopeInvalid("the batch holds no items")
    if count > MAX_ITEMS:
        raise EnvelopeInvalid(f"the batch holds {count} items; at most {MAX_ITEMS} are allowed")
    return header, items


def _header(node: etree._Element) -> BatchHeader:
    def text(name: str) -> str:
        return (node.findtext(f"{{{_NS}}}{name}") or "").strip()

    return BatchHeader(
        batch_id=text("BatchId"),
        operator_id=text("OperatorId"),
        created_at=_datetime(text("CreatedAt")),
    )


def _schema_errors(
    root: etree._Element,
    items: list[etree._Element],
    schema: etree.XMLSchema,
    registry: SchemaRegistry,
) -> Iterator[ItemError]:
    """Itemized schema errors: lxml names the faulty items, xmlschema explains them."""
    first_message: dict[int, str] = {}
    for entry in cast("Iterable[etree._LogEntry]", schema.error_log):
        match = _ITEM_PATH.match(entry.path or "")
        if match is None:
            raise EnvelopeInvalid(f"batch does not conform to its schema: {entry.message}")
        index = int(match.group(1) or 1) - 1
        first_message.setdefault(index, entry.message)
    id_tag = f"{{{_NS}}}ItemId"
    find_path = rules.PathFinder()  # many faulty items: one walk over the item list
    for index, lxml_message in sorted(first_message.items()):
        item = items[index]
        item_id = (item.findtext(id_tag) or "").strip() or None
        found = False
        for path, code, message in _xmlschema_errors(registry, ("Items", "Item"), item, find_path):
            found = True
            yield ItemError(index, item_id, path, code, message)
        if not found:  # the two processors disagree: lxml's verdict stands
            path = find_path(item)
            yield ItemError(index, item_id, path, "schema_invalid", lxml_message)


def _declaration(registry: SchemaRegistry, names: tuple[str, ...]) -> Any:
    decl = registry.xmlschema(_KIND).elements[_KIND.root]
    for name in names:
        wanted = f"{{{_NS}}}{name}"
        decl = next(child for child in decl.type.content.iter_elements() if child.name == wanted)
    return decl


def _xmlschema_errors(
    registry: SchemaRegistry,
    names: tuple[str, ...],
    element: etree._Element,
    find_path: rules.PathFinder,
) -> Iterator[tuple[str, str, str]]:
    """(document path, code, message) of each xmlschema error of ``element``."""
    decl = _declaration(registry, names)
    for error in decl.iter_errors(element):
        where = error.elem if isinstance(error.elem, etree._Element) else element
        code, message, extra = _describe(error)
        yield find_path(where) + extra, code, message


def _describe(error: Any) -> tuple[str, str, str]:
    """Stable code, readable message and a path suffix for one xmlschema error."""
    validator = type(error.validator).__name__
    reason = str(error.reason or error.message)
    obj = error.obj
    value = obj if isinstance(obj, str) else None
    if type(error).__name__ == "XMLSchemaChildrenValidationError":
        return _describe_children(error)
    if validator == "XsdPatternFacets":
        return "schema_pattern", f"value {value!r} does not have the required form ({reason})", ""
    if validator == "XsdEnumerationFacets":
        return "schema_enumeration", f"value {value!r} is not allowed: {reason}", ""
    shown = f"value {value!r}: " if value is not None else ""
    return "schema_value", f"{shown}{reason}", ""


def _local(tag: object) -> str:
    return etree.QName(str(tag)).localname


def _describe_children(error: Any) -> tuple[str, str, str]:
    expected = [_local(decl.name) for decl in (error.expected or ()) if getattr(decl, "name", None)]
    wanted = " or ".join(expected) or "nothing more"
    child = error.invalid_child
    if child is None:
        suffix = f"/{expected[0]}" if len(expected) == 1 else ""
        return "schema_missing_element", f"required element {wanted} is missing", suffix
    name = _local(child.tag)
    known = {_local(decl.name) for decl in error.validator.iter_elements()}
    if name in known:
        suffix = f"/{expected[0]}" if len(expected) == 1 else ""
        return (
            "schema_missing_element",
            f"required element {wanted} is missing (found {name} in its place)",
            suffix,
        )
    return (
        "schema_unexpected_element",
        f"element {name} is not allowed here (expected {wanted})",
        f"/{name}",
    )


# --- items into domain records -------------------------------------------------------------


def _datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Reader:
    """Reads the children of one element by local name (schema-valid input only)."""

    __slots__ = ("node",)

    def __init__(self, node: etree._Element) -> None:
        self.node = node

    def opt(self, name: str) -> str | None:
        text = self.node.findtext(f"{{{etree.QName(self.node).namespace}}}{name}")
        return text.strip() if text is not None else None

    def req(self, name: str) -> str:
        text = self.opt(name)
        if text is None:
            raise EnvelopeInvalid(f"{etree.QName(self.node).localname} has no {name}")
        return text

    def child(self, name: str) -> _Reader | None:
        node = self.node.find(f"{{{etree.QName(self.node).namespace}}}{name}")
        return _Reader(node) if node is not None else None

    def all(self, name: str) -> list[etree._Element]:
        return self.node.findall(f"{{{etree.QName(self.node).namespace}}}{name}")


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def _party(reader: _Reader) -> Party:
    address = reader.child("Address")
    assert address is not None
    return Party(
        name=reader.req("Name"),
        address=Address(
            street=tuple((node.text or "").strip() for node in address.all("Street")),
            city=address.req("City"),
            country=address.req("Country"),
            postcode=address.opt("Postcode"),
            subdivision=address.opt("Subdivision"),
        ),
        email=reader.opt("Email"),
        phone=reader.opt("Phone"),
        eori=reader.opt("Eori"),
    )


def postal_item(element: etree._Element) -> PostalItem:
    """A schema-valid ``Item`` element as a :class:`PostalItem`."""
    item = _Reader(element)
    sender, addressee = item.child("Sender"), item.child("Addressee")
    transport, contents = item.child("Transport"), item.child("Contents")
    if sender is None or addressee is None or transport is None or contents is None:
        raise EnvelopeInvalid("an item lacks Sender, Addressee, Transport or Contents")
    importer = item.child("Importer")
    departure = transport.opt("DepartureTime")
    lines = tuple(
        ContentLine(
            description=line.req("Description"),
            quantity=int(line.req("Quantity")),
            net_weight=Decimal(line.req("NetWeight")),
            value=Decimal(line.req("Value")),
            currency=line.req("Currency"),
            origin_country=line.req("OriginCountry"),
            hs_code=line.opt("HsCode"),
        )
        for line in map(_Reader, contents.all("Line"))
    )
    return PostalItem(
        item_id=item.req("ItemId"),
        category=ItemCategory(item.req("Category")),
        posting_date=date.fromisoformat(item.req("PostingDate")[:10]),
        sender=_party(sender),
        addressee=_party(addressee),
        gross_weight=Decimal(item.req("GrossWeight")),
        total_value=Decimal(item.req("TotalValue")),
        currency=item.req("Currency"),
        lines=lines,
        transport=Transport(
            departure_country=transport.req("DepartureCountry"),
            destination_country=transport.req("DestinationCountry"),
            departure_airport=transport.opt("DepartureAirport"),
            departure_time=_datetime(departure) if departure else None,
            carrier=transport.opt("Carrier"),
            flight_number=transport.opt("FlightNumber"),
            receptacle_id=transport.opt("ReceptacleId"),
        ),
        office_of_origin=item.opt("OfficeOfOrigin"),
        postage=_decimal(item.opt("Postage")),
        insured_value=_decimal(item.opt("InsuredValue")),
        ioss_number=importer.opt("IossNumber") if importer else None,
        importer_eori=importer.opt("Eori") if importer else None,
        comments=item.opt("Comments"),
    )
