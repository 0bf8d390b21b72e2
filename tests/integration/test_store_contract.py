"""The ItemStore contract, run against every implementation (memory, SQLite, PostgreSQL).

Backend-specific behaviour (durability across restarts, the SQLite profile, concurrent
intake from two processes, error translation) follows the shared suite.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from connector.adapters.db import engine as db_engine
from connector.adapters.db.store import SqlItemStore
from connector.core.checks import Finding, Severity
from connector.core.model import IntakeStatus, ItemError, ItemEvent, ItemState
from connector.core.references import item_reference
from connector.core.retry import RetryDecision
from connector.errors import (
    ConfigurationError,
    IllegalTransition,
    NotFound,
    StoreUnavailable,
)
from connector.ports import CustomsReceipt, ItemStore, OperatorRecord, ScheduleState
from tests.integration.conftest import (
    T0,
    PgDatabase,
    Store,
    incoming,
    item_id,
    make_intake,
    outbox_depth,
)

LATER = T0 + timedelta(minutes=5)


def test_implementations_satisfy_the_port(store: Store) -> None:
    """Every store is usable wherever an ItemStore is expected."""
    port: ItemStore = store
    assert port is store


# -- intake ---------------------------------------------------------------------------------


async def test_new_items_are_accepted_at_version_1_with_stable_references(store: Store) -> None:
    """New items come back NEW with the derived reference, stored ACCEPTED at version 1."""
    intake = make_intake(3)

    results = await store.record_intake(intake)

    assert [r.status for r in results] == [IntakeStatus.NEW] * 3
    assert [r.item_index for r in results] == [0, 1, 2]
    assert [r.reference for r in results] == [item_reference("OP1", item_id(i)) for i in range(3)]
    stored = await store.get_item("OP1", item_id(1))
    assert stored is not None
    assert stored.reference == results[1].reference
    assert (stored.state, stored.version, stored.batch_id) == (ItemState.ACCEPTED, 1, "B1")
    assert stored.item_xml == intake.items[1].item_xml
    assert stored.digest == intake.items[1].digest
    assert stored.destination_country == "DE"
    assert stored.received_at == stored.updated_at == T0
    assert stored.decision is None
    assert await outbox_depth(store) == 3


async def test_identical_resend_is_duplicate_and_changes_nothing(store: Store) -> None:
    """Re-sending the same items reports DUPLICATE with the same references and no new work."""
    first = await store.record_intake(make_intake(2))

    again = await store.record_intake(make_intake(2, batch_id="B2", received_at=LATER))

    assert [r.status for r in again] == [IntakeStatus.DUPLICATE] * 2
    assert [r.reference for r in again] == [r.reference for r in first]
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert (stored.batch_id, stored.received_at) == ("B1", T0)
    assert len(await store.item_events(first[0].reference)) == 2
    assert await outbox_depth(store) == 2


async def test_changed_resend_is_conflict_and_keeps_the_stored_item(store: Store) -> None:
    """Different content for a known item id is a CONFLICT that leaves the item as it was."""
    await store.record_intake(make_intake(1))
    changed = (incoming(0, content="other"),)

    results = await store.record_intake(make_intake(changed, batch_id="B2"))

    assert results[0].status is IntakeStatus.CONFLICT
    assert results[0].reference == item_reference("OP1", item_id(0))
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert stored.digest == make_intake(1).items[0].digest
    assert await outbox_depth(store) == 1


async def test_mixed_intake_reports_each_item_in_order(store: Store) -> None:
    """One intake with new, duplicate and conflicting items answers each, in intake order."""
    await store.record_intake(make_intake((incoming(0, 10), incoming(1, 11))))
    mixed = (incoming(0, 12), incoming(1, 10), incoming(2, 11, content="x"), incoming(3, 13))

    results = await store.record_intake(make_intake(mixed, batch_id="B2"))

    assert [(r.item_index, r.item_id, r.status) for r in results] == [
        (0, item_id(12), IntakeStatus.NEW),
        (1, item_id(10), IntakeStatus.DUPLICATE),
        (2, item_id(11), IntakeStatus.CONFLICT),
        (3, item_id(13), IntakeStatus.NEW),
    ]
    assert await outbox_depth(store) == 4


async def test_repeated_item_within_one_intake_is_stored_once(store: Store) -> None:
    """An item id twice in one intake is NEW once, then DUPLICATE (or CONFLICT) like a resend."""
    items = (incoming(0, 1), incoming(1, 1), incoming(2, 1, content="changed"))

    results = await store.record_intake(make_intake(items))

    assert [r.status for r in results] == [
        IntakeStatus.NEW,
        IntakeStatus.DUPLICATE,
        IntakeStatus.CONFLICT,
    ]
    assert len({r.reference for r in results}) == 1
    assert await outbox_depth(store) == 1


async def test_intake_writes_received_then_accepted_events(store: Store) -> None:
    """A new item's history is RECEIVED (by the operator) then ACCEPTED (by the connector)."""
    results = await store.record_intake(make_intake(1, batch_id="B7", source="pull", cursor="c"))
    reference = results[0].reference

    events = await store.item_events(reference)

    assert events == (
        ItemEvent(reference, T0, "operator:OP1", None, ItemState.RECEIVED, "pull batch B7"),
        ItemEvent(reference, T0, "connector", ItemState.RECEIVED, ItemState.ACCEPTED, "validated"),
    )
    assert await store.item_events("EADNOSUCHREFERENCE") == ()


