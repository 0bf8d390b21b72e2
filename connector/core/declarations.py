"""Declaration batches for Customs: accepted items with their references, versions and warnings.

The forward stage's ``BuildBatch`` (:mod:`connector.flow.forward`) is made of this module and
:func:`connector.core.signing.sign`::

    def build(claims: Sequence[ForwardClaim], destination: str) -> tuple[str, bytes]:
        now = clock.now()
        batch_id = declarations.new_declaration_batch_id(destination, now, rng)
        root = declarations.declaration_batch(
            batch_id, connector_id, destination, now,
            [
                declarations.Declared(c.reference, c.operator_id, c.version, c.item_xml, c.findings)
                for c in claims
            ],
        )
        return batch_id, signing.sign(root, key)

Every failure is an :class:`~connector.errors.InvalidMessage` (a ``ConnectorError``), so the
forward stage records it and retries instead of crashing; its ``context`` names the item
``reference`` when one item is at fault.

Stored items are serialized ``Item`` elements of the item-batch namespace (see
:func:`connector.flow.accept.incoming_items`). When every item of a batch is in its usual form
(one default namespace declaration, on the item's start tag only), the whole batch is
assembled as bytes, each item's start tag losing its namespace declaration to inherit the
batch's, and parsed once with the hardened parser (a third faster than an item at a time);
the parsed tree must then show exactly one ``Item`` per declaration. Otherwise each item is
parsed on its own and moved into the declaration-batch namespace: by swapping the namespace
name in its start tag when it is in its usual form, else with
:func:`~connector.core.outbound.renamespace`. Both give the same tree.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from lxml import etree

from connector.core.checks.outcome import Finding, Severity
from connector.core.outbound import renamespace, xml_datetime
from connector.core.schemas import MessageKind
from connector.core.xmlsafe import parse_xml
from connector.errors import InvalidMessage

__all__ = [
    "MAX_DECLARATIONS",
    "MAX_FINDING_MESSAGE",
    "Declared",
    "check_aware",
    "check_count",
    "check_identifier",
    "check_version",
    "declaration_batch",
    "new_batch_id",
    "new_declaration_batch_id",
    "parse_item",
]

#: Most declarations one batch may carry (the XSD's bound); the forward batch size must not
#: be larger.
MAX_DECLARATIONS: Final = 10_000
#: Longest finding message the schema admits (LongText), in characters.
MAX_FINDING_MESSAGE: Final = 1000

_ITEM_NS: Final = MessageKind.ITEM_BATCH.namespace
_NS: Final = MessageKind.DECLARATION_BATCH.namespace
_ITEM_TAG: Final = f"{{{_ITEM_NS}}}Item"

# The usual form of a stored item, and the same start tag in the declaration namespace.
_STORED_START: Final = f'<Item xmlns="{_ITEM_NS}">'.encode()
_DECLARED_START: Final = f'<Item xmlns="{_NS}">'.encode()
_ITEM_NS_BYTES: Final = _ITEM_NS.encode()
# The parts of a batch assembled as bytes (see _assembled); values are identifiers.
_HEAD: Final = (
    f'<DeclarationBatch xmlns="{_NS}"><Header><DeclarationBatchId>%s</DeclarationBatchId>'
    "<ConnectorId>%s</ConnectorId><Destination>%s</Destination><CreatedAt>%s</CreatedAt>"
    "</Header><Declarations>"
).encode()
_DECLARATION_HEAD: Final = (
    b"<Declaration><ItemReference>%s</ItemReference><OperatorId>%s</OperatorId>"
    b"<Version>%s</Version><Item>"
)


def _tag(name: str) -> str:
    return f"{{{_NS}}}{name}"


_ROOT: Final = _tag("DeclarationBatch")
_HEADER: Final = _tag("Header")
_BATCH_ID: Final = _tag("DeclarationBatchId")
_CONNECTOR_ID: Final = _tag("ConnectorId")
_DESTINATION: Final = _tag("Destination")
_CREATED_AT: Final = _tag("CreatedAt")
_DECLARATIONS: Final = _tag("Declarations")
_DECLARATION: Final = _tag("Declaration")
_REFERENCE: Final = _tag("ItemReference")
_OPERATOR_ID: Final = _tag("OperatorId")
_VERSION: Final = _tag("Version")
_DECLARED_ITEM: Final = _tag("Item")
_FINDINGS: Final = _tag("Findings")
_FINDING: Final = _tag("Finding")
_SEVERITY: Final = _tag("Severity")
_CODE: Final = _tag("Code")
_MESSAGE: Final = _tag("Message")

_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9]{1,16}")
_NOT_CODE: Final = re.compile(r"[^a-z0-9_]")
# Characters XML 1.0 cannot carry at all; a finding message may quote operator text.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ID_TARGET_CHARS: Final = 24


@dataclass(frozen=True, slots=True)
class Declared:
    """One item to declare: the core's view of a forward claim."""

    reference: str
    """The connector's stable item reference (Customs deduplicates on it)."""
    operator_id: str
    """The designated operator that sent the item."""
    version: int
    """The item data's version, 1 or more."""
    item_xml: bytes
    """The stored ``Item`` element, serialized, in the item-batch namespace."""
    findings: tuple[Finding, ...] = ()
    """The intake checks' findings; only warnings are declared."""


