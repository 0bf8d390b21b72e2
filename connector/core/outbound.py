"""Messages the connector writes: built from domain values, valid against their schemas."""

from __future__ import annotations

import re
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


#: Characters XML 1.0 cannot carry: lxml refuses them in text, and so does the writer below.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    """``value`` as element content, escaped exactly as lxml escapes text."""
    if _NOT_XML.search(value):
        raise ValueError("All strings must be XML compatible: no NULL bytes or control characters")
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


def acknowledgement_xml(ack: Acknowledgement) -> bytes:
    """The acknowledgement of an item batch (acknowledgement-1.xsd).

    Written as text: the acknowledgement is flat and answers every push, and building it as
    an lxml tree cost more than validating the batch's rules. The bytes are those
    ``etree.tostring`` gives for the same tree (tests compare the two).
    """
    ns = MessageKind.ACKNOWLEDGEMENT.namespace
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>\n",
        f'<Acknowledgement xmlns="{ns}"><BatchId>{_text(ack.batch_id)}</BatchId>',
        f"<OperatorId>{_text(ack.operator_id)}</OperatorId>",
        f"<ReceivedAt>{xml_datetime(ack.received_at)}</ReceivedAt>",
        "<Items>" if ack.items else "<Items/>",
    ]
    add = parts.append
    for item in ack.items:
        status = "accepted" if item.accepted else "rejected"
        add(
            f"<Item><ItemIndex>{item.item_index}</ItemIndex>"
            f"<ItemId>{_text(item.item_id[:64])}</ItemId><Status>{status}</Status>"
        )
        if item.reference is not None:
            add(f"<Reference>{_text(item.reference)}</Reference>")
        if item.errors:
            add("<Errors>")
            for error in item.errors:
                add(
                    f"<Error><Code>{_text(error.code)}</Code>"
                    f"<Path>{_text(error.path or '.')}</Path>"
                    f"<Message>{_text(error.message[:1000])}</Message></Error>"
                )
            add("</Errors>")
        if item.findings:
            add("<Findings>")
            for finding in item.findings:
                add(
                    f"<Finding><Severity>{finding.severity.value}</Severity>"
                    f"<Code>{_text(finding.code)}</Code>"
                    f"<Path>{_text(finding.path[:512] or '.')}</Path>"
                    f"<Message>{_text(finding.message[:1000])}</Message></Finding>"
                )
            add("</Findings>")
        add("</Item>")
    if ack.items:
        add("</Items>")
    add("</Acknowledgement>")
    return "".join(parts).encode("utf-8")