async def test_intake_with_only_rejected_items_stores_no_item(store: Store) -> None:
    """A batch whose items were all rejected stores nothing forwardable but still succeeds."""
    error = ItemError(0, item_id(0), "/ItemBatch/Items/Item[1]", "schema_invalid", "bad")

    results = await store.record_intake(make_intake((), rejected=(error,)))

    assert results == ()
    assert await store.get_item("OP1", item_id(0)) is None
    assert await outbox_depth(store) == 0


async def test_thousand_item_intake_is_stored_once_when_recorded_twice(store: Store) -> None:
    """Recording the same 1,000-item intake twice stores each item once, with one job each."""
    intake = make_intake(1000)

    first = await store.record_intake(intake)
    second = await store.record_intake(intake)

    assert [r.status for r in first] == [IntakeStatus.NEW] * 1000
    assert [r.status for r in second] == [IntakeStatus.DUPLICATE] * 1000
    assert [r.reference for r in second] == [r.reference for r in first]
    assert await outbox_depth(store) == 1000
    last = await store.get_item("OP1", item_id(999))
    assert last is not None
    assert last.reference == first[999].reference
    assert len(await store.item_events(first[500].reference)) == 2


# -- reading items --------------------------------------------------------------------------


async def test_get_item_is_scoped_to_the_operator(store: Store) -> None:
    """Operator B cannot read operator A's item even when the item ids are equal."""
    await store.record_intake(make_intake(1, operator_id="OPA"))

    assert await store.get_item("OPB", item_id(0)) is None
    assert await store.get_item("OPA", item_id(1)) is None
    own = await store.get_item("OPA", item_id(0))
    assert own is not None
    assert own.operator_id == "OPA"


async def test_same_item_id_of_two_operators_is_two_items(store: Store) -> None:
    """Identity is (operator, item id): both operators' items are NEW with their own reference."""
    a = await store.record_intake(make_intake(1, operator_id="OPA"))
    b = await store.record_intake(make_intake((incoming(0, content="b"),), operator_id="OPB"))

    assert a[0].status is b[0].status is IntakeStatus.NEW
    assert a[0].reference != b[0].reference
    found = await store.find_items(item_id(0))
    assert [(item.operator_id, item.reference) for item in found] == [
        ("OPA", a[0].reference),
        ("OPB", b[0].reference),
    ]
    assert await store.find_items(item_id(99)) == ()


# -- amendments and cancellations -----------------------------------------------------------


async def test_amend_replaces_content_at_the_next_version(store: Store) -> None:
    """An amendment at version+1 stores the new content as AMENDED with an event."""
    await store.record_intake(make_intake(1))
    new = incoming(0, content="amended")

    amended = await store.amend_item("OP1", new, 2, LATER)

    assert (amended.version, amended.state) == (2, ItemState.AMENDED)
    assert (amended.digest, amended.item_xml) == (new.digest, new.item_xml)
    assert (amended.received_at, amended.updated_at) == (T0, LATER)
    assert await store.get_item("OP1", item_id(0)) == amended
    events = await store.item_events(amended.reference)
    assert events[-1] == ItemEvent(
        amended.reference,
        LATER,
        "operator:OP1",
        ItemState.ACCEPTED,
        ItemState.AMENDED,
        "version 2",
    )
    assert await outbox_depth(store) == 1  # still queued once, now with the new version

    again = await store.amend_item("OP1", incoming(0, content="third"), 3, LATER)
    assert again.version == 3
    assert (await store.item_events(amended.reference))[-1].from_state is ItemState.AMENDED


async def test_amend_with_a_wrong_version_names_the_current_one(store: Store) -> None:
    """Skipping or repeating a version is refused with the current version in the error."""
    await store.record_intake(make_intake(1))

    with pytest.raises(IllegalTransition, match="at version 1") as raised:
        await store.amend_item("OP1", incoming(0, content="x"), 3, LATER)
    assert raised.value.context["current_version"] == 1
    with pytest.raises(IllegalTransition, match="at version 1"):
        await store.amend_item("OP1", incoming(0, content="x"), 1, LATER)
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert (stored.version, stored.state) == (1, ItemState.ACCEPTED)


async def test_amend_of_an_unknown_item_is_not_found(store: Store) -> None:
    """Amending an item the operator never sent raises NotFound, also for another operator's."""
    await store.record_intake(make_intake(1, operator_id="OPA"))

    with pytest.raises(NotFound, match=item_id(0)):
        await store.amend_item("OPB", incoming(0, content="x"), 2, LATER)
    with pytest.raises(NotFound):
        await store.cancel_item("OPB", item_id(0), 1, "mistake", LATER)


