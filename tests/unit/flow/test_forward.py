"""The forward stage over the in-memory store, a frozen clock and a scripted Customs gateway."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connector.core.model import IncomingItem, Intake, ItemState
from connector.core.references import digest
from connector.core.retry import RetryPolicy
from connector.errors import CustomsRefused, CustomsUnavailable, StoreUnavailable
from connector.flow.forward import NO_ROUTE, ForwardOutcome, ForwardService
from connector.ports import CustomsReceipt, ForwardClaim
from connector.testing import FrozenClock, InMemoryItemStore

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@dataclass
class FakeGateway:
    """Customs as a list of sends; fails the first ``unavailable`` sends, or refuses all."""

    clock: FrozenClock
    unavailable: int = 0
    refuse: bool = False
    sends: list[tuple[str, str, bytes]] = field(default_factory=list)
    attempts: list[tuple[str, datetime]] = field(default_factory=list)

    async def send(
        self, destination: str, declaration_batch_id: str, signed_xml: bytes
    ) -> CustomsReceipt:
        self.attempts.append((destination, self.clock.now()))
        if self.refuse:
            raise CustomsRefused("declaration rejected")
        if self.unavailable > 0:
            self.unavailable -= 1
            raise CustomsUnavailable("503 from Customs")
        self.sends.append((destination, declaration_batch_id, signed_xml))
        return CustomsReceipt(destination, declaration_batch_id, self.clock.now(), b"<ok/>")

    def sent_references(self) -> list[str]:
        return [ref for _, _, xml in self.sends for ref in xml.decode().split(",")]


def build(claims: Sequence[ForwardClaim], destination: str) -> tuple[str, bytes]:
    """A stand-in builder: the batch id names the first job; the body lists the references."""
    return f"{destination}-{claims[0].outbox_id}", ",".join(c.reference for c in claims).encode()


def by_country(claim: ForwardClaim) -> str | None:
    return {"DE": "customs-de", "FR": "customs-fr"}.get(claim.destination_country)


def item(number: int, country: str = "DE") -> IncomingItem:
    ident = f"RR{number:09d}{country}"
    xml = f"<Item><ItemId>{ident}</ItemId></Item>".encode()
    return IncomingItem(number, ident, country, digest(xml), xml)


def intake(*items: IncomingItem) -> Intake:
    return Intake(
        operator_id="OP1",
        batch_id="B1",
        received_at=T0,
        payload_digest=digest(b"B1"),
        item_count=len(items),
        items=items,
        rejected=(),
        source="push",
    )


@dataclass
class Rig:
    store: InMemoryItemStore
    clock: FrozenClock
    gateway: FakeGateway
    service: ForwardService
    references: list[str]

    async def state(self, reference: str) -> ItemState:
        return self.store._by_reference(reference).state


async def rig(
    *items: IncomingItem,
    unavailable: int = 0,
    refuse: bool = False,
    policy: RetryPolicy | None = None,
    batch_size: int = 500,
) -> Rig:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    gateway = FakeGateway(clock, unavailable=unavailable, refuse=refuse)
    results = await store.record_intake(intake(*items))
    service = ForwardService(
        store,
        gateway,
        clock,
        "replica-1",
        build,
        by_country,
        policy or RetryPolicy(jitter=0.0),
        batch_size=batch_size,
        rng=random.Random(7),
    )
    return Rig(store, clock, gateway, service, [r.reference for r in results])


async def test_items_are_forwarded_once_per_destination() -> None:
    """Each destination gets one batch; every item is FORWARDED once and the queue is empty."""
    r = await rig(item(1), item(2, "FR"), item(3))

    outcome = await r.service.run_once()

    assert outcome == ForwardOutcome(claimed=3, sent=3, batches=2)
    assert [dest for dest, _, _ in r.gateway.sends] == ["customs-de", "customs-fr"]
    assert sorted(r.gateway.sent_references()) == sorted(r.references)
    for reference in r.references:
        assert await r.state(reference) is ItemState.FORWARDED
    assert await r.service.run_once() == ForwardOutcome()
    assert len(r.gateway.sends) == 2
    assert await r.store.outbox_depth() == 0
    assert set(r.store.declarations) == {batch_id for _, batch_id, _ in r.gateway.sends}


async def test_events_name_the_declaration_batch() -> None:
    """History: ACCEPTED -> FORWARDING (claim) -> FORWARDED with the batch id."""
    r = await rig(item(1))

    await r.service.run_once()

    events = await r.store.item_events(r.references[0])
    assert [(e.from_state, e.to_state) for e in events[-2:]] == [
        (ItemState.ACCEPTED, ItemState.FORWARDING),
        (ItemState.FORWARDING, ItemState.FORWARDED),
    ]
    assert events[-2].detail == "attempt 1 by replica-1"
    assert events[-1].detail == "declaration batch customs-de-1 to customs-de"


async def test_customs_down_for_a_while_then_back_delivers_everything() -> None:
    """Three failed sends back off 5, 10, 20 s; nothing is sent early; then all arrive once."""
    r = await rig(item(1), item(2), unavailable=3)

    for expected_delay in (5, 10, 20):
        outcome = await r.service.run_once()
        assert outcome == ForwardOutcome(claimed=2, retried=2)
        r.clock.advance(expected_delay - 1)
        assert await r.service.run_once() == ForwardOutcome()  # not due yet
        r.clock.advance(1)

    assert await r.service.run_once() == ForwardOutcome(claimed=2, sent=2, batches=1)
    assert [at - T0 for _, at in r.gateway.attempts] == [
        timedelta(seconds=s) for s in (0, 5, 15, 35)
    ]
    assert sorted(r.gateway.sent_references()) == sorted(r.references)
    assert [job.attempts for job in r.store.jobs.values()] == [3, 3]
    for reference in r.references:
        assert await r.state(reference) is ItemState.FORWARDED
        events = await r.store.item_events(reference)
        retries = [e for e in events if e.detail.startswith("customs-de: customs_unavailable")]
        assert len(retries) == 3


async def test_refused_batch_is_dead_at_once() -> None:
    """A refusal is not retried: the items are DEAD and listed as dead letters."""
    r = await rig(item(1), item(2), refuse=True)

    outcome = await r.service.run_once()

    assert outcome == ForwardOutcome(claimed=2, dead=2)
    dead = await r.store.dead_letters()
    assert sorted(i.reference for i in dead) == sorted(r.references)
    assert all(i.state is ItemState.DEAD for i in dead)
    r.clock.advance(3600)
    assert await r.service.run_once() == ForwardOutcome()
    assert len(r.gateway.attempts) == 1


async def test_out_of_attempts_is_dead_and_replay_delivers() -> None:
    """After max_attempts failures the item is DEAD; an admin replay sends it again."""
    policy = RetryPolicy(max_attempts=3, jitter=0.0)
    r = await rig(item(1), unavailable=3, policy=policy)

    outcomes = []
    for _ in range(3):
        outcomes.append(await r.service.run_once())
        r.clock.advance(3600)

    assert [o.retried for o in outcomes] == [1, 1, 0]
    assert outcomes[-1].dead == 1
    assert [i.reference for i in await r.store.dead_letters()] == r.references

    replayed = await r.store.replay(r.references[0], r.clock.now())
    assert replayed.state is ItemState.FORWARDING
    assert await r.store.dead_letters() == ()
    assert await r.service.run_once() == ForwardOutcome(claimed=1, sent=1, batches=1)
    assert await r.state(r.references[0]) is ItemState.FORWARDED
    events = await r.store.item_events(r.references[0])
    assert (ItemState.DEAD, ItemState.FORWARDING, "admin", "replay") in [
        (e.from_state, e.to_state, e.actor, e.detail) for e in events
    ]


async def test_item_without_a_route_is_retried_not_lost() -> None:
    """No route: the item fails with no_route and stays queued; the routed one goes."""
    r = await rig(item(1), item(2, "XX"))

    outcome = await r.service.run_once()

    assert outcome == ForwardOutcome(claimed=2, sent=1, retried=1, batches=1)
    unrouted = r.references[1]
    assert await r.state(unrouted) is ItemState.FORWARDING
    assert r.store.outbox == [unrouted]
    job = next(j for j in r.store.jobs.values() if j.reference == unrouted)
    assert (job.status, job.attempts, job.last_error) == ("pending", 1, NO_ROUTE)
    r.clock.advance(5)
    assert await r.service.run_once() == ForwardOutcome(claimed=1, retried=1)


async def test_claims_come_in_batches() -> None:
    """batch_size bounds a run; the next run takes the rest."""
    r = await rig(*(item(n) for n in range(5)), batch_size=2)

    outcomes = [await r.service.run_once() for _ in range(4)]

    assert [o.sent for o in outcomes] == [2, 2, 1, 0]
    assert len(r.gateway.sent_references()) == 5


async def test_store_failure_ends_the_run_with_an_error() -> None:
    """A store that cannot be reached is reported in the outcome, not raised."""
    r = await rig(item(1))

    async def broken(*args: object) -> tuple[ForwardClaim, ...]:
        raise StoreUnavailable("database is down")

    r.store.claim_for_forwarding = broken  # type: ignore[method-assign]

    assert await r.service.run_once() == ForwardOutcome(error="database is down")


async def test_a_stale_owner_cannot_complete_work_taken_over() -> None:
    """After the lease expires another replica owns the job; the first one's record is void."""
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    await store.record_intake(intake(item(1)))
    first = await store.claim_for_forwarding("a", 10, 60, clock.now())
    assert await store.claim_for_forwarding("b", 10, 60, clock.advance(30)) == ()

    second = await store.claim_for_forwarding("b", 10, 60, clock.advance(31))

    assert [c.outbox_id for c in second] == [c.outbox_id for c in first]
    receipt = CustomsReceipt("customs-de", "X", clock.now(), b"<ok/>")
    assert await store.record_forwarded(first, "a", "X", b"x", receipt, clock.now()) == 0
    assert store.items[("OP1", first[0].item_id)].state is ItemState.FORWARDING
    assert await store.record_forwarded(second, "b", "X", b"x", receipt, clock.now()) == 1
