"""Messages the connector writes: built from domain values, valid against their schemas."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from connector.core.model import Acknowledgement
from connector.core.schemas import MessageKind

__all__ = ["acknowledgement_xml", "renamespace", "xml_datetime"]


def xml_datetime(value: datetime) -> str:
    """An xs:dateTime in UTC with millisecond precision and a Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def renamespace(element: etree._Element, namespace: str) -> etree._Element:
    """A copy of ``element`` with every element moved into ``namespace`` (default prefix).

    Items travel between message kinds (item batch, amendment, declaration batch) that each
    have their own namespace; the copy is rebuilt element by element, because retagging in
    place can leave a stale namespace declaration behind.
    """

    def copy(source: etree._Element, parent: etree._Element | None) -> etree._Element:
        name = f"{{{namespace}}}{etree.QName(source).localname}"
        if parent is None:
            target = etree.Element(name, nsmap={None: namespace})  # type: ignore[dict-item]
        else:
            target = etree.SubElement(parent, name)
        target.text, target.tail = source.text, source.tail
        for child in source:
            copy(child, target)
        return target

    result = copy(element, None)
    result.tail = None
    return result


def acknowledgement_xml(ack: Acknowledgement) -> bytes:
    """The acknowledgement of an item batch (acknowledgement-1.xsd)."""
    ns = MessageKind.ACKNOWLEDGEMENT.namespace
    sub = etree.SubElement

    def child(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        node = sub(parent, f"{{{ns}}}{name}")
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
