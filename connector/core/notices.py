"""Item notices: the Customs decision on one item, passed on to its operator, signed.

One notice per applied decision (a repeat gets none; see
:func:`connector.core.lifecycle.decided`). The decide stage builds the notice value with
:func:`notice_for` in the transaction that applies the decision, so a crash cannot leave a
decision without its notice; the notify stage signs and delivers it::

    notice = notices.notice_for(response, decision, operator_id)       # flow/decide
    signed = signing.sign(notices.item_notice_xml(notice), key)         # flow/notify
    body = notices.notice_as_dict(notice, signed)                       # JSON feed entry

Ordering, the two rules the stages keep:

- **The feed** (``GET /v1/notices?after=CURSOR``) is in :attr:`ItemNotice.sequence` order:
  the store assigns it, increasing, when it stores the notice, and the cursor is the last
  sequence read. A later decision is a later notice, so the feed never shows a notice that a
  notice before it contradicts.
- **Webhook delivery** takes DO_NOT_LOAD first (:attr:`ItemNotice.priority`), but never a
  notice before an older pending notice of the same item: :func:`delivery_order`.

Notice ids are derived from (destination, response id, item reference), so processing the
same decision twice yields the same id, and the operator can drop duplicates of an
at-least-once delivery by id.

The XML form of the feed: no message kind wraps several notices, and one cannot simply be
added because each signed notice is an enveloped signature over its own whole document. The
XML feed should be a new message kind ``notice-feed-1.xsd`` (root ``NoticeFeed`` with
``NextCursor`` and ``Notices`` holding 0..N ``SignedNotice`` elements, each the signed
``ItemNotice`` document base64-encoded, so its bytes and signature stay intact).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

from lxml import etree

from connector.core import decisions
from connector.core.model import CustomsDecision, ScreeningMethod
from connector.core.outbound import xml_datetime
from connector.core.schemas import MessageKind, SchemaRegistry, default_registry
from connector.errors import EnvelopeInvalid, InvalidMessage, MessageKindUnknown

__all__ = [
    "PRIORITY",
    "ItemNotice",
    "delivery_order",
    "item_notice_xml",
    "new_notice_id",
    "notice_as_dict",
    "notice_for",
    "parse_item_notice",
]

_KIND: Final = MessageKind.ITEM_NOTICE
_NS: Final = _KIND.namespace

D = CustomsDecision

#: Delivery priority of each decision, 0 first: stop the item, keep it for inspection,
#: answer a referral before loading, correct a refused declaration, carry on.
PRIORITY: MappingProxyType[CustomsDecision, int] = MappingProxyType(
    {
        D.DO_NOT_LOAD: 0,
        D.HOLD: 1,
        D.REQUEST_SCREENING: 2,
        D.REQUEST_INFO: 3,
        D.REJECTED: 4,
        D.RELEASE: 5,
    }
)


@dataclass(frozen=True, slots=True)
class ItemNotice:
    """The notice of one Customs decision on one item, for the operator that declared it."""

    notice_id: str
    operator_id: str
    item_id: str
    item_reference: str
    decision: CustomsDecision
    issued_at: datetime
    """When Customs issued the decision (the response's IssuedAt); timezone-aware."""
    reason: str | None = None
    customs_reference: str | None = None
    required_action: str | None = None
    referral_reference: str | None = None
    """With REQUEST_INFO and REQUEST_SCREENING: what the referral answer must quote."""
    screening_method: ScreeningMethod | None = None
    sequence: int | None = None
    """The notice's position in the feed, assigned by the store (None before it is stored)."""

    @property
    def final(self) -> bool:
        """False for the interim decisions REQUEST_INFO and REQUEST_SCREENING."""
        return self.decision not in decisions.INTERIM

    @property
    def priority(self) -> int:
        """Delivery priority, 0 first (DO_NOT_LOAD)."""
        return PRIORITY[self.decision]


def new_notice_id(destination: str, response_id: str, item_reference: str) -> str:
    """The id of the notice of one decision: ``NTC`` and 26 base32 characters (130 bits).

    Derived, not random: the same decision (a response has at most one per item) always has
    the same notice id.
    """
    raw = hashlib.sha256(f"{destination}\x1f{response_id}\x1f{item_reference}".encode()).digest()
    return "NTC" + base64.b32encode(raw[:20]).decode("ascii")[:26]


def notice_for(
    response: decisions.CustomsResponse, decision: decisions.Decision, operator_id: str
) -> ItemNotice:
    """The notice of ``decision`` (one of ``response``'s) for the item's operator."""
    return ItemNotice(
        notice_id=new_notice_id(
            response.destination, response.response_id, decision.item_reference
        ),
        operator_id=operator_id,
        item_id=decision.item_id,
        item_reference=decision.item_reference,
        decision=decision.code,
        issued_at=response.issued_at,
        reason=decision.reason,
        customs_reference=decision.customs_reference,
        required_action=decision.required_action,
        referral_reference=decision.referral_reference,
        screening_method=decision.screening_method,
    )


def delivery_order(pending: Iterable[ItemNotice]) -> list[ItemNotice]:
    """Pending notices in the order to deliver them by webhook.

    Each item's notices stay in sequence order (a later decision is never delivered before an
    earlier one); items go by their most urgent pending notice, then by their oldest one. A
    DO_NOT_LOAD thus takes its item's older notices with it ahead of the rest. Notices
    without a sequence count as newest, in the order given.
    """
    chains: dict[str, list[tuple[int, int, ItemNotice]]] = {}
    for position, notice in enumerate(pending):
        order = notice.sequence if notice.sequence is not None else _UNSTORED
        chain = chains.setdefault(f"{notice.operator_id}\x1f{notice.item_reference}", [])
        chain.append((order, position, notice))
    ranked = []
    for chain in chains.values():
        chain.sort(key=lambda entry: (entry[0], entry[1]))
        urgency = min(entry[2].priority for entry in chain)
        ranked.append(((urgency, chain[0][0], chain[0][1]), [entry[2] for entry in chain]))
    ranked.sort(key=lambda entry: entry[0])
    return [notice for _, chain_notices in ranked for notice in chain_notices]


_UNSTORED: Final = 2**63


def item_notice_xml(notice: ItemNotice) -> etree._Element:
    """The unsigned item notice (item-notice-1.xsd); sign it with
    :func:`connector.core.signing.sign`.

    Texts are collapsed and cut to the schema's 350 characters.

    Raises:
        InvalidMessage: a naive issue time, or a referral without its referral reference.
    """
    if notice.issued_at.utcoffset() is None:
        raise InvalidMessage("a notice's issue time must be timezone-aware")
    if not notice.final and notice.referral_reference is None:
        raise InvalidMessage(f"a {notice.decision.value} notice needs its referral reference")
    root = etree.Element(f"{{{_NS}}}ItemNotice", nsmap={None: _NS})  # type: ignore[dict-item]
    _add(root, "NoticeId", notice.notice_id)
    _add(root, "OperatorId", notice.operator_id)
    _add(root, "ItemId", notice.item_id)
    _add(root, "ItemReference", notice.item_reference)
    _add(root, "Decision", notice.decision.value)
    _add(root, "Final", "true" if notice.final else "false")
    _add(root, "Reason", decisions.short_text(notice.reason))
    _add(root, "CustomsReference", notice.customs_reference)
    _add(root, "ReferralReference", notice.referral_reference)
    _add(root, "RequiredAction", decisions.short_text(notice.required_action))
    if notice.screening_method is not None:
        _add(root, "ScreeningMethod", notice.screening_method.value)
    _add(root, "IssuedAt", xml_datetime(notice.issued_at))
    return root


def _add(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, f"{{{_NS}}}{name}").text = text


def notice_as_dict(notice: ItemNotice, signed_xml: bytes) -> dict[str, object]:
    """The JSON feed entry of a notice (DESIGN.md section 5): ``notice_id``, ``item_id``,
    ``decision``, ``reason``, ``customs_reference``, ``issued_at`` and ``signed_xml`` (the
    signed document as text, the operator's evidence)."""
    return {
        "notice_id": notice.notice_id,
        "item_id": notice.item_id,
        "decision": notice.decision.value,
        "reason": notice.reason,
        "customs_reference": notice.customs_reference,
        "issued_at": xml_datetime(notice.issued_at),
        "signed_xml": signed_xml.decode("utf-8"),
    }


def parse_item_notice(
    root: etree._Element, *, registry: SchemaRegistry | None = None
) -> ItemNotice:
    """A (verified) item notice as a value, for the mock operator and tests.

    Raises:
        MessageKindUnknown: the root is not an ``ItemNotice``.
        EnvelopeInvalid: the notice does not conform to its schema, or ``Final`` contradicts
            its decision.
    """
    registry = registry or default_registry()
    if root.tag != _KIND.root_tag:
        kind = MessageKind.of_root(root.tag)
        raise MessageKindUnknown(f"expected an item notice, got a {kind.value} message")
    decisions.check_schema(root, _KIND, registry)

    def text(name: str) -> str | None:
        value = root.findtext(f"{{{_NS}}}{name}")
        return " ".join(value.split()) if value is not None else None

    method = text("ScreeningMethod")
    notice = ItemNotice(
        notice_id=text("NoticeId") or "",
        operator_id=text("OperatorId") or "",
        item_id=text("ItemId") or "",
        item_reference=text("ItemReference") or "",
        decision=CustomsDecision(text("Decision") or ""),
        issued_at=decisions.read_datetime(text("IssuedAt") or "", "IssuedAt"),
        reason=text("Reason"),
        customs_reference=text("CustomsReference"),
        required_action=text("RequiredAction"),
        referral_reference=text("ReferralReference"),
        screening_method=ScreeningMethod(method) if method is not None else None,
    )
    if (text("Final") in ("true", "1")) != notice.final:
        raise EnvelopeInvalid(f"a {notice.decision.value} notice cannot have Final {text('Final')}")
    return notice