async def test_cancel_withdraws_the_item_and_its_pending_work(store: Store) -> None:
    """Cancelling at the current version makes the item CANCELLED and unqueues it."""
    await store.record_intake(make_intake(2))

    cancelled = await store.cancel_item("OP1", item_id(0), 1, "sent by mistake", LATER)

    assert (cancelled.state, cancelled.version, cancelled.updated_at) == (
        ItemState.CANCELLED,
        1,
        LATER,
    )
    assert await store.get_item("OP1", item_id(0)) == cancelled
    last = (await store.item_events(cancelled.reference))[-1]
    assert (last.from_state, last.to_state, last.detail) == (
        ItemState.ACCEPTED,
        ItemState.CANCELLED,
        "sent by mistake",
    )
    assert await outbox_depth(store) == 1


async def test_cancel_needs_the_current_version(store: Store) -> None:
    """Cancelling at another version than the current one is refused."""
    await store.record_intake(make_intake(1))

    with pytest.raises(
        IllegalTransition, match="at version 1; a cancellation must name version 1, not 2"
    ):
        await store.cancel_item("OP1", item_id(0), 2, "why", LATER)


async def test_cancelled_item_can_be_neither_amended_nor_cancelled(store: Store) -> None:
    """A cancelled item is final: amendment and a second cancellation are illegal."""
    await store.record_intake(make_intake(1))
    await store.cancel_item("OP1", item_id(0), 1, "gone", LATER)

    with pytest.raises(IllegalTransition, match="CANCELLED and can no longer"):
        await store.amend_item("OP1", incoming(0, content="x"), 2, LATER)
    with pytest.raises(IllegalTransition, match="CANCELLED"):
        await store.cancel_item("OP1", item_id(0), 1, "again", LATER)
    assert len(await store.item_events(item_reference("OP1", item_id(0)))) == 3


async def test_amended_item_can_be_cancelled_at_its_new_version(store: Store) -> None:
    """After an amendment the item is cancelled at the amended version, and unqueued."""
    await store.record_intake(make_intake(1))
    await store.amend_item("OP1", incoming(0, content="v2"), 2, LATER)

    cancelled = await store.cancel_item("OP1", item_id(0), 2, "withdrawn", LATER)

    assert (cancelled.state, cancelled.version) == (ItemState.CANCELLED, 2)
    assert await outbox_depth(store) == 0


# -- pull cursors ---------------------------------------------------------------------------


async def test_cursor_is_saved_with_the_intake(store: Store) -> None:
    """A pull's cursor is stored with its items and replaced by the next pull's."""
    assert await store.get_cursor("OP1") is None

    await store.record_intake(make_intake(1, source="pull", cursor="c-1"))
    assert await store.get_cursor("OP1") == "c-1"
    await store.record_intake(make_intake(0, batch_id="B2", source="pull", cursor="c-2"))
    assert await store.get_cursor("OP1") == "c-2"
    await store.record_intake(make_intake(0, batch_id="B3"))  # a push moves no cursor
    assert await store.get_cursor("OP1") == "c-2"
    assert await store.get_cursor("OP2") is None


async def test_pull_error_leaves_the_cursor_unchanged(store: Store) -> None:
    """Recording a failed pull keeps the cursor where the last good pull left it."""
    await store.record_pull_error("OP2", "source unreachable", T0)
    assert await store.get_cursor("OP2") is None

    await store.record_intake(make_intake(1, source="pull", cursor="c-1"))
    await store.record_pull_error("OP1", "timeout", LATER)
    await store.record_pull_error("OP1", "timeout again", LATER)

    assert await store.get_cursor("OP1") == "c-1"


# -- schedules ------------------------------------------------------------------------------


async def test_only_the_first_claim_of_a_tick_wins(store: Store) -> None:
    """(schedule, fire time) is claimed once; other times and schedules are separate ticks."""
    assert await store.claim_tick("pull:OP1", T0, "replica-a") is True
    assert await store.claim_tick("pull:OP1", T0, "replica-b") is False
    assert await store.claim_tick("pull:OP1", T0, "replica-a") is False
    assert await store.claim_tick("pull:OP1", LATER, "replica-b") is True
    assert await store.claim_tick("pull:OP2", T0, "replica-b") is True


async def test_a_tick_is_the_same_instant_in_any_time_zone(store: Store) -> None:
    """A fire time given with another UTC offset names the same tick."""
    assert await store.claim_tick("pull:OP1", T0, "replica-a") is True
    elsewhere = T0.astimezone(timezone(timedelta(hours=2)))

    assert await store.claim_tick("pull:OP1", elsewhere, "replica-b") is False


async def test_ten_concurrent_claims_have_one_winner(store: Store) -> None:
    """Ten claims of one tick raced with asyncio.gather produce exactly one winner."""
    claims = [store.claim_tick("pull:OP1", T0, f"replica-{n}") for n in range(10)]

    won = await asyncio.gather(*claims)

    assert sorted(won) == [False] * 9 + [True]


