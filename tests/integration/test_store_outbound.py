"""The ItemStore contract of agency copies, lease renewal and evidence retention, run against
every implementation (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.core.model import ItemState
from connector.core.references import item_reference
from connector.core.retry import RetryDecision
from connector.errors import IllegalTransition
from connector.ports import CopyClaim, CustomsReceipt, ForwardClaim
from tests.integration.conftest import T0, Store, incoming, item_id, make_intake, outbox_depth

LATER = T0 + timedelta(minutes=5)
RECEIPT = CustomsReceipt("customs-de", "DB1", LATER, b"<receipt/>")
PLANTS, ANIMALS = "plant-health", "animal-health"


def ref(number: int) -> str:
    return item_reference("OP1", item_id(number))


async def _forwarded(
    store: Store, count: int, copies: dict[str, list[str]], batch: str = "DB1"
) -> tuple[ForwardClaim, ...]:
    """``count`` items forwarded to Customs, with ``copies`` queued."""
    await store.record_intake(make_intake(count))
    claims = await store.claim_for_forwarding("a", 100, 60, LATER)
    receipt = CustomsReceipt("customs-de", batch, LATER, b"<receipt/>")
    recorded = await store.record_forwarded(
        claims, "a", batch, b"<signed/>", receipt, LATER, copies=copies
    )
    assert recorded == count
    return claims


async def test_forwarded_items_queue_one_copy_per_agency(store: Store) -> None:
    """Copy jobs carry the agency and the item; forward claims never take them."""
    await _forwarded(store, 3, {ref(0): [PLANTS, ANIMALS], ref(2): [PLANTS]})

    assert await store.claim_for_forwarding("b", 100, 60, LATER + timedelta(hours=1)) == ()
    assert await outbox_depth(store) == 0
    copies = await store.claim_copies("c", 100, 60, LATER)

    assert sorted((c.reference, c.agency) for c in copies) == sorted(
        [(ref(0), PLANTS), (ref(0), ANIMALS), (ref(2), PLANTS)]
    )
    first = next(c for c in copies if c.reference == ref(0))
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert (first.operator_id, first.item_id, first.version, first.destination_country) == (
        "OP1",
        item_id(0),
        1,
        "DE",
    )
    assert (first.item_xml, first.attempts) == (stored.item_xml, 0)
    assert stored.state is ItemState.FORWARDED  # claiming a copy changes no item
    assert await store.claim_copies("d", 100, 60, LATER) == ()


async def test_copies_are_queued_only_for_claims_still_held(store: Store) -> None:
    await store.record_intake(make_intake(1))
    claims = await store.claim_for_forwarding("a", 10, 60, LATER)

    assert (
        await store.record_forwarded(
            claims, "b", "DB1", b"x", RECEIPT, LATER, copies={ref(0): [PLANTS]}
        )
        == 0
    )
    assert await store.claim_copies("c", 10, 60, LATER) == ()


async def test_copied_is_owner_guarded_and_kept_as_evidence(store: Store) -> None:
    await _forwarded(store, 2, {ref(0): [PLANTS], ref(1): [PLANTS]})
    copies = await store.claim_copies("c", 100, 60, LATER)
    receipt = CustomsReceipt(PLANTS, "AC1", LATER, b"<agency-receipt/>")
    events_before = len(await store.item_events(ref(0)))

    assert await store.record_copied(copies, "x", "AC1", b"<copy/>", receipt, LATER) == 0
    assert await store.record_copied(copies, "c", "AC1", b"<copy/>", receipt, LATER) == 2
    assert await store.record_copied(copies, "c", "AC1", b"<copy/>", receipt, LATER) == 0

    assert await store.claim_copies("c", 100, 60, LATER + timedelta(hours=1)) == ()
    assert len(await store.item_events(ref(0))) == events_before  # no item event
    # Evidence of both sends, the copy under the agency: purge everything to count them.
    assert await store.purge_evidence(LATER + timedelta(seconds=1)) == 2


async def test_copy_failure_retries_then_dies_for_the_copy_only(store: Store) -> None:
    await _forwarded(store, 1, {ref(0): [PLANTS]})
    copies = await store.claim_copies("c", 10, 60, LATER)
    retry_at = LATER + timedelta(seconds=30)
    retry = RetryDecision(retry_at, dead=False, reason="retry")
    give_up = RetryDecision(None, dead=True, reason="gave up after 2 attempts")

    assert await store.record_copy_failure(copies, "x", "down", retry, LATER) == 0
    assert await store.record_copy_failure(copies, "c", "down", retry, LATER) == 1
    assert await store.claim_copies("c", 10, 60, retry_at - timedelta(seconds=1)) == ()
    again = await store.claim_copies("c", 10, 60, retry_at)
    assert [(c.reference, c.attempts) for c in again] == [(ref(0), 1)]
    assert await store.record_copy_failure(again, "c", "down", give_up, retry_at) == 1

    assert await store.claim_copies("c", 10, 60, retry_at + timedelta(days=1)) == ()
    assert await store.dead_letters() == ()
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert stored.state is ItemState.FORWARDED
    events = await store.item_events(ref(0))
    assert (events[-1].from_state, events[-1].to_state) == (
        ItemState.FORWARDING,
        ItemState.FORWARDED,
    )


async def test_expired_copy_lease_is_taken_over(store: Store) -> None:
    await _forwarded(store, 1, {ref(0): [PLANTS]})
    first = await store.claim_copies("c", 10, 60, LATER)
    assert await store.claim_copies("d", 10, 60, LATER + timedelta(seconds=60)) == ()

    second = await store.claim_copies("d", 10, 60, LATER + timedelta(seconds=61))

    assert [c.outbox_id for c in second] == [c.outbox_id for c in first]
    receipt = CustomsReceipt(PLANTS, "AC1", LATER, b"<r/>")
    assert await store.record_copied(first, "c", "AC1", b"x", receipt, LATER) == 0
    assert await store.record_copied(second, "d", "AC2", b"x", receipt, LATER) == 1


async def test_forwarding_again_replaces_a_pending_copy_of_the_same_agency(store: Store) -> None:
    """An amended item forwarded again while its copy waits: one copy job, not two."""
    await _forwarded(store, 1, {ref(0): [PLANTS]})
    await store.amend_item("OP1", incoming(0, content="v2"), 2, LATER)
    claims = await store.claim_for_forwarding("a", 10, 60, LATER)  # the forward job, only
    assert [(c.reference, c.version) for c in claims] == [(ref(0), 2)]
    await store.record_forwarded(
        claims, "a", "DB2", b"x", RECEIPT, LATER, copies={ref(0): [PLANTS, ANIMALS]}
    )

    copies = await store.claim_copies("c", 10, 60, LATER)

    assert sorted((c.agency, c.version) for c in copies) == [(ANIMALS, 2), (PLANTS, 2)]


async def test_cancel_drops_the_pending_copies(store: Store) -> None:
    await _forwarded(store, 1, {ref(0): [PLANTS]})

    await store.cancel_item("OP1", item_id(0), 1, "withdrawn", LATER)

    assert await store.claim_copies("c", 10, 60, LATER) == ()


async def test_dead_forward_work_replays_without_touching_copies(store: Store) -> None:
    """Replay and the dead letters are about Customs forwarding only."""
    await _forwarded(store, 1, {ref(0): [PLANTS]})
    copies = await store.claim_copies("c", 10, 60, LATER)
    give_up = RetryDecision(None, dead=True, reason="refused")
    await store.record_copy_failure(copies, "c", "refused", give_up, LATER)

    assert await store.dead_letters() == ()
    with pytest.raises(IllegalTransition):  # a dead copy does not make the item replayable
        await store.replay(ref(0), LATER)


# -- lease renewal --------------------------------------------------------------------------


async def test_extended_leases_hold_off_a_takeover(store: Store) -> None:
    await store.record_intake(make_intake(2))
    claims = await store.claim_for_forwarding("a", 10, 60, LATER)
    ids = [claim.outbox_id for claim in claims]
    renewed = LATER + timedelta(seconds=50)

    assert await store.extend_leases(ids, "b", renewed + timedelta(seconds=60), renewed) == 0
    assert await store.extend_leases(ids, "a", renewed + timedelta(seconds=60), renewed) == 2

    assert await store.claim_for_forwarding("b", 10, 60, LATER + timedelta(seconds=61)) == ()
    taken = await store.claim_for_forwarding("b", 10, 60, renewed + timedelta(seconds=61))
    assert sorted(c.outbox_id for c in taken) == sorted(ids)
    assert await store.extend_leases(ids, "a", renewed + timedelta(hours=1), renewed) == 0
    assert await store.record_forwarded(taken, "b", "DB1", b"x", RECEIPT, LATER) == 2
    assert await store.extend_leases(ids, "b", renewed + timedelta(hours=1), renewed) == 0


async def test_copy_leases_are_renewed_too(store: Store) -> None:
    await _forwarded(store, 1, {ref(0): [PLANTS]})
    copies: tuple[CopyClaim, ...] = await store.claim_copies("c", 10, 60, LATER)
    ids = [claim.outbox_id for claim in copies]

    assert await store.extend_leases(ids, "c", LATER + timedelta(hours=1), LATER) == 1

    assert await store.claim_copies("d", 10, 60, LATER + timedelta(minutes=30)) == ()


# -- evidence retention ---------------------------------------------------------------------


async def test_purge_deletes_only_evidence_sent_before_the_cutoff(store: Store) -> None:
    await store.record_intake(make_intake(3))
    for number, at in enumerate((T0, T0 + timedelta(days=1), T0 + timedelta(days=2))):
        claims = await store.claim_for_forwarding(f"r{number}", 1, 60, at)
        receipt = CustomsReceipt("customs-de", f"DB{number}", at, b"<r/>")
        await store.record_forwarded(claims, f"r{number}", f"DB{number}", b"x", receipt, at)

    assert await store.purge_evidence(T0) == 0  # strictly before
    assert await store.purge_evidence(T0 + timedelta(days=1, seconds=1)) == 2
    assert await store.purge_evidence(T0 + timedelta(days=1, seconds=1)) == 0
    assert await store.purge_evidence(T0 + timedelta(days=3)) == 1
    for number in range(3):  # the items and their history stay
        stored = await store.get_item("OP1", item_id(number))
        assert stored is not None
        assert stored.state is ItemState.FORWARDED
