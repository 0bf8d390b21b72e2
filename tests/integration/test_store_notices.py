"""The ItemStore contract of webhook delivery (memory, SQLite, PostgreSQL): notices claimed
with a lease in priority order without overtaking an item's earlier notice, delivered (the
item NOTIFIED), retried or dead, owner-guarded."""

from __future__ import annotations

from datetime import timedelta

from connector.core.model import CustomsDecision, ItemState
from connector.core.retry import RetryDecision
from tests.integration.conftest import T0, Store, item_id
from tests.integration.test_store_decisions import decision, forwarded, ref, response

D = CustomsDecision
NOW = T0 + timedelta(minutes=30)
WEBHOOKS = frozenset({"OP1"})
RETRY = RetryDecision(NOW + timedelta(seconds=30), dead=False, reason="attempt 1 failed")
DEAD = RetryDecision(None, dead=True, reason="webhook_refused: 400")


async def decide(store: Store, response_id: str, minutes: int, *codes: tuple[int, D]) -> None:
    await store.apply_response(
        response(response_id, len(codes), minutes),
        [
            decision(response_id, number, code, index=index)
            for index, (number, code) in enumerate(codes)
        ],
    )


async def test_claims_go_by_priority_then_sequence_and_only_webhook_operators(
    store: Store,
) -> None:
    await forwarded(store, 4)
    await forwarded(store, 1, operator_id="OP2")
    await decide(store, "R1", 10, (0, D.RELEASE), (1, D.HOLD), (2, D.RELEASE))
    await decide(store, "R2", 11, (3, D.DO_NOT_LOAD))
    await store.apply_response(
        response("R3", 1, 12), [decision("R3", 0, D.HOLD, operator_id="OP2")]
    )
    claims = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert [(c.notice.item_reference, c.notice.decision) for c in claims] == [
        (ref(3), D.DO_NOT_LOAD),
        (ref(1), D.HOLD),
        (ref(0), D.RELEASE),
        (ref(2), D.RELEASE),
    ]
    assert all(c.attempts == 0 and not c.taken_over for c in claims)
    assert claims[0].signed_xml == f"<signed {claims[0].notice.notice_id}/>".encode()
    # Claimed notices are not claimed again while the lease runs; OP2 has no webhook.
    assert await store.claim_notices("v", 10, 60, NOW, operators=WEBHOOKS) == ()
    assert await store.claim_notices("v", 10, 60, NOW, operators=()) == ()
    [theirs] = await store.claim_notices("v", 10, 60, NOW, operators={"OP2"})
    assert theirs.notice.operator_id == "OP2"


async def test_an_items_later_notice_waits_for_the_earlier_one(store: Store) -> None:
    await forwarded(store, 2)
    await decide(store, "R1", 10, (0, D.RELEASE), (1, D.RELEASE))
    await decide(store, "R2", 11, (0, D.DO_NOT_LOAD))
    # Item 0's stop takes its earlier RELEASE ahead of item 1's, and stays behind it.
    first = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert [(c.notice.item_reference, c.notice.decision) for c in first] == [
        (ref(0), D.RELEASE),
        (ref(1), D.RELEASE),
    ]
    assert await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS) == ()
    assert await store.record_notice_failure(first[:1], "w", "HTTP 503", RETRY, NOW) == 1
    # Still undelivered (waiting for its retry): the stop behind it is not claimed.
    assert await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS) == ()
    later = NOW + timedelta(minutes=1)
    [again] = await store.claim_notices("w", 10, 60, later, operators=WEBHOOKS)
    assert (again.notice.decision, again.attempts) == (D.RELEASE, 1)
    assert await store.record_notice_delivered([again], "w", later) == 1
    [stop] = await store.claim_notices("w", 10, 60, later, operators=WEBHOOKS)
    assert stop.notice.decision is D.DO_NOT_LOAD