def check_identifier(value: str, what: str) -> str:
    """``value`` if it is a schema ``Identifier`` (1-64 of ``A-Za-z0-9._:-``).

    Raises:
        InvalidMessage: naming ``what`` and the value.
    """
    if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
        raise InvalidMessage(
            f"{what} {value!r} is not an identifier (1 to 64 letters, digits, '.', '_', ':', '-')",
            field=what,
        )
    return value


def check_count(count: int, what: str) -> None:
    """Raise :class:`InvalidMessage` unless ``1 <= count <= MAX_DECLARATIONS``."""
    if not 1 <= count <= MAX_DECLARATIONS:
        raise InvalidMessage(
            f"a {what} holds 1 to {MAX_DECLARATIONS:,} items, not {count:,}",
            count=count,
            limit=MAX_DECLARATIONS,
        )


def check_aware(value: datetime, what: str) -> datetime:
    """``value`` if it is timezone-aware; raise :class:`InvalidMessage` naming ``what``."""
    if value.utcoffset() is None:
        raise InvalidMessage(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value


def check_version(version: int, reference: str) -> str:
    """``version`` as the schema's positive integer; raise :class:`InvalidMessage` below 1."""
    if type(version) is not int or version < 1:
        raise InvalidMessage(
            f"item {reference} has version {version!r}; versions start at 1",
            reference=reference,
        )
    return str(version)


def new_batch_id(
    prefix: str, target: str, now: datetime, rng_or_token: random.Random | str | None = None
) -> str:
    """``<prefix>-<target>-<UTC time to the ms>-<random>``, at most 64 characters.

    ``target`` is cut to 24 characters. The random part is 48 bits from ``rng_or_token`` (a
    seeded :class:`random.Random` makes it deterministic; None uses the system's CSPRNG) or a
    caller's token of 1-16 letters and digits. Ids sort by creation time within a target.

    Raises:
        InvalidMessage: ``target`` is not an identifier, ``now`` is naive, or a bad token.
    """
    check_identifier(target, "target")
    utc = check_aware(now, "now").astimezone(UTC)
    stamp = utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(rng_or_token, str):
        if _TOKEN.fullmatch(rng_or_token) is None:
            raise InvalidMessage(f"batch id token {rng_or_token!r} is not 1-16 letters or digits")
        token = rng_or_token
    else:
        rng = rng_or_token if rng_or_token is not None else random.SystemRandom()
        token = f"{rng.getrandbits(48):012x}"
    return check_identifier(f"{prefix}-{target[:_ID_TARGET_CHARS]}-{stamp}-{token}", "batch id")


def new_declaration_batch_id(
    destination: str, now: datetime, rng_or_token: random.Random | str | None = None
) -> str:
    """A new declaration batch id: ``DB-<destination>-<YYYYMMDDTHHMMSSmmmZ>-<12 hex>``.

    Unique by time and 48 random bits; deterministic with a seeded :class:`random.Random`.
    See :func:`new_batch_id`.
    """
    return new_batch_id("DB", destination, now, rng_or_token)


def _naming(error: InvalidMessage, reference: str) -> InvalidMessage:
    """The same kind of error, its message and context naming the stored item."""
    context = {**error.context, "reference": reference}
    return type(error)(f"stored item {reference or '?'}: {error.message}", **context)


def parse_item(item_xml: bytes, reference: str = "") -> etree._Element:
    """The stored item as an element in its own (item-batch) namespace, parsed safely.

    Raises:
        InvalidMessage: the bytes are not XML the hardened parser accepts (an ``Xml*``
            subclass), or not an ``Item`` element; ``context["reference"]`` names the item.
    """
    try:
        item = parse_xml(item_xml)
    except InvalidMessage as error:
        raise _naming(error, reference) from error
    if etree.QName(item).localname != "Item":
        raise InvalidMessage(
            f"stored item {reference or '?'} is a {etree.QName(item).localname}, not an Item",
            reference=reference,
        )
    return item


def _usual_form(item_xml: bytes) -> bool:
    """Whether a stored item declares its namespace once, as the default, on its start tag."""
    return (
        item_xml.startswith(_STORED_START) and item_xml.find(_ITEM_NS_BYTES, len(_STORED_START)) < 0
    )


def _declared_item(item_xml: bytes, reference: str) -> etree._Element:
    """The stored item parsed straight into the declaration namespace (one parse)."""
    if _usual_form(item_xml):
        try:
            return parse_xml(_DECLARED_START + item_xml[len(_STORED_START) :])
        except InvalidMessage as error:
            raise _naming(error, reference) from error
    item = parse_item(item_xml, reference)
    if item.tag != _ITEM_TAG:
        raise InvalidMessage(
            f"stored item {reference} is not in the item-batch namespace: {item.tag}",
            reference=reference,
        )
    return renamespace(item, _NS)


def _finding_code(code: str) -> str:
    return _NOT_CODE.sub("_", code.lower())[:64] or "finding"


def _finding_message(message: str, code: str) -> str:
    text = " ".join(_NOT_XML_CHAR.sub(" ", message).split())
    if len(text) > MAX_FINDING_MESSAGE:
        text = text[: MAX_FINDING_MESSAGE - 1] + "\u2026"
    return text or code


def _add_findings(declaration: etree._Element, findings: tuple[Finding, ...]) -> None:
    warnings = [finding for finding in findings if finding.severity is Severity.WARNING]
    if not warnings:
        return
    sub = etree.SubElement
    container = sub(declaration, _FINDINGS)
    for finding in warnings:
        node = sub(container, _FINDING)
        code = _finding_code(finding.code)
        sub(node, _SEVERITY).text = Severity.WARNING.value
        sub(node, _CODE).text = code
        sub(node, _MESSAGE).text = _finding_message(finding.message, code)


def declaration_batch(
    batch_id: str,
    connector_id: str,
    destination: str,
    created_at: datetime,
    declared: Sequence[Declared],
) -> etree._Element:
    """The unsigned ``DeclarationBatch`` root (declaration-batch-1.xsd) of ``declared``.

    Items keep their content and order; each is parsed once (see the module notes). Only
    ``warning`` findings are written (``error`` findings rejected their item at intake), their
    code reduced to ``[a-z0-9_]{1,64}`` and their message to one line of at most 1,000
    characters. Sign the returned element with :func:`connector.core.signing.sign` (no
    re-parse).

    Raises:
        InvalidMessage: 0 or more than :data:`MAX_DECLARATIONS` items, an id that is not an
            identifier, a naive ``created_at``, a version below 1, or a stored item that does
            not parse as an ``Item`` (``context["reference"]`` names it).
    """
    check_count(len(declared), "declaration batch")
    header = (
        check_identifier(batch_id, "declaration batch id"),
        check_identifier(connector_id, "connector id"),
        check_identifier(destination, "destination"),
        xml_datetime(check_aware(created_at, "created_at")),
    )
    fields = []
    for entry in declared:
        reference = check_identifier(entry.reference, "item reference")
        version = check_version(entry.version, reference)
        fields.append((reference, check_identifier(entry.operator_id, "operator id"), version))
    root = _assembled(header, fields, declared)
    if root is None:
        root = _built(header, fields, declared)
    return root


def _assembled(
    header: tuple[str, str, str, str],
    fields: Sequence[tuple[str, str, str]],
    declared: Sequence[Declared],
) -> etree._Element | None:
    """The batch parsed once from its parts, or None when that is not sure to give what
    :func:`_built` gives.

    Only when every stored item is in its usual form: its start tag then loses the item-batch
    namespace declaration and inherits the root's. Every part but the stored items is an
    identifier or a timestamp (no markup); the parsed tree must have, in order, one
    ``Declaration`` per entry with that entry's reference, operator and version and one
    ``Item`` followed by nothing but blanks, and nothing after the declarations, so stored
    bytes that are not exactly one element cannot change the batch's shape.
    """
    parts = [_HEAD % tuple(value.encode() for value in header)]
    for (reference, operator_id, version), entry in zip(fields, declared, strict=True):
        item_xml = entry.item_xml
        if not _usual_form(item_xml):
            return None
        parts.append(
            _DECLARATION_HEAD % (reference.encode(), operator_id.encode(), version.encode())
        )
        parts.append(item_xml[len(_STORED_START) :])
        parts.append(b"</Declaration>")
    parts.append(b"</Declarations></DeclarationBatch>")
    try:
        root = parse_xml(b"".join(parts))
    except InvalidMessage:
        return None  # _built names the stored item at fault
    if len(root) != 2 or root[1].tag != _DECLARATIONS or root[1].tail is not None:
        return None
    declarations = root[1]
    if len(declarations) != len(declared):
        return None
    for node, (reference, operator_id, version), entry in zip(
        declarations, fields, declared, strict=True
    ):
        if (
            len(node) != 4
            or node.tail is not None
            or node[3].tag != _DECLARED_ITEM
            or (node[0].text, node[1].text, node[2].text) != (reference, operator_id, version)
            or (node[3].tail or "").strip()
        ):
            return None
        node[3].tail = None
        if entry.findings:
            _add_findings(node, entry.findings)
    return root


def _built(
    header: tuple[str, str, str, str],
    fields: Sequence[tuple[str, str, str]],
    declared: Sequence[Declared],
) -> etree._Element:
    """The batch built element by element, each stored item parsed on its own."""
    sub = etree.SubElement
    root = etree.Element(_ROOT, nsmap={None: _NS})  # type: ignore[dict-item]
    head = sub(root, _HEADER)
    for tag, text in zip(
        (_BATCH_ID, _CONNECTOR_ID, _DESTINATION, _CREATED_AT), header, strict=True
    ):
        sub(head, tag).text = text
    declarations = sub(root, _DECLARATIONS)
    for (reference, operator_id, version), entry in zip(fields, declared, strict=True):
        declaration = sub(declarations, _DECLARATION)
        sub(declaration, _REFERENCE).text = reference
        sub(declaration, _OPERATOR_ID).text = operator_id
        sub(declaration, _VERSION).text = version
        item = _declared_item(entry.item_xml, reference)
        item.tail = None
        declaration.append(item)
        if entry.findings:
            _add_findings(declaration, entry.findings)
    return root
