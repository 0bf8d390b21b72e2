"""Forwarding end to end on loopback: SQLite store, real keys, HTTPS with mTLS, mock Customs.

The items are accepted through the intake service, claimed, built into declaration batches,
signed with the connector's key ring and sent by the HTTPS gateway to the mock Customs, which
verifies the signature and answers with a signed receipt that the gateway verifies.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from connector.adapters.customs_client import CustomsEndpoint, HttpCustomsGateway
from connector.adapters.db.store import SqlItemStore
from connector.adapters.keystore import KeyRing
from connector.checks_loader import default_check_config
from connector.core import signing
from connector.core.checks.seeding import seed_check_problems
from connector.core.model import ItemState
from connector.core.retry import RetryPolicy
from connector.core.routing import CustomsRoute, Router
from connector.flow.accept import AcceptService
from connector.flow.forward import ForwardOutcome, ForwardService
from connector.forwarder import BatchBuilder
from connector.peers.customs import MockCustoms
from connector.peers.tls import LoopbackPki
from connector.ports import ForwardClaim, OperatorRecord
from connector.sample import generate_batch
from connector.sample_data import DESTINATION_WEIGHT
from connector.testing import FrozenClock

PASSPHRASE = b"forwarding test passphrase"
OPERATOR = "DE-POST"
DESTINATION = "EU-ICS2"


@dataclass
class Rig:
    store: SqlItemStore
    clock: FrozenClock
    ring: KeyRing
    customs: MockCustoms
    gateway: HttpCustomsGateway
    accept: AcceptService
    router: Router

    def service(self, owner: str = "replica-1", *, max_attempts: int = 8) -> ForwardService:
        def route(claim: ForwardClaim) -> str | None:
            return self.router.customs_for(claim.destination_country, claim.operator_id)

        policy = RetryPolicy(max_attempts=max_attempts, base_delay_s=5, max_delay_s=60, jitter=0)
        return ForwardService(
            self.store,
            self.gateway,
            self.clock,
            owner,
            BatchBuilder("EADC-TEST", self.ring, self.clock, refresh_s=0),
            route,
            policy,
            batch_size=100,
            lease_s=60,
            rng=random.Random(2),
        )

    async def push(self, items: int, seed: int) -> list[str]:
        """Accept one generated batch; the references of its accepted items."""
        batch = generate_batch(items, seed=seed, operator_id=OPERATOR)
        ack = await self.accept.accept_batch(OPERATOR, batch.xml)
        return [item.reference for item in ack.items if item.reference is not None]

    async def drain(self, service: ForwardService) -> ForwardOutcome:
        """Run until a run claims nothing (what is due now); the summed outcome."""
        total = ForwardOutcome()
        for _ in range(100):
            outcome = await service.run_once()
            assert outcome.error is None
            if not outcome.claimed:
                return total
            total = ForwardOutcome(
                claimed=total.claimed + outcome.claimed,
                sent=total.sent + outcome.sent,
                retried=total.retried + outcome.retried,
                dead=total.dead + outcome.dead,
                batches=total.batches + outcome.batches,
            )
        raise AssertionError("the outbox never drained")

    async def states(self, references: list[str]) -> dict[str, ItemState]:
        found: dict[str, ItemState] = {}
        for reference in references:
            events = await self.store.item_events(reference)
            found[reference] = events[-1].to_state
        return found


@pytest.fixture
async def rig(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FrozenClock(datetime.now(UTC))  # the certificates are issued for the real now
    store = await SqlItemStore.open(sqlite_url)
    await store.upsert_operators(
        (OperatorRecord(OPERATOR, "Deutsche Post", token_sha256="0" * 64),)
    )
    pki = LoopbackPki.create(tmp_path / "pki")
    client = pki.issue_client("connector")
    ring = KeyRing.create(tmp_path / "keys", PASSPHRASE, "ec", "EADC-TEST", 30)
    customs_ring = KeyRing.create(tmp_path / "customs", PASSPHRASE, "ec", "Mock Customs", 30)
    customs = MockCustoms(
        customs_ring.active,
        ring.published,
        ssl_context=pki.server_context(require_client_cert=True),
        destination=DESTINATION,
        slow_s=5.0,
    )
    await customs.start()
    endpoint = CustomsEndpoint(
        destination=DESTINATION,
        url=customs.declarations_url,
        ca_file=pki.ca_file,
        client_cert_file=client.cert_file,
        client_key_file=client.key_file,
        customs_certificates=(customs.certificate,),
        fast_retries=1,
        backoff_s=0.01,
        total_timeout_s=2.0,
    )
    gateway = HttpCustomsGateway({DESTINATION: endpoint}, clock)
    router = Router([CustomsRoute(DESTINATION, frozenset(DESTINATION_WEIGHT))], ())
    try:
        yield Rig(store, clock, ring, customs, gateway, AcceptService(store, clock), router)
    finally:
        await gateway.close()
        await customs.stop()
        await store.close()


async def test_accepted_items_reach_customs_once_signed_and_with_evidence(rig: Rig) -> None:
    references = await rig.push(250, seed=1)
    assert len(references) == 250
    outcome = await rig.drain(rig.service())
    assert (outcome.sent, outcome.dead, outcome.batches) == (250, 0, 3)
    assert {reference for reference, _ in rig.customs.declarations} == set(references)
    assert rig.customs.duplicates == 0
    assert set((await rig.states(references)).values()) == {ItemState.FORWARDED}
    # The evidence: the exact signed bytes and Customs' signed receipt, per batch.
    events = await rig.store.item_events(references[0])
    assert "declaration batch DB-EU-ICS2-" in (events[-1].detail or "")


async def test_customs_down_for_a_while_then_back_delivers_everything_once(rig: Rig) -> None:
    references = await rig.push(120, seed=2)
    service = rig.service()
    rig.customs.mode = "down"
    for _ in range(3):  # three failed rounds, each retried later from the outbox
        down = await rig.drain(service)
        assert (down.claimed, down.sent, down.retried, down.dead) == (120, 0, 120, 0)
        rig.clock.advance(120)
    assert rig.customs.declarations == {}
    rig.customs.mode = "ok"
    back = await rig.drain(service)
    assert back.sent == 120
    assert {reference for reference, _ in rig.customs.declarations} == set(references)
    assert rig.customs.duplicates == 0
    assert set((await rig.states(references)).values()) == {ItemState.FORWARDED}


async def test_500_and_429_are_retried_within_the_send(rig: Rig) -> None:
    references = await rig.push(10, seed=3)
    rig.customs.fail_next(1, "error")
    outcome = await rig.drain(rig.service())
    assert outcome.sent == 10  # the fast retry succeeded within the same send
    assert rig.customs.requests == 2
    rig.customs.fail_next(1, "throttle")
    more = await rig.push(5, seed=4)
    assert (await rig.drain(rig.service())).sent == 5
    assert {reference for reference, _ in rig.customs.declarations} == set(references + more)


async def test_persistent_500_backs_off_durably_then_delivers(rig: Rig) -> None:
    references = await rig.push(10, seed=5)
    service = rig.service()
    rig.customs.mode = "error"
    first = await service.run_once()
    assert (first.sent, first.retried) == (0, 10)
    assert (await service.run_once()).claimed == 0  # not due again before the backoff
    rig.customs.mode = "ok"
    rig.clock.advance(6)
    assert (await service.run_once()).sent == 10
    assert len(rig.customs.declarations) == len(references)


async def test_out_of_attempts_goes_dead_and_replay_delivers(rig: Rig) -> None:
    references = await rig.push(4, seed=6)
    service = rig.service(max_attempts=2)
    rig.customs.mode = "error"
    assert (await rig.drain(service)).retried == 4
    rig.clock.advance(120)
    assert (await rig.drain(service)).dead == 4
    assert {item.reference for item in await rig.store.dead_letters()} == set(references)
    rig.customs.mode = "ok"
    for reference in references:
        await rig.store.replay(reference, rig.clock.now())
    assert (await rig.drain(service)).sent == 4
    assert set((await rig.states(references)).values()) == {ItemState.FORWARDED}


async def test_customs_refusal_is_a_dead_letter_at_once(rig: Rig) -> None:
    references = await rig.push(3, seed=7)
    rig.customs.fail_next(1, "refuse")
    outcome = await rig.drain(rig.service())
    assert outcome.dead == 3
    assert {item.reference for item in await rig.store.dead_letters()} == set(references)


async def test_key_rotation_while_forwarding_fails_no_send(rig: Rig) -> None:
    """Customs trusts old and new certificates during the overlap: every batch is accepted."""
    service = rig.service()
    old_certificate = rig.ring.active.certificate
    sent = 0
    for round_number in range(6):
        await rig.push(40, seed=100 + round_number)
        if round_number == 2:
            # The new certificate is published to Customs first, then the key rotates.
            new_id = rig.ring.add(days=60)
            rig.customs.trust(rig.ring.published[-1])
            rig.ring.activate(new_id)
        outcome = await rig.drain(service)
        assert (outcome.retried, outcome.dead) == (0, 0)
        sent += outcome.sent
    assert sent == 240
    assert rig.customs.refusals == []
    signers = {batch.signer_fingerprint for batch in rig.customs.received.values()}
    assert signers == {signing.fingerprint(old_certificate), rig.ring.active.fingerprint}


async def test_concurrent_replicas_deliver_each_item_once(rig: Rig) -> None:
    references = await rig.push(300, seed=8)
    one, two = rig.service("replica-1"), rig.service("replica-2")
    await asyncio.gather(rig.drain(one), rig.drain(two))
    assert {reference for reference, _ in rig.customs.declarations} == set(references)
    assert rig.customs.duplicates == 0


async def test_check_warnings_travel_in_the_declaration(rig: Rig) -> None:
    """A vague description is accepted with a warning, and Customs receives that warning."""
    batch = generate_batch(20, seed=9, operator_id=OPERATOR)
    seeded = seed_check_problems(batch.xml, ratio=0.1, seed=9, codes=("description_vague",))
    accept = AcceptService(rig.store, rig.clock, checks=default_check_config())
    ack = await accept.accept_batch(OPERATOR, seeded.xml)
    warned = {
        item.reference: sorted(f.code for f in item.findings if f.severity.value == "warning")
        for item in ack.items
        if item.findings
    }
    assert all(item.accepted for item in ack.items)
    assert sum("description_vague" in codes for codes in warned.values()) == 2
    assert (await rig.drain(rig.service())).sent == 20
    (received,) = rig.customs.received.values()
    namespace = {"d": "urn:ead-connector:declaration-batch:1"}
    root = etree.fromstring(received.signed_xml)
    with_findings = {
        node.findtext("d:ItemReference", namespaces=namespace): sorted(
            code.text or "" for code in node.iterfind("d:Findings/d:Finding/d:Code", namespace)
        )
        for node in root.iterfind("d:Declarations/d:Declaration", namespace)
        if node.find("d:Findings", namespace) is not None
    }
    assert with_findings == warned  # every warning, on its item, and nothing else