async def test_finished_ticks_show_in_schedule_states(store: Store) -> None:
    """schedule_states reports each schedule's latest tick with its result."""
    assert await store.schedule_states() == {}
    await store.claim_tick("pull:OP1", T0, "a")
    await store.finish_tick("pull:OP1", T0, "ok: 3 items", T0 + timedelta(seconds=2))
    await store.claim_tick("pull:OP1", LATER, "b")
    await store.claim_tick("pull:OP2", T0, "a")
    await store.finish_tick("pull:OP2", T0, "error: timeout", LATER)
    await store.finish_tick("pull:OP3", T0, "ok", LATER)  # never claimed: ignored

    states = await store.schedule_states()

    assert states == {
        "pull:OP1": ScheduleState("pull:OP1", False, LATER, None, None),
        "pull:OP2": ScheduleState("pull:OP2", False, T0, "error: timeout", LATER),
    }


async def test_pause_and_resume_are_shared_state(store: Store) -> None:
    """set_paused creates or updates a schedule's switch, seen by schedule_states."""
    await store.set_paused("pull:OP1", True)
    assert await store.schedule_states() == {"pull:OP1": ScheduleState("pull:OP1", paused=True)}

    await store.claim_tick("pull:OP1", T0, "a")
    assert (await store.schedule_states())["pull:OP1"].paused is True
    await store.set_paused("pull:OP1", False)
    assert (await store.schedule_states())["pull:OP1"].paused is False


# -- operators ------------------------------------------------------------------------------


OP_A = OperatorRecord("OPA", "Post A", True, token_sha256="a" * 64, cert_sha256="c" * 64)
OP_B = OperatorRecord("OPB", "Post B", True, token_sha256="b" * 64)


async def test_operators_are_found_by_token_and_certificate(store: Store) -> None:
    """Upserted operators authenticate by token hash or certificate fingerprint."""
    await store.upsert_operators((OP_A, OP_B))

    assert await store.operator_by_token("a" * 64) == OP_A
    assert await store.operator_by_token("b" * 64) == OP_B
    assert await store.operator_by_cert("c" * 64) == OP_A
    assert await store.operator_by_token("z" * 64) is None
    assert await store.operator_by_cert("b" * 64) is None


async def test_disabled_operator_is_not_found(store: Store) -> None:
    """Disabling an operator makes both of its credentials stop working."""
    await store.upsert_operators((OP_A,))
    await store.upsert_operators((replace(OP_A, enabled=False),))

    assert await store.operator_by_token("a" * 64) is None
    assert await store.operator_by_cert("c" * 64) is None


async def test_upsert_replaces_credentials_by_operator_id(store: Store) -> None:
    """A rotated token replaces the old one; tokens may even move between operators."""
    await store.upsert_operators((OP_A, OP_B))
    swapped = (
        replace(OP_A, token_sha256="b" * 64, name="Post A renamed"),
        replace(OP_B, token_sha256="a" * 64),
    )

    await store.upsert_operators(swapped)

    assert await store.operator_by_token("b" * 64) == swapped[0]
    assert await store.operator_by_token("a" * 64) == swapped[1]
    rotated = (swapped[0], replace(OP_B, token_sha256="n" * 64))
    await store.upsert_operators(rotated)
    assert await store.operator_by_token("a" * 64) is None
    assert await store.operator_by_token("n" * 64) == rotated[1]


async def test_operators_missing_from_the_configuration_stop_authenticating(
    store: Store, request: pytest.FixtureRequest
) -> None:
    """An operator dropped from the configuration can no longer authenticate."""
    await store.upsert_operators((OP_A, OP_B))

    await store.upsert_operators((OP_B,))

    assert await store.operator_by_token("a" * 64) is None
    assert await store.operator_by_cert("c" * 64) is None
    assert await store.operator_by_token("b" * 64) == OP_B
    await store.upsert_operators((OP_A, OP_B))  # configured again: back in
    assert await store.operator_by_token("a" * 64) == OP_A


# -- forwarding -----------------------------------------------------------------------------

RECEIPT = CustomsReceipt("customs-de", "DB1", LATER, b"<receipt/>")
RETRY = RetryDecision(LATER + timedelta(seconds=5), dead=False, reason="attempt 1 failed")
GIVE_UP = RetryDecision(None, dead=True, reason="customs_refused: no")


async def test_claim_takes_due_work_in_order_with_the_item_data(store: Store) -> None:
    """Claims come in queue order, carry the item, and move it to FORWARDING with an event."""
    results = await store.record_intake(make_intake(3))

    claims = await store.claim_for_forwarding("a", 2, 60, LATER)

    assert [c.reference for c in claims] == [r.reference for r in results[:2]]
    first = claims[0]
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert stored.state is ItemState.FORWARDING
    assert (first.operator_id, first.item_id, first.version) == ("OP1", item_id(0), 1)
    assert (first.destination_country, first.item_xml, first.attempts) == (
        "DE",
        stored.item_xml,
        0,
    )
    assert (await store.item_events(first.reference))[-1] == ItemEvent(
        first.reference,
        LATER,
        "connector",
        ItemState.ACCEPTED,
        ItemState.FORWARDING,
        "attempt 1 by a",
    )
    assert await outbox_depth(store) == 1
    assert [c.reference for c in await store.claim_for_forwarding("b", 10, 60, LATER)] == [
        results[2].reference
    ]
    assert await store.claim_for_forwarding("b", 10, 60, LATER) == ()


