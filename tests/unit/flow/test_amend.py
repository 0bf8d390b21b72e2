"""Amendments and cancellations of undecided items, entry by entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from connector.core.model import ItemState
from connector.core.outbound import renamespace
from connector.core.references import digest
from connector.errors import EnvelopeInvalid, Forbidden
from connector.flow.accept import AcceptService
from connector.flow.amend import AmendService
from connector.testing import FrozenClock, InMemoryItemStore

DATA = Path(__file__).parents[2] / "data"
BATCH_NS = "urn:ead-connector:item-batch:1"
NS = "urn:ead-connector:amendment:1"


def _items() -> list[etree._Element]:
    root = etree.parse(str(DATA / "valid" / "two_items.xml")).getroot()
    return list(root[1])


def amendment(*entries: etree._Element, operator: str = "DE-POST") -> bytes:
    root = etree.Element(f"{{{NS}}}Amendment", nsmap={None: NS})
    for name, text in (("AmendmentId", "AMD-1"), ("OperatorId", operator)):
        etree.SubElement(root, f"{{{NS}}}{name}").text = text
    etree.SubElement(root, f"{{{NS}}}CreatedAt").text = "2026-11-26T09:00:00Z"
    root.extend(entries)
    return etree.tostring(root)


def replace(item: etree._Element, version: int) -> etree._Element:
    entry = etree.Element(f"{{{NS}}}Replace")
    etree.SubElement(entry, f"{{{NS}}}Version").text = str(version)
    entry.append(renamespace(item, NS))
    return entry


def cancel(item_id: str, version: int, reason: str = "withdrawn by sender") -> etree._Element:
    entry = etree.Element(f"{{{NS}}}Cancel")
    etree.SubElement(entry, f"{{{NS}}}ItemId").text = item_id
    etree.SubElement(entry, f"{{{NS}}}Version").text = str(version)
    etree.SubElement(entry, f"{{{NS}}}Reason").text = reason
    return entry


@pytest.fixture
async def store() -> InMemoryItemStore:
    store = InMemoryItemStore()
    accept = AcceptService(store=store, clock=FrozenClock())
    await accept.accept_batch("DE-POST", (DATA / "valid" / "two_items.xml").read_bytes())
    return store


@pytest.fixture
def service(store: InMemoryItemStore) -> AmendService:
    return AmendService(store=store, clock=FrozenClock())


async def test_replace_and_cancel_apply_with_events(
    service: AmendService, store: InMemoryItemStore
) -> None:
    first, _ = _items()
    first.find(f"{{{BATCH_NS}}}Comments").text = "Invoice INV-2026-00422 (corrected)"
    result = await service.amend(
        "DE-POST", amendment(replace(first, 2), cancel("LX473124829CN", 1))
    )
    assert [(e.action, e.applied) for e in result.entries] == [("replace", True), ("cancel", True)]
    amended = store.items[("DE-POST", "RR123456785DE")]
    assert amended.version == 2
    assert amended.state is ItemState.AMENDED
    assert b"INV-2026-00422" in amended.item_xml
    assert BATCH_NS.encode() in amended.item_xml  # stored like any intake item
    assert b"urn:ead-connector:amendment" not in amended.item_xml
    assert amended.digest == digest(amended.item_xml)
    cancelled = store.items[("DE-POST", "LX473124829CN")]
    assert cancelled.state is ItemState.CANCELLED
    assert [e.to_state for e in store.events[cancelled.reference]][-1] is ItemState.CANCELLED
    assert cancelled.reference not in store.outbox


async def test_each_bad_entry_is_refused_alone(
    service: AmendService, store: InMemoryItemStore
) -> None:
    first, bad_total = _items()
    bad_total.find(f"{{{BATCH_NS}}}TotalValue").text = "999.00"
    result = await service.amend(
        "DE-POST",
        amendment(
            replace(first, 3),  # current version is 1: must be 2
            replace(bad_total, 2),  # breaks a business rule
            cancel("RR000000055DE", 1),  # unknown item
            cancel("RR123456785DE", 1),  # fine
        ),
    )
    codes = [(e.applied, [err.code for err in e.errors]) for e in result.entries]
    assert codes == [
        (False, ["illegal_transition"]),
        (False, ["value_total_mismatch"]),
        (False, ["not_found"]),
        (True, []),
    ]
    assert "version 1" in result.entries[0].errors[0].message
    assert store.items[("DE-POST", "RR123456785DE")].state is ItemState.CANCELLED
    assert store.items[("DE-POST", "LX473124829CN")].version == 1
    assert result.as_dict()["entries"][1]["status"] == "rejected"  # type: ignore[index]


async def test_two_replacements_of_one_item_keep_the_first(service: AmendService) -> None:
    _, second = _items()
    result = await service.amend("DE-POST", amendment(replace(second, 2), replace(second, 3)))
    assert result.entries[0].applied
    assert [e.code for e in result.entries[1].errors] == ["duplicate_item_id"]


async def test_cancelled_item_cannot_be_amended(service: AmendService) -> None:
    first, _ = _items()
    await service.amend("DE-POST", amendment(cancel("RR123456785DE", 1)))
    result = await service.amend("DE-POST", amendment(replace(first, 2)))
    assert result.entries[0].errors[0].code == "illegal_transition"


async def test_other_operators_items_are_not_found(service: AmendService) -> None:
    result = await service.amend(
        "FR-POST", amendment(cancel("RR123456785DE", 1), operator="FR-POST")
    )
    assert result.entries[0].errors[0].code == "not_found"


async def test_amendment_naming_another_operator_is_forbidden(service: AmendService) -> None:
    with pytest.raises(Forbidden):
        await service.amend("FR-POST", amendment(cancel("RR123456785DE", 1)))


async def test_schema_invalid_amendment_is_refused_whole(
    service: AmendService, store: InMemoryItemStore
) -> None:
    broken = cancel("RR123456785DE", 1)
    broken.remove(broken[2])  # no Reason
    with pytest.raises(EnvelopeInvalid, match="Reason"):
        await service.amend("DE-POST", amendment(broken))
    assert store.items[("DE-POST", "RR123456785DE")].state is ItemState.ACCEPTED
