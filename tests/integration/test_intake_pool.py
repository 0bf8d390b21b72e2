"""Batches checked in intake worker processes: the same verdicts as in-process, errors that
keep their codes, and a worker that dies costs one 503, not the service."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from connector.adapters.intake_pool import IntakePool
from connector.core.xmlsafe import DEFAULT_LIMITS, ParseLimits
from connector.errors import EnvelopeInvalid, IntakeUnavailable, XmlDoctypeForbidden
from connector.flow.accept import AcceptService, check_batch
from connector.sample import generate_batch
from connector.settings import ChecksSettings
from connector.testing import FrozenClock, InMemoryItemStore

DATA = Path(__file__).parents[1] / "data"
NS = "{urn:ead-connector:item-batch:1}"


@pytest.fixture(scope="module")
def pool() -> Iterator[IntakePool]:
    pool = IntakePool(1, DEFAULT_LIMITS, ChecksSettings())
    yield pool
    asyncio.run(pool.close())


def _in_process_checks() -> object:
    from connector.checks_loader import CheckConfigSource

    return CheckConfigSource().current


async def test_a_worker_gives_the_same_verdict_as_the_service_itself(pool: IntakePool) -> None:
    # Faults and check findings (warnings with details) both come back from the worker.
    batch = generate_batch(200, invalid_ratio=0.1, seed=21, operator_id="PL-POCZTA")
    here = check_batch(batch.xml, DEFAULT_LIMITS, _in_process_checks())  # type: ignore[arg-type]
    there = await pool(batch.xml)
    assert there == here
    assert there.errors
    assert there.findings
    assert any(f.detail for found in there.findings.values() for f in found)
    assert all(item.reference for item in there.incoming)


async def test_unusable_batches_raise_the_same_errors_from_a_worker(pool: IntakePool) -> None:
    with pytest.raises(EnvelopeInvalid):
        await pool(b"<ItemBatch xmlns='urn:ead-connector:item-batch:1'/>")
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
    with pytest.raises(XmlDoctypeForbidden) as raised:
        await pool(doctype)
    assert raised.value.code == "xml_doctype_forbidden"
    assert raised.value.message


async def test_the_workers_use_their_own_limits() -> None:
    limits = ParseLimits(max_bytes=DEFAULT_LIMITS.max_bytes, max_depth=3)
    small = IntakePool(1, limits, ChecksSettings())
    try:
        data = (DATA / "valid" / "two_items.xml").read_bytes()
        with pytest.raises(Exception, match="deep") as raised:
            await small(data)
        assert raised.value.code == "xml_too_deep"  # type: ignore[attr-defined]
    finally:
        await small.close()


async def test_checks_off_in_the_workers_give_no_findings() -> None:
    quiet = IntakePool(1, DEFAULT_LIMITS, ChecksSettings(enabled=False))
    try:
        batch = generate_batch(100, seed=21, operator_id="PL-POCZTA")
        checked = await quiet(batch.xml)
        assert checked.findings == {}
        assert len(checked.incoming) == 100
    finally:
        await quiet.close()


async def test_a_killed_worker_fails_its_batch_with_503_and_the_next_batch_goes_through() -> None:
    pool = IntakePool(1, DEFAULT_LIMITS, ChecksSettings(enabled=False))
    store = InMemoryItemStore()
    service = AcceptService(store=store, clock=FrozenClock(), checker=pool)
    batch = generate_batch(10_000, seed=3, operator_id="PL-POCZTA")
    try:
        others = set(multiprocessing.active_children())
        await pool.start()
        (worker,) = set(multiprocessing.active_children()) - others
        pending = asyncio.ensure_future(service.accept_batch("PL-POCZTA", batch.xml))
        await asyncio.sleep(0.1)  # the worker is checking the batch (about a second)
        os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
        with pytest.raises(IntakeUnavailable) as raised:
            await pending
        assert raised.value.http_status == 503
        assert store.items == {}  # nothing stored, nothing acknowledged
        ack = await service.accept_batch("PL-POCZTA", batch.xml)  # a fresh worker
        assert all(item.accepted for item in ack.items)
        assert len(store.items) == 10_000
    finally:
        await pool.close()
    assert set(multiprocessing.active_children()) <= others


async def test_conflicts_found_after_a_worker_checked_the_batch_name_their_item(
    pool: IntakePool,
) -> None:
    store = InMemoryItemStore()
    service = AcceptService(store=store, clock=FrozenClock(), checker=pool)
    tree = etree.parse(str(DATA / "valid" / "two_items.xml"))
    await service.accept_batch("DE-POST", etree.tostring(tree))
    changed = copy.deepcopy(tree)
    name = changed.getroot()[1][1].find(f"{NS}Sender/{NS}Name")
    name.text = "Someone Else"  # type: ignore[union-attr]
    ack = await service.accept_batch("DE-POST", etree.tostring(changed))
    first, second = ack.items
    assert first.accepted
    assert not second.accepted
    assert second.errors[0].code == "item_conflict"
    assert second.errors[0].path == "/ItemBatch/Items/Item[2]/ItemId"


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        IntakePool(0, DEFAULT_LIMITS, ChecksSettings())
