"""Referral answers: the operator's answer to a REQUEST_INFO or REQUEST_SCREENING, and its
way on to Customs.

The answer route (``POST /v1/answers``) and the forwarding of the answer::

    answer = referrals.parse_referral_answer(parse_xml(body))     # schema-valid value
    item = await store.item(operator_id, answer.item_id)
    pending = referrals.pending_referral(item, stored_referral_reference)
    referrals.check_answer(answer, operator_id=operator_id, pending=pending)
    item, event = lifecycle.answer_forwarding(item, operator_id, now)   # one transaction
    ...
    signed = signing.sign(referrals.referral_answer_xml(answer), key)   # to the destination

**What goes to Customs.** The referral answer schema is already the connector-to-Customs
message (xsd/README.md: operator → connector → Customs), so the connector forwards the answer
in that same message kind, rebuilt from the validated value and signed by the connector (an
operator's own signature, if any, is verified at the edge and not carried on). Customs finds
the item by ``ReferralReference``, its own reference of the referral, checked against
``ItemId`` and ``OperatorId``; no ``ItemReference`` is added, because a new element in a
message Customs receives would be a breaking schema change (xsd/README.md, Versioning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lxml import etree

from connector.core import decisions
from connector.core.lifecycle import awaiting_answer
from connector.core.model import (
    CustomsDecision,
    DocumentType,
    ScreeningMethod,
    ScreeningOutcome,
    StoredItem,
)
from connector.core.outbound import xml_datetime
from connector.core.schemas import MessageKind, SchemaRegistry, default_registry
from connector.errors import (
    EnvelopeInvalid,
    Forbidden,
    InvalidMessage,
    MessageKindUnknown,
    NotFound,
    ReferralMismatch,
)

__all__ = [
    "MAX_DOCUMENTS",
    "Document",
    "PendingReferral",
    "ReferralAnswer",
    "Screening",
    "check_answer",
    "parse_referral_answer",
    "pending_referral",
    "referral_answer_xml",
]

_KIND: Final = MessageKind.REFERRAL_ANSWER
_NS: Final = _KIND.namespace

#: Most documents one answer may name (the XSD's bound).
MAX_DOCUMENTS: Final = 20

_KIND_NAMES: Final = {
    CustomsDecision.REQUEST_INFO: "request for information",
    CustomsDecision.REQUEST_SCREENING: "request for screening",
}


@dataclass(frozen=True, slots=True)
class Document:
    """A document named in an answer (metadata only; the document travels otherwise)."""

    type: DocumentType
    reference: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Screening:
    """The result of the screening Customs asked for."""

    method: ScreeningMethod
    outcome: ScreeningOutcome
    screened_at: datetime
    remarks: str | None = None


@dataclass(frozen=True, slots=True)
class ReferralAnswer:
    """An operator's answer to a referral on one item: information or a screening result.

    Exactly one of (``text`` and/or ``documents``) and ``screening`` is given.
    """

    answer_id: str
    operator_id: str
    item_id: str
    referral_reference: str
    answered_at: datetime
    text: str | None = None
    documents: tuple[Document, ...] = ()
    screening: Screening | None = None

    @property
    def kind(self) -> CustomsDecision:
        """The referral this answers: REQUEST_SCREENING with a screening, else REQUEST_INFO."""
        if self.screening is not None:
            return CustomsDecision.REQUEST_SCREENING
        return CustomsDecision.REQUEST_INFO

    @property
    def screening_outcome(self) -> ScreeningOutcome | None:
        return self.screening.outcome if self.screening is not None else None


@dataclass(frozen=True, slots=True)
class PendingReferral:
    """The referral an item waits to have answered."""

    item_id: str
    referral_reference: str
    kind: CustomsDecision
    """REQUEST_INFO or REQUEST_SCREENING."""


def pending_referral(
    item: StoredItem | None, referral_reference: str | None
) -> PendingReferral | None:
    """The referral ``item`` waits to have answered, or None.

    ``referral_reference`` is the one the store keeps with the item's current decision.
    """
    if item is None or referral_reference is None or not awaiting_answer(item):
        return None
    assert item.decision is not None
    return PendingReferral(item.item_id, referral_reference, item.decision)


def check_answer(
    answer: ReferralAnswer, *, operator_id: str, pending: PendingReferral | None
) -> None:
    """Refuse an answer that does not answer the referral pending on its item.

    ``operator_id`` is the authenticated caller; ``pending`` what :func:`pending_referral`
    found for ``(operator_id, answer.item_id)``.

    Raises:
        Forbidden: the answer names another operator than the caller.
        NotFound: no referral is pending on the item (never referred, decided since, or
            already answered).
        ReferralMismatch: the answer quotes another referral reference, or its kind does not
            fit (a screening result to a request for information, or the other way round).
    """
    if answer.operator_id != operator_id:
        raise Forbidden(
            f"the answer is from operator {answer.operator_id}, not {operator_id}",
            operator_id=answer.operator_id,
        )
    if pending is None or pending.item_id != answer.item_id:
        raise NotFound(
            f"no referral is pending on item {answer.item_id}",
            item_id=answer.item_id,
            referral_reference=answer.referral_reference,
        )
    if answer.referral_reference != pending.referral_reference:
        raise ReferralMismatch(
            f"the answer quotes referral {answer.referral_reference}, but item "
            f"{answer.item_id} waits for an answer to referral {pending.referral_reference}",
            item_id=answer.item_id,
            referral_reference=answer.referral_reference,
            pending_referral_reference=pending.referral_reference,
        )
    if answer.kind is not pending.kind:
        given = "a screening result" if answer.screening is not None else "information"
        raise ReferralMismatch(
            f"referral {pending.referral_reference} is a {_KIND_NAMES[pending.kind]}; "
            f"the answer gives {given}",
            item_id=answer.item_id,
            referral_reference=answer.referral_reference,
            expected=pending.kind.value,
            found=answer.kind.value,
        )


# --- reading ---------------------------------------------------------------------------------


def parse_referral_answer(
    root: etree._Element, *, registry: SchemaRegistry | None = None
) -> ReferralAnswer:
    """A referral answer (parsed with :func:`~connector.core.xmlsafe.parse_xml`, or the
    ``signed_xml`` of a verified one) as a value.

    Raises:
        MessageKindUnknown: the root is not a ``ReferralAnswer``.
        EnvelopeInvalid: the answer does not conform to its schema (the message says why).
    """
    registry = registry or default_registry()
    if root.tag != _KIND.root_tag:
        kind = MessageKind.of_root(root.tag)
        raise MessageKindUnknown(f"expected a referral answer, got a {kind.value} message")
    decisions.check_schema(root, _KIND, registry)
    answered_at = _aware(_text(root, "AnsweredAt"), "AnsweredAt")
    information = root.find(f"{{{_NS}}}Information")
    screening_node = root.find(f"{{{_NS}}}Screening")
    text: str | None = None
    documents: tuple[Document, ...] = ()
    screening: Screening | None = None
    if information is not None:
        text = _opt(information, "FreeText")
        documents = tuple(
            Document(
                type=DocumentType(_text(node, "Type")),
                reference=_text(node, "Reference"),
                description=_opt(node, "Description"),
            )
            for node in information.iterfind(f"{{{_NS}}}Documents/{{{_NS}}}Document")
        )
    elif screening_node is not None:
        screening = Screening(
            method=ScreeningMethod(_text(screening_node, "Method")),
            outcome=ScreeningOutcome(_text(screening_node, "Outcome")),
            screened_at=_aware(_text(screening_node, "ScreenedAt"), "ScreenedAt"),
            remarks=_opt(screening_node, "Remarks"),
        )
    return ReferralAnswer(
        answer_id=_text(root, "AnswerId"),
        operator_id=_text(root, "OperatorId"),
        item_id=_text(root, "ItemId"),
        referral_reference=_text(root, "ReferralReference"),
        answered_at=answered_at,
        text=text,
        documents=documents,
        screening=screening,
    )


def _opt(node: etree._Element, name: str) -> str | None:
    value = node.findtext(f"{{{_NS}}}{name}")
    return " ".join(value.split()) if value is not None else None


def _text(node: etree._Element, name: str) -> str:
    return _opt(node, name) or ""


def _aware(text: str, what: str) -> datetime:
    value = decisions.read_datetime(text, what)
    if value.utcoffset() is None:
        raise EnvelopeInvalid(f"referral answer {what} must carry a time zone")
    return value


# --- writing ---------------------------------------------------------------------------------


def referral_answer_xml(answer: ReferralAnswer) -> etree._Element:
    """The unsigned referral answer (referral-answer-1.xsd) for Customs; sign it with
    :func:`connector.core.signing.sign`. Texts are collapsed and cut to 350 characters.

    Raises:
        InvalidMessage: neither information nor a screening, both, more than
            :data:`MAX_DOCUMENTS` documents, or a naive time.
    """
    text = decisions.short_text(answer.text)
    has_information = text is not None or bool(answer.documents)
    if has_information == (answer.screening is not None):
        raise InvalidMessage("a referral answer gives either information or a screening result")
    if len(answer.documents) > MAX_DOCUMENTS:
        raise InvalidMessage(f"a referral answer names at most {MAX_DOCUMENTS} documents")
    root = etree.Element(f"{{{_NS}}}ReferralAnswer", nsmap={None: _NS})  # type: ignore[dict-item]
    _add(root, "AnswerId", answer.answer_id)
    _add(root, "OperatorId", answer.operator_id)
    _add(root, "ItemId", answer.item_id)
    _add(root, "ReferralReference", answer.referral_reference)
    _add(root, "AnsweredAt", _xml_time(answer.answered_at))
    if answer.screening is not None:
        node = _add(root, "Screening")
        _add(node, "Method", answer.screening.method.value)
        _add(node, "Outcome", answer.screening.outcome.value)
        _add(node, "ScreenedAt", _xml_time(answer.screening.screened_at))
        _add(node, "Remarks", decisions.short_text(answer.screening.remarks))
        return root
    node = _add(root, "Information")
    _add(node, "FreeText", text)
    if answer.documents:
        documents = _add(node, "Documents")
        for document in answer.documents:
            entry = _add(documents, "Document")
            _add(entry, "Type", document.type.value)
            _add(entry, "Reference", document.reference)
            _add(entry, "Description", decisions.short_text(document.description))
    return root


def _add(parent: etree._Element, name: str, text: str | None = "") -> etree._Element:
    """Append a child; a None text (an optional element left out) appends nothing."""
    node = etree.Element(f"{{{_NS}}}{name}")
    if text is not None:
        node.text = text or None
        parent.append(node)
    return node


def _xml_time(value: datetime) -> str:
    if value.utcoffset() is None:
        raise InvalidMessage(f"referral answer times must be timezone-aware, got {value}")
    return xml_datetime(value)
