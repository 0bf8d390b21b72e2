"""The ItemStore contract of the return path (memory, SQLite, PostgreSQL): Customs responses
applied with their notices in one transaction, replays refused, the notices feed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.adapters.db.store import SqlItemStore
from connector.core.model import CustomsDecision, ItemState
from connector.core.notices import ItemNotice, new_notice_id
from connector.core.references import item_reference
from connector.core.retry import RetryDecision
from connector.errors import ResponseReplayed
from connector.ports import CustomsReceipt, DecisionToApply, ReceivedResponse
from tests.integration.conftest import T0, Store, item_id, make_intake

D = CustomsDecision
DESTINATION = "EU-ICS2"
LATER = T0 + timedelta(minutes=5)
RECEIPT = CustomsReceipt(DESTINATION, "DB1", LATER, b"<receipt/>")


def ref(number: int, operator_id: str = "OP1") -> str:
    return item_reference(operator_id, item_id(number))


def response(response_id: str, count: int = 1, minutes: int = 10) -> ReceivedResponse:
    at = T0 + timedelta(minutes=minutes)
    return ReceivedResponse(
        DESTINATION, response_id, at, at, f"<signed {response_id}/>".encode(), count
    )


def decision(
    response_id: str,
    number: int,
    code: CustomsDecision,
    *,
    index: int = 0,
    operator_id: str = "OP1",
    referral: str | None = None,
) -> DecisionToApply:
    reference = ref(number, operator_id)
    notice = ItemNotice(
        notice_id=new_notice_id(DESTINATION, response_id, reference),
        operator_id=operator_id,
        item_id=item_id(number),
        item_reference=reference,
        decision=code,
        issued_at=T0 + timedelta(minutes=10),
        reason=f"reason {code.value}",
        customs_reference="MRN-1",
        referral_reference=referral,
    )
    return DecisionToApply(index, notice, f"<signed {notice.notice_id}/>".encode())


async def forwarded(store: Store, count: int, operator_id: str = "OP1") -> None:
    """``count`` items of ``operator_id``, sent to Customs (FORWARDED)."""
    await store.record_intake(make_intake(count, operator_id=operator_id, batch_id=operator_id))
    claims = await store.claim_for_forwarding("w", 100, 60, LATER)
    assert await store.record_forwarded(claims, "w", "DB1", b"<s/>", RECEIPT, LATER) == count


async def test_a_decision_applies_with_its_event_and_one_signed_notice(store: Store) -> None:
    await forwarded(store, 2)
    applied = await store.apply_response(
        response("R1", 2),
        [decision("R1", 0, D.HOLD, index=0), decision("R1", 1, D.RELEASE, index=1)],
    )
    assert [n.item_reference for n in applied.applied] == [ref(0), ref(1)]
    assert (applied.repeated, applied.problems) == ((), ())
    first, second = (n.sequence for n in applied.applied)
    assert first is not None
    assert second is not None
    assert first < second
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert (item.state, item.decision) == (ItemState.DECIDED, D.HOLD)
    event = (await store.item_events(ref(0)))[-1]
    assert (event.from_state, event.to_state, event.actor) == (
        ItemState.FORWARDED,
        ItemState.DECIDED,
        f"customs:{DESTINATION}",
    )
    assert "HOLD" in event.detail
    assert "R1" in event.detail
    [stored] = await store.item_notices(ref(0))
    assert stored.notice == applied.applied[0]
    assert stored.signed_xml == f"<signed {stored.notice.notice_id}/>".encode()
    assert (stored.status, stored.attempts, stored.destination, stored.response_id) == (
        "pending",
        0,
        DESTINATION,
        "R1",
    )
    assert stored.notice.reason == "reason HOLD"
    assert stored.notice.customs_reference == "MRN-1"


async def test_a_replayed_response_is_refused_and_changes_nothing(store: Store) -> None:
    await forwarded(store, 2)
    await store.apply_response(response("R1"), [decision("R1", 0, D.HOLD)])
    with pytest.raises(ResponseReplayed) as raised:
        await store.apply_response(response("R1"), [decision("R1", 1, D.RELEASE)])
    assert raised.value.code == "response_replayed"
    untouched = await store.get_item("OP1", item_id(1))
    assert untouched is not None
    assert untouched.state is ItemState.FORWARDED
    assert len(await store.notices_after("OP1", 0, 100)) == 1


async def test_the_same_response_id_from_another_destination_is_not_a_replay(
    store: Store,
) -> None:
    await forwarded(store, 2)
    await store.apply_response(response("R1"), [decision("R1", 0, D.HOLD)])
    other = ReceivedResponse("UK-CDS", "R1", LATER, LATER, b"<s/>", 1)
    assert (await store.apply_response(other, [])).applied == ()


async def test_a_repeated_decision_changes_nothing_and_has_no_notice(store: Store) -> None:
    await forwarded(store, 1)
    await store.apply_response(response("R1"), [decision("R1", 0, D.HOLD)])
    again = await store.apply_response(response("R2"), [decision("R2", 0, D.HOLD)])
    assert (again.applied, again.repeated) == ((), (ref(0),))
    assert len(await store.item_notices(ref(0))) == 1


async def test_hold_then_release_gives_a_second_notice_after_the_first(store: Store) -> None:
    await forwarded(store, 1)
    await store.apply_response(response("R1"), [decision("R1", 0, D.HOLD)])
    await store.apply_response(response("R2", minutes=20), [decision("R2", 0, D.RELEASE)])
    feed = await store.notices_after("OP1", 0, 10)
    assert [n.notice.decision for n in feed] == [D.HOLD, D.RELEASE]
    assert feed[0].sequence < feed[1].sequence
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.decision is D.RELEASE
    states = [(e.from_state, e.to_state) for e in await store.item_events(ref(0))][-2:]
    assert states == [
        (ItemState.FORWARDED, ItemState.DECIDED),
        (ItemState.DECIDED, ItemState.DECIDED),
    ]


async def test_an_illegal_redecision_is_a_problem_and_the_others_apply(store: Store) -> None:
    await forwarded(store, 2)
    await store.apply_response(response("R1"), [decision("R1", 0, D.DO_NOT_LOAD)])
    result = await store.apply_response(
        response("R2", 2),
        [decision("R2", 0, D.RELEASE, index=0), decision("R2", 1, D.RELEASE, index=1)],
    )
    assert [n.item_reference for n in result.applied] == [ref(1)]
    [problem] = result.problems
    assert (problem.index, problem.item_reference, problem.code) == (
        0,
        ref(0),
        "illegal_transition",
    )
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.decision is D.DO_NOT_LOAD
    assert len(await store.item_notices(ref(0))) == 1


async def test_an_unknown_reference_is_a_problem(store: Store) -> None:
    await forwarded(store, 1)
    result = await store.apply_response(response("R1"), [decision("R1", 7, D.RELEASE)])
    assert [p.code for p in result.problems] == ["item_unknown"]
    assert await store.notices_after("OP1", 0, 10) == ()


async def test_referrals_keep_their_reference_and_a_new_one_is_a_new_decision(
    store: Store,
) -> None:
    await forwarded(store, 1)
    await store.apply_response(response("R1"), [decision("R1", 0, D.REQUEST_INFO, referral="F1")])
    targets = await store.decision_targets([ref(0), ref(9)])
    assert list(targets) == [ref(0)]
    assert targets[ref(0)].referral_reference == "F1"
    assert targets[ref(0)].item.decision is D.REQUEST_INFO
    same = await store.apply_response(
        response("R2"), [decision("R2", 0, D.REQUEST_INFO, referral="F1")]
    )
    assert same.repeated == (ref(0),)
    new = await store.apply_response(
        response("R3"), [decision("R3", 0, D.REQUEST_INFO, referral="F2")]
    )
    assert len(new.applied) == 1
    assert (await store.decision_targets([ref(0)]))[ref(0)].referral_reference == "F2"


async def test_the_feed_is_scoped_to_the_operator_and_resumes_from_a_cursor(
    store: Store,
) -> None:
    await forwarded(store, 3, "OP1")
    await forwarded(store, 2, "OP2")
    decisions = [decision("R1", n, D.RELEASE, index=n) for n in range(3)]
    decisions += [decision("R1", n, D.HOLD, index=3 + n, operator_id="OP2") for n in range(2)]
    await store.apply_response(response("R1", 5), decisions)
    mine = await store.notices_after("OP1", 0, 100)
    assert {n.notice.operator_id for n in mine} == {"OP1"}
    assert [n.notice.item_id for n in mine] == [item_id(n) for n in range(3)]
    theirs = await store.notices_after("OP2", 0, 100)
    assert [n.notice.decision for n in theirs] == [D.HOLD, D.HOLD]
    page = await store.notices_after("OP1", 0, 2)
    rest = await store.notices_after("OP1", page[-1].sequence, 2)
    assert [n.notice.notice_id for n in page + rest] == [n.notice.notice_id for n in mine]
    assert await store.notices_after("OP1", rest[-1].sequence, 2) == ()


async def test_a_decision_on_an_item_being_sent_closes_its_forward_job(store: Store) -> None:
    """Customs may decide before the send is recorded: the late record moves nothing."""
    await store.record_intake(make_intake(2))
    claims = await store.claim_for_forwarding("w", 10, 60, LATER)
    await store.apply_response(response("R1"), [decision("R1", 0, D.DO_NOT_LOAD)])
    assert await store.record_forwarded(claims, "w", "DB1", b"<s/>", RECEIPT, LATER) == 1
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert (item.state, item.decision) == (ItemState.DECIDED, D.DO_NOT_LOAD)
    other = await store.get_item("OP1", item_id(1))
    assert other is not None
    assert other.state is ItemState.FORWARDED
    assert await store.claim_for_forwarding("w", 10, 60, LATER + timedelta(hours=1)) == ()


async def test_a_decision_on_a_dead_item_takes_it_out_of_the_dead_letters(store: Store) -> None:
    await store.record_intake(make_intake(1))
    claims = await store.claim_for_forwarding("w", 10, 60, LATER)
    dead = RetryDecision(None, dead=True, reason="refused")
    assert await store.record_forward_failure(claims, "w", "refused", dead, LATER) == 1
    assert len(await store.dead_letters()) == 1
    await store.apply_response(response("R1"), [decision("R1", 0, D.RELEASE)])
    assert await store.dead_letters() == ()
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.state is ItemState.DECIDED


async def test_a_failure_recorded_after_a_decision_leaves_the_item_decided(store: Store) -> None:
    await store.record_intake(make_intake(1))
    claims = await store.claim_for_forwarding("w", 10, 60, LATER)
    await store.apply_response(response("R1"), [decision("R1", 0, D.HOLD)])
    retry = RetryDecision(dead=False, retry_at=LATER + timedelta(minutes=1), reason="down")
    await store.record_forward_failure(claims, "w", "down", retry, LATER)
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.state is ItemState.DECIDED
    assert await store.claim_for_forwarding("w", 10, 60, LATER + timedelta(hours=1)) == ()


async def test_the_feed_resumes_from_a_cursor_after_a_restart(sqlite_url: str) -> None:
    """The cursor is the store's notice sequence: a reader resumes after the service (and its
    store) were restarted, and later notices follow without a gap or a repeat."""
    store = await SqlItemStore.open(sqlite_url)
    try:
        await forwarded(store, 4)
        await store.apply_response(
            response("R1", 2), [decision("R1", n, D.RELEASE, index=n) for n in range(2)]
        )
        first = await store.notices_after("OP1", 0, 100)
    finally:
        await store.close()
    cursor = first[-1].sequence
    assert cursor is not None
    restarted = await SqlItemStore.open(sqlite_url)
    try:
        assert await restarted.notices_after("OP1", cursor, 100) == ()
        await restarted.apply_response(
            response("R2", 2), [decision("R2", n, D.HOLD, index=n - 2) for n in (2, 3)]
        )
        later = await restarted.notices_after("OP1", cursor, 100)
        everything = await restarted.notices_after("OP1", 0, 100)
    finally:
        await restarted.close()
    assert [n.notice.item_id for n in later] == [item_id(2), item_id(3)]
    assert [n.notice.notice_id for n in everything] == [n.notice.notice_id for n in first + later]