async def test_work_is_not_claimed_before_it_is_due(store: Store) -> None:
    """Queued at T0, a claim at T0 - 1 s finds nothing."""
    await store.record_intake(make_intake(1))

    assert await store.claim_for_forwarding("a", 10, 60, T0 - timedelta(seconds=1)) == ()
    assert len(await store.claim_for_forwarding("a", 10, 60, T0)) == 1


async def test_record_forwarded_completes_only_the_owners_claims(store: Store) -> None:
    """The owner's claims become FORWARDED (event names the batch); another owner's, nothing."""
    await store.record_intake(make_intake(2))
    claims = await store.claim_for_forwarding("a", 10, 60, LATER)

    assert await store.record_forwarded(claims, "b", "DB1", b"<signed/>", RECEIPT, LATER) == 0
    assert await store.record_forwarded(claims, "a", "DB1", b"<signed/>", RECEIPT, LATER) == 2
    assert await store.record_forwarded(claims, "a", "DB1", b"<signed/>", RECEIPT, LATER) == 0

    for claim in claims:
        stored = await store.get_item("OP1", claim.item_id)
        assert stored is not None
        assert stored.state is ItemState.FORWARDED
        event = (await store.item_events(claim.reference))[-1]
        assert (event.from_state, event.to_state) == (ItemState.FORWARDING, ItemState.FORWARDED)
        assert event.detail == "declaration batch DB1 to customs-de"
    assert await store.claim_for_forwarding("a", 10, 60, LATER + timedelta(hours=1)) == ()
    assert await outbox_depth(store) == 0


async def test_failure_with_retry_requeues_for_later(store: Store) -> None:
    """A retry decision counts the attempt and makes the job due at retry_at, not before."""
    await store.record_intake(make_intake(1))
    claims = await store.claim_for_forwarding("a", 10, 60, LATER)

    assert await store.record_forward_failure(claims, "b", "boom", RETRY, LATER) == 0
    assert await store.record_forward_failure(claims, "a", "boom", RETRY, LATER) == 1

    assert await outbox_depth(store) == 1
    assert RETRY.retry_at is not None
    early = RETRY.retry_at - timedelta(seconds=1)
    assert await store.claim_for_forwarding("a", 10, 60, early) == ()
    again = await store.claim_for_forwarding("a", 10, 60, RETRY.retry_at)
    assert [c.attempts for c in again] == [1]
    events = await store.item_events(claims[0].reference)
    assert [(e.from_state, e.to_state) for e in events[-3:]] == [
        (ItemState.ACCEPTED, ItemState.FORWARDING),
        (ItemState.FORWARDING, ItemState.FORWARDING),
        (ItemState.FORWARDING, ItemState.FORWARDING),
    ]
    assert events[-2].detail.startswith("boom; retry at ")
    assert events[-1].detail == "attempt 2 by a"


async def test_dead_work_is_listed_and_can_be_replayed(store: Store) -> None:
    """A dead job's item is DEAD and a dead letter; replay queues it again at once."""
    await store.record_intake(make_intake(2))
    claims = await store.claim_for_forwarding("a", 1, 60, LATER)

    assert await store.record_forward_failure(claims, "a", "refused", GIVE_UP, LATER) == 1

    dead = await store.dead_letters()
    assert [(i.reference, i.state) for i in dead] == [(claims[0].reference, ItemState.DEAD)]
    assert (await store.item_events(claims[0].reference))[-1].detail == GIVE_UP.reason
    with pytest.raises(IllegalTransition):
        await store.replay(item_reference("OP1", item_id(1)), LATER)  # not dead
    with pytest.raises(NotFound):
        await store.replay("EADNOSUCHREFERENCE", LATER)

    replayed = await store.replay(claims[0].reference, LATER)

    assert replayed.state is ItemState.FORWARDING
    assert await store.dead_letters() == ()
    event = (await store.item_events(claims[0].reference))[-1]
    assert (event.from_state, event.to_state, event.actor, event.detail) == (
        ItemState.DEAD,
        ItemState.FORWARDING,
        "admin",
        "replay",
    )
    again = await store.claim_for_forwarding("b", 10, 60, LATER)
    assert [(c.reference, c.attempts) for c in again] == [
        (item_reference("OP1", item_id(1)), 0),  # due since T0
        (claims[0].reference, 0),  # due since the replay
    ]


async def test_expired_lease_is_taken_over(store: Store) -> None:
    """A claim whose lease ran out goes to the next claimer; the old owner is locked out."""
    await store.record_intake(make_intake(1))
    first = await store.claim_for_forwarding("a", 10, 60, LATER)
    assert await store.claim_for_forwarding("b", 10, 60, LATER + timedelta(seconds=60)) == ()

    second = await store.claim_for_forwarding("b", 10, 60, LATER + timedelta(seconds=61))

    assert [c.outbox_id for c in second] == [c.outbox_id for c in first]
    assert await store.record_forwarded(first, "a", "DB1", b"x", RECEIPT, LATER) == 0
    assert await store.record_forward_failure(first, "a", "late", GIVE_UP, LATER) == 0
    assert await store.dead_letters() == ()
    assert await store.record_forwarded(second, "b", "DB2", b"x", RECEIPT, LATER) == 1


