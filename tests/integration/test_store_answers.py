"""The ItemStore contract of referral answers (memory, SQLite, PostgreSQL): an answer is
checked against the pending referral, stored and queued in one transaction, forwarded with a
lease, retried or dead like a declaration; the same answer twice changes nothing."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from connector.core.model import CustomsDecision, ItemState, ScreeningMethod, ScreeningOutcome
from connector.core.referrals import ReferralAnswer, Screening
from connector.core.retry import RetryDecision
from connector.errors import Forbidden, IllegalTransition, NotFound, ReferralMismatch
from connector.flow.answer import answer_bytes
from connector.ports import CustomsReceipt, ReceivedAnswer
from tests.integration.conftest import T0, Store, item_id
from tests.integration.test_store_decisions import (
    DESTINATION,
    LATER,
    decision,
    forwarded,
    ref,
    response,
)

D = CustomsDecision
ANSWERED = T0 + timedelta(minutes=20)
SENT = T0 + timedelta(minutes=21)


def information(
    number: int = 0,
    referral: str = "RF-1",
    answer_id: str = "A-1",
    operator_id: str = "OP1",
    text: str = "Two stoneware mugs.",
) -> ReceivedAnswer:
    answer = ReferralAnswer(
        answer_id=answer_id,
        operator_id=operator_id,
        item_id=item_id(number),
        referral_reference=referral,
        answered_at=ANSWERED,
        text=text,
    )
    return received(answer)


def screening(number: int = 0, referral: str = "RF-1", answer_id: str = "A-2") -> ReceivedAnswer:
    answer = ReferralAnswer(
        answer_id=answer_id,
        operator_id="OP1",
        item_id=item_id(number),
        referral_reference=referral,
        answered_at=ANSWERED,
        screening=Screening(ScreeningMethod.XRY, ScreeningOutcome.CLEAR, ANSWERED),
    )
    return received(answer)


def received(answer: ReferralAnswer) -> ReceivedAnswer:
    data = answer_bytes(answer)
    return ReceivedAnswer(answer, data, hashlib.sha256(data).hexdigest(), ANSWERED)


async def referred(store: Store, code: CustomsDecision = D.REQUEST_INFO, count: int = 1) -> None:
    """``count`` items of OP1, the first referred with ``code`` (referral RF-1)."""
    await forwarded(store, count)
    applied = await store.apply_response(response("R1"), [decision("R1", 0, code, referral="RF-1")])
    assert len(applied.applied) == 1


async def state(store: Store, number: int = 0) -> ItemState:
    item = await store.get_item("OP1", item_id(number))
    assert item is not None
    return item.state


async def test_an_answer_moves_the_item_to_forwarding_and_queues_one_job(store: Store) -> None:
    await referred(store)
    recorded = await store.record_answer(information())
    assert (recorded.answer_id, recorded.reference, recorded.kind, recorded.duplicate) == (
        "A-1",
        ref(0),
        D.REQUEST_INFO,
        False,
    )
    assert await state(store) is ItemState.FORWARDING
    event = (await store.item_events(ref(0)))[-1]
    assert (event.from_state, event.to_state, event.actor) == (
        ItemState.DECIDED,
        ItemState.FORWARDING,
        "operator:OP1",
    )
    assert "A-1" in event.detail
    assert "RF-1" in event.detail
    # The answer job is not a declaration: the forward stage does not take it.
    assert await store.claim_for_forwarding("w", 10, 60, ANSWERED) == ()
    [claim] = await store.claim_answers("w", 10, 60, ANSWERED)
    assert (claim.reference, claim.answer_id, claim.attempts) == (ref(0), "A-1", 0)
    assert claim.answer_xml == information().answer_xml
    assert await store.claim_answers("w2", 10, 60, ANSWERED) == ()
    [stored] = await store.answers_of(ref(0))
    assert (stored.answer_id, stored.status, stored.sent_at) == ("A-1", "claimed", None)


async def test_the_same_answer_twice_is_one_job_and_the_same_result(store: Store) -> None:
    await referred(store)
    first = await store.record_answer(information())
    again = await store.record_answer(information())
    assert again.duplicate
    assert again.as_dict() == first.as_dict()
    assert len(await store.claim_answers("w", 10, 60, ANSWERED)) == 1
    assert len(await store.answers_of(ref(0))) == 1
    # Another answer under the same id is refused.
    with pytest.raises(IllegalTransition):
        await store.record_answer(information(text="Something else."))


async def test_a_wrong_reference_or_kind_is_refused_and_changes_nothing(store: Store) -> None:
    await referred(store)
    with pytest.raises(ReferralMismatch):
        await store.record_answer(information(referral="RF-OTHER"))
    with pytest.raises(ReferralMismatch):
        await store.record_answer(screening())
    assert await state(store) is ItemState.DECIDED
    assert await store.answers_of(ref(0)) == ()
    assert await store.claim_answers("w", 10, 60, ANSWERED) == ()


async def test_no_pending_referral_is_not_found(store: Store) -> None:
    await forwarded(store, 2)
    await store.apply_response(response("R1"), [decision("R1", 0, D.HOLD)])
    with pytest.raises(NotFound):
        await store.record_answer(information(0))  # decided, not referred
    with pytest.raises(NotFound):
        await store.record_answer(information(1))  # undecided
    with pytest.raises(NotFound):
        await store.record_answer(information(7))  # no such item
    # Another operator's item is not found for OP2 either.
    with pytest.raises(NotFound):
        await store.record_answer(information(0, operator_id="OP2"))
    assert await store.claim_answers("w", 10, 60, ANSWERED) == ()


async def test_a_second_answer_after_the_first_is_not_found(store: Store) -> None:
    await referred(store)
    await store.record_answer(information())
    with pytest.raises(NotFound):
        await store.record_answer(information(answer_id="A-9"))


async def test_a_screening_answers_a_request_for_screening(store: Store) -> None:
    await referred(store, D.REQUEST_SCREENING)
    recorded = await store.record_answer(screening())
    assert recorded.kind is D.REQUEST_SCREENING


async def test_sent_makes_the_item_forwarded_and_keeps_the_evidence(store: Store) -> None:
    await referred(store)
    await store.record_answer(information())
    [claim] = await store.claim_answers("w", 10, 60, ANSWERED)
    receipt = CustomsReceipt(DESTINATION, "A-1", SENT, b"<receipt/>")
    assert not await store.record_answer_sent(claim, "other", b"<signed/>", receipt, SENT)
    assert await store.record_answer_sent(claim, "w", b"<signed/>", receipt, SENT)
    assert await state(store) is ItemState.FORWARDED
    event = (await store.item_events(ref(0)))[-1]
    assert event.detail == f"referral answer A-1 to {DESTINATION}"
    [stored] = await store.answers_of(ref(0))
    assert (stored.status, stored.destination, stored.sent_at) == ("done", DESTINATION, SENT)
    # The final decision then applies.
    applied = await store.apply_response(response("R2", minutes=30), [decision("R2", 0, D.RELEASE)])
    assert len(applied.applied) == 1
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert (item.state, item.decision) == (ItemState.DECIDED, D.RELEASE)


async def test_failures_retry_then_go_dead_and_replay_revives(store: Store) -> None:
    await referred(store)
    await store.record_answer(information())
    [claim] = await store.claim_answers("w", 10, 60, ANSWERED)
    retry = RetryDecision(SENT + timedelta(seconds=30), dead=False, reason="retry")
    assert await store.record_answer_failure([claim], "w", "down", retry, SENT) == 1
    assert await state(store) is ItemState.FORWARDING
    assert await store.claim_answers("w", 10, 60, SENT) == ()  # not due yet
    [claim] = await store.claim_answers("w", 10, 60, SENT + timedelta(seconds=30))
    assert claim.attempts == 1
    dead = RetryDecision(None, dead=True, reason="gave up after 2 attempts")
    assert await store.record_answer_failure([claim], "w", "down", dead, SENT) == 1
    assert await state(store) is ItemState.DEAD
    assert [item.reference for item in await store.dead_letters()] == [ref(0)]
    [stored] = await store.answers_of(ref(0))
    assert (stored.status, stored.attempts) == ("dead", 2)
    await store.replay(ref(0), SENT)
    assert await state(store) is ItemState.FORWARDING
    [claim] = await store.claim_answers("w", 10, 60, SENT)
    assert claim.attempts == 0


async def test_a_decision_meanwhile_closes_the_answer_job(store: Store) -> None:
    await referred(store)
    await store.record_answer(information())
    [claim] = await store.claim_answers("w", 10, 60, ANSWERED)
    applied = await store.apply_response(response("R2", minutes=30), [decision("R2", 0, D.RELEASE)])
    assert len(applied.applied) == 1
    receipt = CustomsReceipt(DESTINATION, "A-1", SENT, b"<receipt/>")
    assert not await store.record_answer_sent(claim, "w", b"<signed/>", receipt, SENT)
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert (item.state, item.decision) == (ItemState.DECIDED, D.RELEASE)
    assert await store.claim_answers("w", 10, 60, SENT + timedelta(hours=1)) == ()


async def test_an_answer_naming_another_operator_is_forbidden(store: Store) -> None:
    """The store checks the answer against its own operator's item only; naming another
    operator is refused before (the service compares it with the caller)."""
    await referred(store)
    with pytest.raises((Forbidden, NotFound)):
        await store.record_answer(information(operator_id="OP2"))
    assert await state(store) is ItemState.DECIDED


async def test_cursors_can_be_saved_outside_an_intake(store: Store) -> None:
    assert await store.get_cursor("customs:EU-ICS2") is None
    await store.save_cursor("customs:EU-ICS2", "17", LATER)
    assert await store.get_cursor("customs:EU-ICS2") == "17"
    await store.save_cursor("customs:EU-ICS2", "18", LATER)
    assert await store.get_cursor("customs:EU-ICS2") == "18"
