"""Referral answers: read, matched against the pending referral, rebuilt and signed for Customs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from connector.adapters import keystore
from connector.core import referrals, signing
from connector.core.model import (
    CustomsDecision,
    DocumentType,
    ItemState,
    ScreeningMethod,
    ScreeningOutcome,
    StoredItem,
)
from connector.core.referrals import Document, PendingReferral, ReferralAnswer, Screening
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import parse_xml
from connector.errors import (
    EnvelopeInvalid,
    Forbidden,
    InvalidMessage,
    MessageKindUnknown,
    NotFound,
    ReferralMismatch,
)

MESSAGES = Path(__file__).resolve().parents[2] / "data" / "messages"
NS = MessageKind.REFERRAL_ANSWER.namespace
T0 = datetime(2026, 11, 26, 11, 2, 10, tzinfo=UTC)
D = CustomsDecision
ITEM_ID = "CP204817360CH"

RFI = PendingReferral(ITEM_ID, "RFI-26DE-0000318", D.REQUEST_INFO)
RFS = PendingReferral(ITEM_ID, "RFS-26DE-0000107", D.REQUEST_SCREENING)


def _information(**changes: object) -> ReferralAnswer:
    answer = ReferralAnswer(
        answer_id="A-1",
        operator_id="CH-POST",
        item_id=ITEM_ID,
        referral_reference=RFI.referral_reference,
        answered_at=T0,
        text="Two stoneware mugs.",
        documents=(Document(DocumentType.INVOICE, "2026-11-4711", "Invoice"),),
    )
    return replace(answer, **changes)  # type: ignore[arg-type]


def _screening(**changes: object) -> ReferralAnswer:
    answer = ReferralAnswer(
        answer_id="A-2",
        operator_id="CH-POST",
        item_id=ITEM_ID,
        referral_reference=RFS.referral_reference,
        answered_at=T0,
        screening=Screening(ScreeningMethod.XRY, ScreeningOutcome.CLEAR, T0, "Nothing found."),
    )
    return replace(answer, **changes)  # type: ignore[arg-type]


def _valid(root: etree._Element) -> bool:
    return bool(default_registry().lxml(MessageKind.REFERRAL_ANSWER).validate(root))


@cache
def _key() -> signing.SigningKey:
    private_key, certificate = keystore.generate_key("ec", "EAD connector", 2)
    return signing.SigningKey(private_key, certificate)


def test_the_example_answer_reads_into_a_value() -> None:
    """The example RFI answer gives its free text and two documents."""
    answer = referrals.parse_referral_answer(
        parse_xml((MESSAGES / "referral-answer.xml").read_bytes())
    )
    assert (answer.answer_id, answer.operator_id, answer.item_id) == (
        "CHP-RFI-20261126-0007",
        "CH-POST",
        ITEM_ID,
    )
    assert answer.referral_reference == "RFI-26DE-0000318"
    assert answer.answered_at == T0
    assert answer.text is not None
    assert answer.text.startswith("Consignor contact")
    assert [d.type for d in answer.documents] == [DocumentType.INVOICE, DocumentType.PHOTO]
    assert answer.kind is D.REQUEST_INFO
    assert answer.screening_outcome is None


@pytest.mark.parametrize(
    "answer",
    [
        _information(),
        _information(documents=()),
        _information(text=None),
        _screening(),
        _screening(screening=Screening(ScreeningMethod.ETD, ScreeningOutcome.NOT_CLEAR, T0)),
    ],
    ids=["text-and-documents", "text", "documents", "screening", "screening-not-clear"],
)
def test_answers_build_valid_and_read_back(answer: ReferralAnswer) -> None:
    """Each form of answer survives build -> schema validation -> parse unchanged."""
    root = referrals.referral_answer_xml(answer)
    assert _valid(root)
    assert referrals.parse_referral_answer(root) == answer


def test_the_screening_answer_names_its_kind_and_outcome() -> None:
    """A screening result answers a REQUEST_SCREENING and carries its outcome."""
    answer = _screening()
    assert answer.kind is D.REQUEST_SCREENING
    assert answer.screening_outcome is ScreeningOutcome.CLEAR


@pytest.mark.parametrize(
    ("answer", "pending"),
    [(_information(), RFI), (_screening(), RFS)],
    ids=["information-to-rfi", "screening-to-rfs"],
)
def test_an_answer_to_the_pending_referral_is_accepted(
    answer: ReferralAnswer, pending: PendingReferral
) -> None:
    """Information answers an RFI, a screening result an RFS, quoting its reference."""
    referrals.check_answer(answer, operator_id="CH-POST", pending=pending)


def test_a_screening_result_to_a_request_for_information_is_refused() -> None:
    """The answer's kind must fit the referral's: the error says which was expected."""
    answer = _screening(referral_reference=RFI.referral_reference)
    with pytest.raises(ReferralMismatch, match="request for information") as info:
        referrals.check_answer(answer, operator_id="CH-POST", pending=RFI)
    assert info.value.code == "referral_mismatch"
    assert info.value.context["expected"] == "REQUEST_INFO"
    assert info.value.context["found"] == "REQUEST_SCREENING"
    with pytest.raises(ReferralMismatch, match="request for screening"):
        referrals.check_answer(
            _information(referral_reference=RFS.referral_reference),
            operator_id="CH-POST",
            pending=RFS,
        )


def test_an_answer_quoting_another_referral_is_refused() -> None:
    """An answer to an old or unknown referral reference names the pending one."""
    with pytest.raises(ReferralMismatch, match="RFI-26DE-0000318") as info:
        referrals.check_answer(
            _information(referral_reference="RFI-OLD"), operator_id="CH-POST", pending=RFI
        )
    assert info.value.context["pending_referral_reference"] == RFI.referral_reference


def test_an_answer_without_a_pending_referral_is_not_found() -> None:
    """No pending referral (or one of another item) is a 404, not a silent accept."""
    with pytest.raises(NotFound, match=ITEM_ID):
        referrals.check_answer(_information(), operator_id="CH-POST", pending=None)
    other = replace(RFI, item_id="RR123456785CH")
    with pytest.raises(NotFound):
        referrals.check_answer(_information(), operator_id="CH-POST", pending=other)


def test_an_answer_in_another_operators_name_is_forbidden() -> None:
    """The OperatorId of the answer must be the authenticated operator."""
    with pytest.raises(Forbidden):
        referrals.check_answer(_information(), operator_id="DE-POST", pending=RFI)


def _stored(state: ItemState, decision: CustomsDecision | None) -> StoredItem:
    return StoredItem(
        "EADREF", "CH-POST", ITEM_ID, 1, state, "DE", "B1", "d", T0, T0, b"", decision
    )


@pytest.mark.parametrize(
    ("state", "decision", "expected"),
    [
        (ItemState.NOTIFIED, D.REQUEST_INFO, PendingReferral(ITEM_ID, "R-1", D.REQUEST_INFO)),
        (
            ItemState.DECIDED,
            D.REQUEST_SCREENING,
            PendingReferral(ITEM_ID, "R-1", D.REQUEST_SCREENING),
        ),
        (ItemState.NOTIFIED, D.RELEASE, None),
        (ItemState.FORWARDING, D.REQUEST_INFO, None),  # already answered
        (ItemState.FORWARDED, None, None),
    ],
)
def test_pending_referral_of_an_item(
    state: ItemState, decision: CustomsDecision | None, expected: PendingReferral | None
) -> None:
    """Only an item decided with a referral and not yet answered has a pending referral."""
    assert referrals.pending_referral(_stored(state, decision), "R-1") == expected
    assert referrals.pending_referral(None, "R-1") is None
    assert referrals.pending_referral(_stored(state, decision), None) is None


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"<Information>", b"<Bogus/><Information>", "Bogus"),
        (b"<ReferralReference>RFI-26DE-0000318</ReferralReference>", b"", "ReferralReference"),
        (b"<Type>INVOICE</Type>", b"<Type>RECEIPT</Type>", "RECEIPT"),
    ],
    ids=["unexpected-element", "no-reference", "unknown-document-type"],
)
def test_an_invalid_answer_is_refused_with_a_reason(old: bytes, new: bytes, match: str) -> None:
    """A schema fault refuses the answer, and the message says what is wrong."""
    data = (MESSAGES / "referral-answer.xml").read_bytes()
    assert old in data
    with pytest.raises(EnvelopeInvalid, match=match):
        referrals.parse_referral_answer(parse_xml(data.replace(old, new)))


def test_an_answer_time_without_zone_is_refused() -> None:
    """AnsweredAt without a time zone cannot be ordered against the referral."""
    data = (MESSAGES / "referral-answer.xml").read_bytes()
    data = data.replace(b"2026-11-26T11:02:10Z", b"2026-11-26T11:02:10")
    with pytest.raises(EnvelopeInvalid, match="time zone"):
        referrals.parse_referral_answer(parse_xml(data))


def test_another_message_kind_is_refused() -> None:
    """A customs response posted as an answer is refused by its root."""
    with pytest.raises(MessageKindUnknown):
        referrals.parse_referral_answer(parse_xml((MESSAGES / "customs-response.xml").read_bytes()))


@pytest.mark.parametrize(
    "answer",
    [
        _information(text=None, documents=()),
        _information(screening=_screening().screening),
        _information(documents=(Document(DocumentType.OTHER, "X"),) * 21),
        _information(answered_at=datetime(2026, 11, 26)),
    ],
    ids=["empty", "both", "too-many-documents", "naive-time"],
)
def test_the_builder_refuses_what_the_schema_would(answer: ReferralAnswer) -> None:
    """An answer the schema would refuse is not built."""
    with pytest.raises(InvalidMessage):
        referrals.referral_answer_xml(answer)


def test_the_forwarded_answer_is_signed_and_verifies() -> None:
    """The connector signs the rebuilt answer; Customs verifies it and reads the same value."""
    answer = _screening()
    signed = signing.sign(referrals.referral_answer_xml(answer), _key())
    verified = signing.verify(signed, signing.VerifyPolicy((_key().certificate,)))
    assert _valid(verified.signed_xml)
    assert referrals.parse_referral_answer(verified.signed_xml) == answer
