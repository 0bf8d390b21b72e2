"""The agency copy stage and the lease heartbeat, over the in-memory store and fake gateways."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from connector.core.model import IncomingItem, Intake, ItemState
from connector.core.references import digest
from connector.core.retry import RetryPolicy
from connector.errors import CustomsRefused, CustomsUnavailable, StoreUnavailable
from connector.flow.copy import CopyService
from connector.flow.forward import ForwardService
from connector.ports import CopyClaim, CustomsReceipt, ForwardClaim
from connector.testing import FrozenClock, InMemoryItemStore, SystemClock

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PLANTS, ANIMALS = "plant-health", "animal-health"


@dataclass
class FakeGateway:
    """Customs and the agencies as a list of sends; ``down`` destinations are unavailable."""

    clock: FrozenClock | SystemClock
    down: set[str] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)
    sends: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def send(
        self, destination: str, declaration_batch_id: str, signed_xml: bytes
    ) -> CustomsReceipt:
        if destination in self.refuse:
            raise CustomsRefused("copy refused")
        if destination in self.down:
            raise CustomsUnavailable(f"{destination} is down")
        self.sends.append((destination, declaration_batch_id, signed_xml))
        return CustomsReceipt(destination, declaration_batch_id, self.clock.now(), b"<receipt/>")

    def to(self, destination: str) -> list[str]:
        """The references sent to ``destination``, in order."""
        return [
            reference
            for sent_to, _, body in self.sends
            if sent_to == destination
            for reference in body.decode().split(",")
        ]


def build_batch(claims: Sequence[ForwardClaim], destination: str) -> tuple[str, bytes]:
    return f"DB-{claims[0].outbox_id}", ",".join(c.reference for c in claims).encode()


def build_copy(claims: Sequence[CopyClaim], agency: str) -> tuple[str, bytes]:
    return f"AC-{agency}-{claims[0].outbox_id}", ",".join(c.reference for c in claims).encode()


def item(number: int, hs: str) -> IncomingItem:
    ident = f"RR{number:09d}DE"
    xml = (
        f"<Item><ItemId>{ident}</ItemId><Contents><Line><HsCode>{hs}</HsCode></Line>"
        "</Contents></Item>"
    ).encode()
    return IncomingItem(number, ident, "DE", digest(xml), xml)


def agencies_of(claim: ForwardClaim) -> tuple[str, ...]:
    """Plants subscribe to chapters 06-14, animals to 01-05; chapter 01 also goes to plants
    (two agencies for one item)."""
    chapter = int(claim.item_xml.split(b"<HsCode>")[1][:2])
    found = []
    if 6 <= chapter <= 14 or chapter == 1:
        found.append(PLANTS)
    if 1 <= chapter <= 5:
        found.append(ANIMALS)
    return tuple(found)


@dataclass
class Rig:
    store: InMemoryItemStore
    clock: FrozenClock
    gateway: FakeGateway
    forward: ForwardService
    copy: CopyService
    references: list[str]

    async def item_state(self, reference: str) -> ItemState:
        return (await self.store.item_events(reference))[-1].to_state


def policy(max_attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, base_delay_s=10, max_delay_s=60, jitter=0)


@pytest.fixture
async def rig() -> Rig:
    store = InMemoryItemStore()
    clock = FrozenClock(T0)
    gateway = FakeGateway(clock)
    items = (item(0, "060210"), item(1, "010121"), item(2, "950300"), item(3, "120100"))
    results = await store.record_intake(
        Intake("OP1", "B1", T0, digest(b"B1"), len(items), items, (), "push")
    )
    forward = ForwardService(
        store,
        gateway,
        clock,
        "replica-1",
        build_batch,
        lambda claim: "customs-de",
        policy(),
        agencies=agencies_of,
        rng=random.Random(1),
    )
    copy = CopyService(
        store, gateway, clock, "replica-1", build_copy, policy(), rng=random.Random(1)
    )
    return Rig(store, clock, gateway, forward, copy, [r.reference for r in results])


async def test_forwarded_items_are_copied_to_their_subscribing_agencies(rig: Rig) -> None:
    plant, animal, toy, seeds = rig.references
    assert (await rig.forward.run_once()).sent == 4

    outcome = await rig.copy.run_once()

    assert (outcome.claimed, outcome.sent, outcome.batches, outcome.dead) == (4, 4, 2, 0)
    assert sorted(rig.gateway.to(PLANTS)) == sorted([plant, animal, seeds])
    assert rig.gateway.to(ANIMALS) == [animal]
    assert toy not in rig.gateway.to(PLANTS) + rig.gateway.to(ANIMALS)
    # The evidence names the agency; the items stay FORWARDED, with no copy event.
    evidence = {kept.destination for kept in rig.store.declarations.values()}
    assert evidence == {"customs-de", PLANTS, ANIMALS}
    for reference in rig.references:
        assert await rig.item_state(reference) is ItemState.FORWARDED
        assert len(await rig.store.item_events(reference)) == 4  # RECEIVED..FORWARDED
    assert (await rig.copy.run_once()).claimed == 0


async def test_copies_are_queued_only_when_customs_accepted(rig: Rig) -> None:
    rig.gateway.down.add("customs-de")
    assert (await rig.forward.run_once()).retried == 4

    assert (await rig.copy.run_once()).claimed == 0
    assert rig.gateway.sends == []


async def test_agency_down_is_retried_later_and_never_touches_the_items(rig: Rig) -> None:
    await rig.forward.run_once()
    rig.gateway.down.add(PLANTS)

    first = await rig.copy.run_once()

    assert (first.sent, first.retried) == (1, 3)  # the animal agency got its copy
    assert (await rig.copy.run_once()).claimed == 0  # not due before the backoff
    rig.gateway.down.clear()
    rig.clock.advance(10)
    again = await rig.copy.run_once()
    assert (again.claimed, again.sent) == (3, 3)
    assert len(rig.gateway.to(PLANTS)) == 3
    for reference in rig.references:
        assert await rig.item_state(reference) is ItemState.FORWARDED


async def test_copy_out_of_attempts_is_dead_for_the_copy_only(rig: Rig) -> None:
    await rig.forward.run_once()
    rig.gateway.down.add(ANIMALS)
    for _ in range(3):
        await rig.copy.run_once()
        rig.clock.advance(60)
    dead = [job for job in rig.store.jobs.values() if job.status == "dead"]

    assert [job.kind for job in dead] == [f"copy:{ANIMALS}"]
    assert "gave up after 3 attempts" in (dead[0].last_error or "")
    assert await rig.store.dead_letters() == ()  # not an item's dead letter
    assert await rig.item_state(dead[0].reference) is ItemState.FORWARDED


async def test_agency_refusal_is_dead_at_once(rig: Rig) -> None:
    await rig.forward.run_once()
    rig.gateway.refuse.add(ANIMALS)

    outcome = await rig.copy.run_once()

    assert (outcome.sent, outcome.dead) == (3, 1)


async def test_store_unavailable_ends_the_copy_run(rig: Rig) -> None:
    await rig.forward.run_once()

    async def broken(*args: object, **kwargs: object) -> int:
        raise StoreUnavailable("database down")

    rig.store.record_copied = broken  # type: ignore[method-assign]
    outcome = await rig.copy.run_once()

    assert outcome.error is not None
    assert "database down" in outcome.error
    assert outcome.sent == 0


async def test_forwarding_again_replaces_a_pending_copy(rig: Rig) -> None:
    """A re-forward (amendment) while the old copy still waits queues one copy, not two."""
    await rig.forward.run_once()
    amended = item(0, "060210")
    amended = IncomingItem(0, amended.item_id, "DE", digest(b"v2"), amended.item_xml + b" ")
    await rig.store.amend_item("OP1", amended, 2, rig.clock.now())
    assert (await rig.forward.run_once()).sent == 1

    outcome = await rig.copy.run_once()

    assert outcome.claimed == 4  # one copy per (item, agency)
    assert rig.gateway.to(PLANTS).count(rig.references[0]) == 1


# -- the lease heartbeat ----------------------------------------------------------------


@dataclass
class SlowGateway:
    """Takes ``seconds`` per send; halfway through, a second replica tries to claim."""

    store: InMemoryItemStore
    clock: SystemClock
    seconds: float
    copies: bool = False
    stolen: list[int] = field(default_factory=list)

    async def send(
        self, destination: str, declaration_batch_id: str, signed_xml: bytes
    ) -> CustomsReceipt:
        await asyncio.sleep(self.seconds * 2 / 3)
        now = self.clock.now()
        if self.copies:
            taken: Sequence[object] = await self.store.claim_copies("replica-2", 10, 1.0, now)
        else:
            taken = await self.store.claim_for_forwarding("replica-2", 10, 1.0, now)
        self.stolen.append(len(taken))
        await asyncio.sleep(self.seconds / 3)
        return CustomsReceipt(destination, declaration_batch_id, self.clock.now(), b"<r/>")


async def _slow_forward(heartbeat_s: float | None) -> tuple[SlowGateway, int]:
    store = InMemoryItemStore()
    clock = SystemClock()
    now = clock.now()
    items = (item(0, "060210"), item(1, "950300"))
    await store.record_intake(
        Intake("OP1", "B1", now, digest(b"B1"), len(items), items, (), "push")
    )
    gateway = SlowGateway(store, clock, seconds=3.0)
    service = ForwardService(
        store,
        gateway,
        clock,
        "replica-1",
        build_batch,
        lambda claim: "customs-de",
        lease_s=1.0,
        heartbeat_s=heartbeat_s,
    )
    outcome = await service.run_once()
    return gateway, outcome.sent


async def test_heartbeat_keeps_a_slow_send_from_being_taken_over() -> None:
    """A 3 s send under a 1 s lease: the heartbeat renews it, no other replica gets in."""
    gateway, sent = await _slow_forward(heartbeat_s=None)  # default: every lease_s / 3

    assert gateway.stolen == [0]
    assert sent == 2


async def test_without_a_heartbeat_a_slow_send_is_taken_over() -> None:
    """The control: with the heartbeat off the same send loses its claims halfway."""
    gateway, sent = await _slow_forward(heartbeat_s=0)

    assert gateway.stolen == [2]
    assert sent == 0  # the owner guard: the late owner records nothing


async def test_heartbeat_keeps_slow_copies_claimed() -> None:
    store = InMemoryItemStore()
    clock = SystemClock()
    items = (item(0, "060210"),)
    await store.record_intake(Intake("OP1", "B1", clock.now(), digest(b"B1"), 1, items, (), "push"))
    claims = await store.claim_for_forwarding("replica-1", 10, 60, clock.now())
    receipt = CustomsReceipt("customs-de", "DB1", clock.now(), b"<r/>")
    await store.record_forwarded(
        claims,
        "replica-1",
        "DB1",
        b"x",
        receipt,
        clock.now(),
        copies={claims[0].reference: [PLANTS]},
    )
    gateway = SlowGateway(store, clock, seconds=3.0, copies=True)
    service = CopyService(store, gateway, clock, "replica-1", build_copy, lease_s=1.0)

    outcome = await service.run_once()

    assert gateway.stolen == [0]
    assert outcome.sent == 1
    job = next(job for job in store.jobs.values() if job.kind == f"copy:{PLANTS}")
    assert job.status == "done"
