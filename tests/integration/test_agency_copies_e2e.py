"""Agency copies end to end on loopback, wired from settings by ``open_forwarder``.

A SQLite store, the connector's real key ring, HTTPS with mTLS, one mock Customs and one mock
plant-health agency (chapters 06-14, a three-field allow-list). Items are accepted through
the intake service, declared to Customs by the forward stage and copied, minimized and signed,
by the copy stage; the agency verifies the signature and answers with a signed receipt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from connector.adapters.db.store import SqlItemStore
from connector.adapters.keystore import KeyRing
from connector.core.declarations import parse_item
from connector.core.model import ItemState
from connector.core.routing import hs_chapter, hs_codes_of
from connector.core.xmlsafe import parse_xml
from connector.flow.accept import AcceptService
from connector.flow.copy import CopyOutcome, CopyService
from connector.flow.forward import ForwardOutcome, ForwardService
from connector.forwarder import EvidencePurge, Forwarder, open_forwarder, router_for
from connector.peers.customs import MockCustoms
from connector.peers.tls import LoopbackPki
from connector.ports import OperatorRecord
from connector.sample import generate_batch
from connector.sample_data import DESTINATION_WEIGHT
from connector.settings import validate_settings
from connector.testing import FrozenClock

PASSPHRASE = b"agency copy test passphrase"
OPERATOR = "DE-POST"
CUSTOMS = "EU-ICS2"
PLANTS = "plant-health"
FIELDS = ("ItemId", "Contents/Line/HsCode", "Transport/DestinationCountry")
PLANT_CHAPTERS = range(6, 15)


@dataclass
class Rig:
    store: SqlItemStore
    clock: FrozenClock
    customs: MockCustoms
    plants: MockCustoms
    forwarder: Forwarder
    accept: AcceptService

    @property
    def forward(self) -> ForwardService:
        return self.forwarder.service

    @property
    def copy(self) -> CopyService:
        assert self.forwarder.copier is not None
        return self.forwarder.copier

    async def push(self, items: int, seed: int) -> list[str]:
        batch = generate_batch(items, seed=seed, operator_id=OPERATOR)
        ack = await self.accept.accept_batch(OPERATOR, batch.xml)
        return [item.reference for item in ack.items if item.reference is not None]

    async def states(self, references: list[str]) -> set[ItemState]:
        return {(await self.store.item_events(r))[-1].to_state for r in references}


async def drain_forward(service: ForwardService) -> ForwardOutcome:
    total = ForwardOutcome()
    for _ in range(50):
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


async def drain_copies(service: CopyService) -> CopyOutcome:
    total = CopyOutcome()
    for _ in range(50):
        outcome = await service.run_once()
        assert outcome.error is None
        if not outcome.claimed:
            return total
        total = CopyOutcome(
            claimed=total.claimed + outcome.claimed,
            sent=total.sent + outcome.sent,
            retried=total.retried + outcome.retried,
            dead=total.dead + outcome.dead,
            batches=total.batches + outcome.batches,
        )
    raise AssertionError("the copies never drained")


def _pem(path: Path, mock: MockCustoms) -> Path:
    path.write_bytes(mock.certificate.public_bytes(Encoding.PEM))
    return path


@pytest.fixture
async def rig(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FrozenClock(datetime.now(UTC))  # the certificates are issued for the real now
    store = await SqlItemStore.open(sqlite_url)
    await store.upsert_operators((OperatorRecord(OPERATOR, "DE Post", token_sha256="0" * 64),))
    pki = LoopbackPki.create(tmp_path / "pki")
    client = pki.issue_client("connector")
    ring = KeyRing.create(tmp_path / "keys", PASSPHRASE, "ec", "EADC-TEST", 30)
    peer_ring = KeyRing.create(tmp_path / "peers", PASSPHRASE, "ec", "Mock peers", 30)
    mocks = []
    for destination in (CUSTOMS, PLANTS):
        mock = MockCustoms(
            peer_ring.active,
            ring.published,
            ssl_context=pki.server_context(require_client_cert=True),
            destination=destination,
            slow_s=5.0,
        )
        await mock.start()
        mocks.append(mock)
    customs, plants = mocks
    tls = {
        "ca_file": str(pki.ca_file),
        "client_cert": str(client.cert_file),
        "client_key": str(client.key_file),
        "fast_retries": 0,
        "timeout_seconds": 2.0,
    }
    settings = validate_settings(
        {
            "connector_id": "EADC-TEST",
            "signing": {"keys_dir": str(tmp_path / "keys")},
            "forwarding": {"batch_size": 100, "max_attempts": 3, "backoff_seconds": 5},
            "destinations": [
                {
                    "id": CUSTOMS,
                    "url": customs.declarations_url,
                    "countries": sorted(DESTINATION_WEIGHT),
                    "certificates": [str(_pem(tmp_path / "customs.pem", customs))],
                    **tls,
                },
                {
                    "id": PLANTS,
                    "kind": "agency",
                    "url": plants.declarations_url,
                    "hs_chapters": list(PLANT_CHAPTERS),
                    "fields": list(FIELDS),
                    "certificates": [str(_pem(tmp_path / "plants.pem", plants))],
                    **tls,
                },
            ],
        }
    )
    forwarder = open_forwarder(settings, store, clock, "replica-1", ring=ring)
    assert forwarder is not None
    assert set(router_for(settings).agencies) == {PLANTS}
    rig = Rig(store, clock, customs, plants, forwarder, AcceptService(store, clock))
    try:
        yield rig
    finally:
        await forwarder.close()
        for mock in mocks:
            await mock.stop()
        await store.close()


async def _plant_references(rig: Rig, seed: int, count: int) -> set[str]:
    """The references of the generated items with an HS code of chapters 06-14."""
    batch = generate_batch(count, seed=seed, operator_id=OPERATOR)
    found = set()
    for item_id in _item_ids(batch.xml):
        stored = await rig.store.get_item(OPERATOR, item_id)
        assert stored is not None
        if {hs_chapter(code) for code in hs_codes_of(stored.item_xml)} & set(PLANT_CHAPTERS):
            found.add(stored.reference)
    return found


def _item_ids(batch_xml: bytes) -> list[str]:
    root = parse_xml(batch_xml)
    return [
        (node.text or "").strip()
        for node in root.iter()
        if isinstance(node.tag, str) and node.tag.endswith("}ItemId")
    ]


async def test_plant_chapters_reach_the_agency_minimized_others_do_not(rig: Rig) -> None:
    references = await rig.push(60, seed=11)
    plant = await _plant_references(rig, 11, 60)
    assert 0 < len(plant) < len(references)  # the sample has both kinds

    assert (await drain_forward(rig.forward)).sent == 60
    outcome = await drain_copies(rig.copy)

    assert (outcome.sent, outcome.dead) == (len(plant), 0)
    received = {
        key[0]: fields for copy in rig.plants.copies.values() for key, fields in copy.items.items()
    }
    assert set(received) == plant
    for reference, fields in received.items():
        paths = {path.split("[")[0].split("/")[0] for path, _ in fields}
        assert paths <= {"ItemId", "Contents", "Transport"}
        assert any(path.startswith("Contents/Line") for path, _ in fields)
        stored = await rig.store.get_item(OPERATOR, dict(fields)["ItemId"])
        assert stored is not None
        assert stored.reference == reference
        # Nothing about the sender left the connector for the agency.
        parsed = parse_item(stored.item_xml)
        namespace = etree.QName(parsed).namespace
        sender = parsed.find(f"{{{namespace}}}Sender")
        assert sender is not None
        private = [
            " ".join(node.text.split())
            for node in sender.iter()
            if node.text
            and len(node.text.strip()) > 4
            and etree.QName(node).localname not in ("Country", "PostalCode")
        ]
        assert private  # a name and a street at least
        for value in private:
            assert all(value.encode() not in copy.signed_xml for copy in rig.plants.copies.values())
    for copy in rig.plants.copies.values():
        assert copy.agency == PLANTS
        assert copy.signer_fingerprint == rig.forwarder.ring.active.fingerprint
        assert copy.copy_batch_id.startswith(f"AC-{PLANTS}-")
        assert b"Sender" not in copy.signed_xml
        assert b"Addressee" not in copy.signed_xml
    assert rig.plants.received == {}  # the agency got no declaration batch
    assert {reference for reference, _ in rig.customs.declarations} == set(references)
    assert rig.customs.copies == {}
    assert await rig.states(references) == {ItemState.FORWARDED}


async def test_agency_down_does_not_hold_up_customs_then_gets_its_copies(rig: Rig) -> None:
    references = await rig.push(30, seed=18)
    plant = await _plant_references(rig, 18, 30)
    assert plant
    rig.plants.mode = "down"

    forwarded = await drain_forward(rig.forward)
    down = await drain_copies(rig.copy)

    assert (forwarded.sent, forwarded.retried) == (30, 0)
    assert {reference for reference, _ in rig.customs.declarations} == set(references)
    assert (down.sent, down.retried, down.dead) == (0, len(plant), 0)
    assert await rig.states(references) == {ItemState.FORWARDED}
    rig.plants.mode = "ok"
    assert (await drain_copies(rig.copy)).claimed == 0  # waits for its backoff
    rig.clock.advance(10)
    back = await drain_copies(rig.copy)
    assert back.sent == len(plant)
    copied = {key[0] for copy in rig.plants.copies.values() for key in copy.items}
    assert copied == plant


async def test_a_dead_copy_leaves_the_item_forwarded(rig: Rig) -> None:
    references = await rig.push(30, seed=13)
    plant = await _plant_references(rig, 13, 30)
    assert plant
    rig.plants.mode = "error"
    await drain_forward(rig.forward)

    dead = 0
    for _ in range(3):  # forwarding.max_attempts
        dead += (await drain_copies(rig.copy)).dead
        rig.clock.advance(timedelta(minutes=30).total_seconds())

    assert dead == len(plant)
    assert rig.plants.copies == {}
    assert await rig.states(references) == {ItemState.FORWARDED}
    assert await rig.store.dead_letters() == ()


async def test_the_evidence_keeps_the_copies_and_is_purged_after_retention(rig: Rig) -> None:
    await rig.push(20, seed=14)
    await drain_forward(rig.forward)
    copies = await drain_copies(rig.copy)
    assert copies.batches >= 1
    purge = EvidencePurge(rig.store, rig.clock, retention_days=400)
    assert rig.forwarder.purge_loop is not None  # the service runs it hourly

    assert await purge.run_once() == 0
    rig.clock.advance(timedelta(days=400, seconds=1).total_seconds())

    assert await purge.run_once() == 1 + copies.batches  # the declaration and the copies
    assert await purge.run_once() == 0