async def test_amended_forwarded_item_is_queued_again(store: Store) -> None:
    """A FORWARDED item amended by its operator is claimed again, from AMENDED."""
    await store.record_intake(make_intake(1))
    claims = await store.claim_for_forwarding("a", 10, 60, LATER)
    await store.record_forwarded(claims, "a", "DB1", b"x", RECEIPT, LATER)

    await store.amend_item("OP1", incoming(0, content="v2"), 2, LATER)
    again = await store.claim_for_forwarding("a", 10, 60, LATER)

    assert [(c.reference, c.version) for c in again] == [(claims[0].reference, 2)]
    event = (await store.item_events(claims[0].reference))[-1]
    assert (event.from_state, event.to_state) == (ItemState.AMENDED, ItemState.FORWARDING)


# -- check findings -------------------------------------------------------------------------


def _finding(index: int, severity: Severity, code: str) -> Finding:
    return Finding(
        index,
        item_id(index),
        severity,
        code,
        f"/ItemBatch/Items/Item[{index + 1}]/Contents/Line[1]/Description",
        f"{code}: description 'Gift' is too vague — say what it is",
        {"description": "Gift", "score": 0.93, "suggestions": ("950300", "950490"), "n": None},
    )


async def test_findings_are_stored_and_read_back_with_the_item(store: Store) -> None:
    """An item's findings come back equal, detail included; items without have none."""
    warnings = (
        _finding(0, Severity.WARNING, "description_vague"),
        _finding(0, Severity.WARNING, "party_possible_match"),
    )
    items = (replace(incoming(0), findings=warnings), incoming(1))

    await store.record_intake(make_intake(items))

    warned = await store.get_item("OP1", item_id(0))
    clean = await store.get_item("OP1", item_id(1))
    assert warned is not None
    assert clean is not None
    assert warned.findings == warnings
    assert dict(warned.findings[0].detail)["suggestions"] == ("950300", "950490")
    assert clean.findings == ()
    assert (await store.find_items(item_id(0)))[0].findings == warnings


async def test_an_amendment_replaces_the_findings(store: Store) -> None:
    """The amended version keeps its own findings, not those of the version it replaces."""
    first = (_finding(0, Severity.WARNING, "description_vague"),)
    await store.record_intake(make_intake((replace(incoming(0), findings=first),)))
    second = (_finding(0, Severity.WARNING, "article_restricted"),)

    amended = await store.amend_item(
        "OP1", replace(incoming(0, content="v2"), findings=second), 2, LATER
    )
    cleaned = await store.amend_item("OP1", incoming(0, content="v3"), 3, LATER)

    assert amended.findings == second
    assert cleaned.findings == ()
    stored = await store.get_item("OP1", item_id(0))
    assert stored is not None
    assert stored.findings == ()


async def test_claims_carry_the_warnings_of_their_items(store: Store) -> None:
    """A claim carries its item's warnings (never an error finding); clean items none."""
    warning = _finding(0, Severity.WARNING, "description_vague")
    error = _finding(0, Severity.ERROR, "hs_code_unknown")
    items = (replace(incoming(0), findings=(warning, error)), incoming(1))
    await store.record_intake(make_intake(items))

    claims = await store.claim_for_forwarding("a", 10, 60, LATER)

    assert [claim.findings for claim in claims] == [(warning,), ()]


# -- SQL stores: both backends --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest) -> SqlItemStore:
    """Each SQL backend in turn (PostgreSQL skips itself when not configured)."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    store: SqlItemStore = request.getfixturevalue(name)
    return store


async def test_naive_datetimes_are_refused_and_nothing_is_stored(sql_store: SqlItemStore) -> None:
    """A naive timestamp is a caller's bug: ValueError, not a database error, and no write."""
    naive = datetime(2026, 11, 26, 8, 0)  # naive on purpose

    with pytest.raises(ValueError, match="naive datetime"):
        await sql_store.record_intake(make_intake(1, received_at=naive, cursor="c-1"))

    assert await sql_store.get_item("OP1", item_id(0)) is None
    assert await sql_store.get_cursor("OP1") is None
    assert await sql_store.outbox_depth() == 0


