"""Forwarding claims on the SQL backends: lease takeover, evidence, concurrent claimers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import text

from connector.adapters.db.store import SqlItemStore
from connector.core.model import ItemState
from connector.core.retry import RetryPolicy
from connector.flow.forward import ForwardOutcome, ForwardService
from connector.ports import CustomsReceipt, ForwardClaim
from connector.testing import FrozenClock
from tests.integration.conftest import T0, PgDatabase, make_intake

LATER = T0 + timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest) -> SqlItemStore:
    """Each SQL backend in turn (PostgreSQL skips itself when not configured)."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    store: SqlItemStore = request.getfixturevalue(name)
    return store


async def _outbox(store: SqlItemStore) -> list[tuple[str, str | None, int]]:
    async with store._engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT status, owner, attempts FROM outbox ORDER BY id")
        )
        return [(row.status, row.owner, row.attempts) for row in rows]


async def test_expired_lease_is_taken_over_and_the_late_owner_changes_nothing(
    sql_store: SqlItemStore,
) -> None:
    """A claims, crashes; after its lease B claims the same rows; A's late record returns 0."""
    await sql_store.record_intake(make_intake(5))
    first = await sql_store.claim_for_forwarding("A", 10, 30, LATER)
    assert await sql_store.claim_for_forwarding("B", 10, 30, LATER + timedelta(seconds=29)) == ()

    taken = await sql_store.claim_for_forwarding("B", 10, 30, LATER + timedelta(seconds=31))

    assert [c.outbox_id for c in taken] == [c.outbox_id for c in first]
    assert await _outbox(sql_store) == [("claimed", "B", 0)] * 5
    receipt = CustomsReceipt("customs-de", "LATE", LATER, b"<r/>")
    late = await sql_store.record_forwarded(first, "A", "LATE", b"<x/>", receipt, LATER)
    assert late == 0
    assert await _outbox(sql_store) == [("claimed", "B", 0)] * 5
    item = await sql_store.get_item("OP1", first[0].item_id)
    assert item is not None
    assert item.state is ItemState.FORWARDING
    events = await sql_store.item_events(first[0].reference)
    assert events[-1].detail == "attempt 1 by B (lease expired)"
    assert "LATE" not in " ".join(e.detail for e in events)

    done = await sql_store.record_forwarded(taken, "B", "OK", b"<x/>", receipt, LATER)
    assert done == 5
    assert await _outbox(sql_store) == [("done", "B", 0)] * 5


async def test_declaration_evidence_is_stored(sql_store: SqlItemStore) -> None:
    """The signed bytes sent and the receipt are kept under the declaration batch id."""
    await sql_store.record_intake(make_intake(1))
    claims = await sql_store.claim_for_forwarding("A", 10, 30, LATER)
    receipt = CustomsReceipt("customs-de", "DB1", LATER, b"<receipt/>")

    await sql_store.record_forwarded(claims, "A", "DB1", b"<signed/>", receipt, LATER)
    await sql_store.record_forwarded(claims, "A", "DB1", b"<signed/>", receipt, LATER)

    async with sql_store._engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM declarations"))).mappings().all()
    assert [
        (r["declaration_batch_id"], r["destination"], bytes(r["signed_xml"]), bytes(r["receipt"]))
        for r in rows
    ] == [("DB1", "customs-de", b"<signed/>", b"<receipt/>")]


class _Customs:
    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.batches: list[str] = []

    async def send(
        self, destination: str, declaration_batch_id: str, signed_xml: bytes
    ) -> CustomsReceipt:
        self.batches.append(declaration_batch_id)
        return CustomsReceipt(destination, declaration_batch_id, self.clock.now(), b"<ok/>")


def _build(claims: Sequence[ForwardClaim], destination: str) -> tuple[str, bytes]:
    return f"{destination}-{claims[0].outbox_id}", b"<batch/>"


async def test_forward_service_runs_on_the_sql_store(sql_store: SqlItemStore) -> None:
    """The forward stage drains the SQL outbox: every item FORWARDED, evidence per batch."""
    await sql_store.record_intake(make_intake(25))
    clock = FrozenClock(LATER)
    customs = _Customs(clock)
    service = ForwardService(
        sql_store,
        customs,
        clock,
        "A",
        _build,
        lambda claim: "customs-de",
        RetryPolicy(),
        batch_size=10,
        rng=random.Random(1),
    )

    outcomes = [await service.run_once() for _ in range(4)]

    assert outcomes == [
        ForwardOutcome(claimed=10, sent=10, batches=1),
        ForwardOutcome(claimed=10, sent=10, batches=1),
        ForwardOutcome(claimed=5, sent=5, batches=1),
        ForwardOutcome(),
    ]
    assert await _outbox(sql_store) == [("done", "A", 0)] * 25
    assert await sql_store.outbox_depth() == 0


async def test_postgres_two_claimers_claim_every_item_exactly_once(
    pg_store: SqlItemStore, pg_database: PgDatabase
) -> None:
    """Two engines claim 200 items in batches of 20 at once: each item is claimed once."""
    await pg_store.record_intake(make_intake(200))
    claimers = [SqlItemStore(pg_database.engine()) for _ in range(2)]

    async def drain(store: SqlItemStore, owner: str) -> list[ForwardClaim]:
        taken: list[ForwardClaim] = []
        while batch := await store.claim_for_forwarding(owner, 20, 60, LATER):
            taken.extend(batch)
            await asyncio.sleep(0)
        return taken

    try:
        results = await asyncio.wait_for(
            asyncio.gather(drain(claimers[0], "A"), drain(claimers[1], "B")), timeout=60
        )
    finally:
        for claimer in claimers:
            await claimer.close()

    references = [claim.reference for taken in results for claim in taken]
    assert len(references) == 200
    assert len(set(references)) == 200
    rows = await _outbox(pg_store)
    assert {status for status, _, _ in rows} == {"claimed"}
    assert sum(owner == "A" for _, owner, _ in rows) == len(results[0])
