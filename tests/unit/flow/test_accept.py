"""The accept stage over the in-memory store: stored before acknowledged, idempotent, scoped."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
from lxml import etree

from connector.core.outbound import acknowledgement_xml
from connector.core.schemas import MessageKind, default_registry
from connector.errors import EnvelopeInvalid, Forbidden
from connector.flow.accept import AcceptService
from connector.sample import generate_batch
from connector.testing import FrozenClock, InMemoryItemStore

DATA = Path(__file__).parents[2] / "data"
NS = "{urn:ead-connector:item-batch:1}"


@pytest.fixture
def store() -> InMemoryItemStore:
    return InMemoryItemStore()


@pytest.fixture
def service(store: InMemoryItemStore) -> AcceptService:
    return AcceptService(store=store, clock=FrozenClock())


async def test_accepted_items_are_stored_with_events_and_queued(
    service: AcceptService, store: InMemoryItemStore
) -> None:
    batch = generate_batch(50, invalid_ratio=0.2, seed=4, operator_id="PL-POCZTA")
    ack = await service.accept_batch("PL-POCZTA", batch.xml)
    faulty = {fault.index for fault in batch.faults}
    assert [i.item_index for i in ack.items] == list(range(50))
    assert {i.item_index for i in ack.items if not i.accepted} == faulty
    accepted = [i for i in ack.items if i.accepted]
    assert len(store.items) == len(accepted) == 50 - len(faulty)
    for item in accepted:
        stored = store.items[("PL-POCZTA", item.item_id)]
        assert stored.reference == item.reference
        assert [e.to_state.value for e in store.events[stored.reference]] == [
            "RECEIVED",
            "ACCEPTED",
        ]
    assert len(store.outbox) == len(accepted)
    for item in ack.items:
        if not item.accepted:
            assert item.errors
            assert item.reference is None
    recorded = store.batches[("PL-POCZTA", batch.batch_id)]
    assert recorded.payload_digest == hashlib.sha256(batch.xml).hexdigest()


async def test_identical_resend_changes_nothing(
    service: AcceptService, store: InMemoryItemStore
) -> None:
    data = (DATA / "valid" / "two_items.xml").read_bytes()
    first = await service.accept_batch("DE-POST", data)
    events = {ref: list(evs) for ref, evs in store.events.items()}
    second = await service.accept_batch("DE-POST", data)
    assert [(i.item_id, i.accepted, i.reference) for i in first.items] == [
        (i.item_id, i.accepted, i.reference) for i in second.items
    ]
    assert len(store.items) == 2
    assert store.events == events
    assert len(store.outbox) == 2


async def test_changed_item_with_same_id_is_a_conflict(
    service: AcceptService, store: InMemoryItemStore
) -> None:
    tree = etree.parse(str(DATA / "valid" / "two_items.xml"))
    await service.accept_batch("DE-POST", etree.tostring(tree))
    changed = copy.deepcopy(tree)
    changed.getroot()[1][0].find(f"{NS}Comments").text = "Invoice INV-2026-99999"
    ack = await service.accept_batch("DE-POST", etree.tostring(changed))
    first, second = ack.items
    assert not first.accepted
    assert first.errors[0].code == "item_conflict"
    assert first.errors[0].path == "/ItemBatch/Items/Item[1]/ItemId"
    assert second.accepted
    stored = store.items[("DE-POST", "RR123456785DE")]
    assert b"INV-2026-00421" in stored.item_xml  # the first version stands


async def test_batch_naming_another_operator_is_forbidden_and_not_stored(
    service: AcceptService, store: InMemoryItemStore
) -> None:
    with pytest.raises(Forbidden):
        await service.accept_batch("FR-POST", (DATA / "valid" / "two_items.xml").read_bytes())
    assert store.items == {}


async def test_unusable_batch_raises_and_stores_nothing(
    service: AcceptService, store: InMemoryItemStore
) -> None:
    with pytest.raises(EnvelopeInvalid):
        await service.accept_batch(
            "DE-POST", b"<ItemBatch xmlns='urn:ead-connector:item-batch:1'/>"
        )
    assert store.items == {}


async def test_pull_cursor_is_saved_with_the_items(
    service: AcceptService, store: InMemoryItemStore
) -> None:
    data = (DATA / "valid" / "two_items.xml").read_bytes()
    await service.accept_batch("DE-POST", data, source="pull", cursor="batch-0007")
    assert await store.get_cursor("DE-POST") == "batch-0007"


async def test_acknowledgement_xml_is_schema_valid(service: AcceptService) -> None:
    batch = generate_batch(30, invalid_ratio=0.3, seed=9, operator_id="JP-POST")
    ack = await service.accept_batch("JP-POST", batch.xml)
    document = etree.fromstring(acknowledgement_xml(ack))
    schema = default_registry().lxml(MessageKind.ACKNOWLEDGEMENT)
    assert schema.validate(document), schema.error_log
    statuses = document.findall(".//{urn:ead-connector:acknowledgement:1}Status")
    assert [s.text for s in statuses].count("rejected") == len(batch.faults)
    as_json = ack.as_dict()
    assert as_json["batch_id"] == batch.batch_id
    items = as_json["items"]
    assert isinstance(items, list)
    assert {"item_id", "status", "reference", "errors"} <= set(items[0])