async def test_items_and_cursor_commit_together_or_not_at_all(sql_store: SqlItemStore) -> None:
    """When saving the cursor fails, the intake's items, events and jobs are rolled back too."""
    async with sql_store._engine.begin() as connection:
        await connection.execute(text("ALTER TABLE pull_cursors RENAME TO pull_cursors_away"))
    try:
        with pytest.raises(StoreUnavailable):
            await sql_store.record_intake(make_intake(3, source="pull", cursor="c-1"))
    finally:
        async with sql_store._engine.begin() as connection:
            await connection.execute(text("ALTER TABLE pull_cursors_away RENAME TO pull_cursors"))

    assert await sql_store.get_item("OP1", item_id(0)) is None
    assert await sql_store.item_events(item_reference("OP1", item_id(0))) == ()
    assert await sql_store.outbox_depth() == 0
    assert await sql_store.get_cursor("OP1") is None
    results = await sql_store.record_intake(make_intake(3, source="pull", cursor="c-1"))
    assert [r.status for r in results] == [IntakeStatus.NEW] * 3


async def test_operators_sharing_a_credential_are_a_configuration_error(
    sql_store: SqlItemStore,
) -> None:
    """Two configured operators with the same token hash are refused; nothing changes."""
    await sql_store.upsert_operators((OP_A,))

    with pytest.raises(ConfigurationError) as raised:
        await sql_store.upsert_operators((OP_A, replace(OP_B, token_sha256="a" * 64)))

    assert raised.value.__cause__ is not None
    assert await sql_store.operator_by_token("a" * 64) == OP_A
    assert await sql_store.operator_by_token("b" * 64) is None


async def _rows(store: SqlItemStore, query: str) -> list[dict[str, object]]:
    async with store._engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(text(query))).mappings()]


async def test_intake_writes_batch_audit_and_forwarding_jobs(sql_store: SqlItemStore) -> None:
    """The first record of a batch id is kept with its counts and errors; jobs start pending."""
    error = ItemError(2, item_id(2), "/ItemBatch/Items/Item[3]", "hs_code_missing", "no HS")
    await sql_store.record_intake(make_intake(2, rejected=(error,)))
    await sql_store.record_intake(make_intake(1, received_at=LATER))  # same batch id again

    batches = await _rows(sql_store, "SELECT * FROM batches")
    jobs = await _rows(sql_store, "SELECT kind, status, attempts, owner FROM outbox ORDER BY id")

    assert len(batches) == 1
    batch = batches[0]
    assert (batch["item_count"], batch["accepted_count"], batch["rejected_count"]) == (3, 2, 1)
    assert json.loads(str(batch["rejected_json"])) == [error.as_dict()]
    assert jobs == [{"kind": "forward", "status": "pending", "attempts": 0, "owner": None}] * 2


async def test_pull_error_is_kept_until_the_next_good_pull(sql_store: SqlItemStore) -> None:
    """A failed pull's error is stored beside the cursor and cleared by the next pull."""
    await sql_store.record_intake(make_intake(1, source="pull", cursor="c-1"))
    await sql_store.record_pull_error("OP1", "timeout", LATER)
    query = "SELECT cursor, last_error FROM pull_cursors WHERE operator_id = 'OP1'"
    assert await _rows(sql_store, query) == [{"cursor": "c-1", "last_error": "timeout"}]

    await sql_store.record_intake(make_intake(0, batch_id="B2", source="pull", cursor="c-2"))

    assert await _rows(sql_store, query) == [{"cursor": "c-2", "last_error": None}]


async def test_dropped_operator_keeps_its_row_disabled(sql_store: SqlItemStore) -> None:
    """An operator no longer configured stays in the table, disabled and without credentials."""
    await sql_store.upsert_operators((OP_A, OP_B))

    await sql_store.upsert_operators((OP_B,))

    query = "SELECT operator_id, enabled, token_sha256, cert_sha256 FROM operators"
    rows = {row["operator_id"]: row for row in await _rows(sql_store, query)}
    assert rows["OPA"] == {
        "operator_id": "OPA",
        "enabled": False,
        "token_sha256": None,
        "cert_sha256": None,
    }
    assert rows["OPB"]["enabled"] in (True, 1)


# -- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_data_survives_a_restart(sqlite_url: str) -> None:
    """A second store opened on the same file (a restarted process) sees committed data."""
    first = await SqlItemStore.open(sqlite_url)
    results = await first.record_intake(make_intake(5, source="pull", cursor="c-9"))
    await first.claim_tick("pull:OP1", T0, "a")
    await first.close()

    second = await SqlItemStore.open(sqlite_url)
    try:
        stored = await second.get_item("OP1", item_id(4))
        assert stored is not None
        assert stored.reference == results[4].reference
        assert await second.get_cursor("OP1") == "c-9"
        assert await second.outbox_depth() == 5
        assert await second.claim_tick("pull:OP1", T0, "b") is False
    finally:
        await second.close()


async def test_sqlite_two_stores_racing_one_batch_store_it_once(sqlite_url: str) -> None:
    """Two stores (as two processes) recording one batch at once: each item stored once."""
    stores = [await SqlItemStore.open(sqlite_url) for _ in range(2)]
    intake = make_intake(200)
    try:
        answers = await asyncio.gather(*(s.record_intake(intake) for s in stores))
        assert [r.status for r in answers[0]].count(IntakeStatus.NEW) + [
            r.status for r in answers[1]
        ].count(IntakeStatus.NEW) == 200
        assert await stores[0].outbox_depth() == 200
    finally:
        for s in stores:
            await s.close()