async def test_delivery_of_the_latest_notice_makes_the_item_notified(store: Store) -> None:
    await forwarded(store, 1)
    await decide(store, "R1", 10, (0, D.HOLD))
    await decide(store, "R2", 20, (0, D.RELEASE))
    [hold] = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert await store.record_notice_delivered([hold], "w", NOW) == 1
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.state is ItemState.DECIDED  # the RELEASE is not delivered yet
    [release] = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert release.notice.decision is D.RELEASE
    assert await store.record_notice_delivered([release], "w", NOW) == 1
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert (item.state, item.decision) == (ItemState.NOTIFIED, D.RELEASE)
    event = (await store.item_events(ref(0)))[-1]
    assert (event.from_state, event.to_state, event.actor) == (
        ItemState.DECIDED,
        ItemState.NOTIFIED,
        "connector",
    )
    assert release.notice.notice_id in event.detail
    stored = await store.item_notices(ref(0))
    assert [(s.status, s.attempts, s.delivered_at) for s in stored] == [
        ("delivered", 1, NOW),
        ("delivered", 1, NOW),
    ]
    assert await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS) == ()


async def test_failures_are_retried_then_dead_and_dead_ones_stay_in_the_feed(
    store: Store,
) -> None:
    await forwarded(store, 2)
    await decide(store, "R1", 10, (0, D.HOLD))
    await decide(store, "R2", 20, (0, D.RELEASE))
    [hold] = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert await store.record_notice_failure([hold], "w", "HTTP 400 bad", DEAD, NOW) == 1
    [dead] = await store.dead_notices()
    assert (dead.notice.notice_id, dead.status, dead.attempts) == (hold.notice.notice_id, "dead", 1)
    assert dead.last_error == "HTTP 400 bad; webhook_refused: 400"
    assert len(await store.notices_after("OP1", 0, 10)) == 2
    # A dead notice no longer holds the item's next one back.
    [release] = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert release.notice.decision is D.RELEASE
    assert await store.record_notice_failure([release], "w", "HTTP 503", RETRY, NOW) == 1
    [pending] = [s for s in await store.item_notices(ref(0)) if s.notice.decision is D.RELEASE]
    assert (pending.status, pending.attempts, pending.last_error) == ("pending", 1, "HTTP 503")
    assert pending.next_attempt_at == RETRY.retry_at
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.state is ItemState.DECIDED


async def test_only_the_owner_records_and_an_expired_lease_is_taken_over(store: Store) -> None:
    await forwarded(store, 1)
    await decide(store, "R1", 10, (0, D.RELEASE))
    [mine] = await store.claim_notices("a", 10, 60, NOW, operators=WEBHOOKS)
    later = NOW + timedelta(seconds=30)
    assert (
        await store.extend_notice_leases([mine.sequence], "a", later + timedelta(seconds=60), later)
        == 1
    )
    assert await store.extend_notice_leases([mine.sequence], "b", later, later) == 0
    assert await store.claim_notices("b", 10, 60, later, operators=WEBHOOKS) == ()
    expired = later + timedelta(seconds=120)
    [theirs] = await store.claim_notices("b", 10, 60, expired, operators=WEBHOOKS)
    assert theirs.taken_over
    assert theirs.notice.notice_id == mine.notice.notice_id
    assert await store.record_notice_delivered([mine], "a", expired) == 0
    assert await store.record_notice_failure([mine], "a", "late", RETRY, expired) == 0
    assert await store.extend_notice_leases([mine.sequence], "a", expired, expired) == 0
    assert await store.record_notice_delivered([theirs], "b", expired) == 1
    [stored] = await store.item_notices(ref(0))
    assert (stored.status, stored.attempts) == ("delivered", 1)


async def test_an_item_that_moved_on_is_not_made_notified(store: Store) -> None:
    await forwarded(store, 1)
    await decide(store, "R1", 10, (0, D.RELEASE))
    [claim] = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert await store.record_notice_delivered([claim], "w", NOW) == 1
    item = await store.get_item("OP1", item_id(0))
    assert item is not None
    assert item.state is ItemState.NOTIFIED
    # A later stop: NOTIFIED -> DECIDED; its delivery notifies again.
    await decide(store, "R2", 20, (0, D.DO_NOT_LOAD))
    [stop] = await store.claim_notices("w", 10, 60, NOW, operators=WEBHOOKS)
    assert await store.record_notice_delivered([stop], "w", NOW) == 1
    states = [(e.from_state, e.to_state) for e in await store.item_events(ref(0))][-3:]
    assert states == [
        (ItemState.DECIDED, ItemState.NOTIFIED),
        (ItemState.NOTIFIED, ItemState.DECIDED),
        (ItemState.DECIDED, ItemState.NOTIFIED),
    ]