async def test_sqlite_connections_use_the_wal_profile(sqlite_url: str) -> None:
    """Every SQLite connection runs in WAL with synchronous=NORMAL, a busy timeout and FKs."""
    engine = db_engine.create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await engine.dispose()

    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 30000,
        "foreign_keys": 1,
    }


async def test_sqlite_writes_begin_immediate_and_reads_deferred(sqlite_url: str) -> None:
    """Write transactions take the write lock up front; read transactions do not."""
    store = await SqlItemStore.open(sqlite_url)
    begins: list[str] = []

    def capture(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    event.listen(store._engine.sync_engine, "before_cursor_execute", capture)
    try:
        await store.record_intake(make_intake(1))
        await store.get_item("OP1", item_id(0))
        await store.claim_tick("pull:OP1", T0, "a")
    finally:
        await store.close()

    assert begins == ["BEGIN IMMEDIATE", "BEGIN", "BEGIN IMMEDIATE"]


async def test_sqlite_write_waits_for_a_held_write_lock(sqlite_url: str) -> None:
    """A writer queues behind another process's write transaction instead of failing."""
    store = await SqlItemStore.open(sqlite_url)
    other = db_engine.create_engine(sqlite_url)
    try:
        async with other.begin() as held:  # BEGIN IMMEDIATE: holds the write lock
            await held.execute(text("SELECT 1"))
            pending = asyncio.create_task(store.record_intake(make_intake(1)))
            await asyncio.sleep(0.2)
            assert not pending.done()
        assert (await pending)[0].status is IntakeStatus.NEW
    finally:
        await other.dispose()
        await store.close()


# -- PostgreSQL -----------------------------------------------------------------------------


class _LookupBarrierStore(SqlItemStore):
    """A store whose first lookup waits until every racer has looked: a guaranteed race."""

    def __init__(self, *args: object, barrier: asyncio.Barrier, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._barrier: asyncio.Barrier | None = barrier

    async def _known_items(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        known = await super()._known_items(*args, **kwargs)
        if self._barrier is not None:
            barrier, self._barrier = self._barrier, None
            await barrier.wait()
        return known


async def test_postgres_two_engines_racing_one_batch_store_it_once(
    pg_store: SqlItemStore, pg_database: PgDatabase
) -> None:
    """Two engines record the same 200 items at once: 200 items, and no caller sees an error."""
    barrier = asyncio.Barrier(2)
    racers = [_LookupBarrierStore(pg_database.engine(), barrier=barrier) for _ in range(2)]
    intake = make_intake(200)
    try:
        answers = await asyncio.wait_for(
            asyncio.gather(*(racer.record_intake(intake) for racer in racers)), timeout=30
        )
    finally:
        for racer in racers:
            await racer.close()

    statuses = [sorted({r.status for r in answer}) for answer in answers]
    assert sorted(statuses) == [[IntakeStatus.DUPLICATE], [IntakeStatus.NEW]]
    assert [r.reference for r in answers[0]] == [r.reference for r in answers[1]]
    assert await pg_store.outbox_depth() == 200
    assert len(await pg_store.item_events(answers[0][0].reference)) == 2
    engine = pg_database.engine()
    try:
        async with engine.connect() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM items"))).scalar()
    finally:
        await engine.dispose()
    assert count == 200


async def test_postgres_unmigrated_schema_is_refused(pg_empty_schema: PgDatabase) -> None:
    """Opening a store on a schema that was never migrated names the upgrade command."""
    with pytest.raises(ConfigurationError, match="ead-connector db upgrade"):
        await SqlItemStore.open(pg_empty_schema.url, schema=pg_empty_schema.schema)


# -- error translation ----------------------------------------------------------------------


async def test_unreachable_postgres_is_store_unavailable() -> None:
    """A database that refuses connections raises StoreUnavailable with the cause kept."""
    store = SqlItemStore(db_engine.create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/x"))
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.get_item("OP1", item_id(0))
    finally:
        await store.close()

    assert raised.value.__cause__ is not None
    assert "127.0.0.1" not in str(raised.value)


async def test_unopenable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    """A SQLite path that cannot be opened raises StoreUnavailable, not a driver error."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    store = SqlItemStore(db_engine.create_engine(url))
    threads_before = set(threading.enumerate())
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.record_intake(make_intake(1))
    finally:
        await store.close()
        # After a failed connect aiosqlite stops its worker thread without awaiting it; let
        # the thread finish while this test's event loop is still open to take its reply.
        for thread in set(threading.enumerate()) - threads_before:
            if "_connection_worker_thread" in thread.name:
                await asyncio.to_thread(thread.join, 5)

    assert raised.value.__cause__ is not None


async def test_missing_tables_are_store_unavailable(tmp_path: Path) -> None:
    """Using a store on an empty database fails with StoreUnavailable, never a SQL error."""
    store = SqlItemStore(db_engine.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"))
    try:
        with pytest.raises(StoreUnavailable):
            await store.claim_tick("pull:OP1", datetime.now(UTC), "a")
    finally:
        await store.close()
