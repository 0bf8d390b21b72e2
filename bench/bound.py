"""The lower bound of the connector's work per item, in one process, with no HTTP and no loops.

For each 1,000-item batch, on one thread, with the functions the service runs: parse and
validate (schema and business rules, :func:`~connector.core.inbound.validate_item_batch`),
the intake checks as the service configures them by default, the stored form of each item
(:func:`~connector.flow.accept.incoming_items`), the store's bulk insert of the items with
their events and outbox rows (:meth:`~connector.adapters.db.store.SqlItemStore.record_intake`
on a fresh SQLite database with the service's profile), then the declaration batches built and
signed (:class:`~connector.forwarder.BatchBuilder`, ``forwarding.batch_size`` items each).

What it leaves out is what the end-to-end run adds: HTTP both ways, TLS, the claims and the
records of forwarding, Customs' verification, the customs responses, the signed notices and
the feed. ``e2e / bound`` is the share of the bound the whole service achieves.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import CONNECTOR_ID, DESTINATION, OPERATOR, Batch
from connector.adapters.db import engine
from connector.adapters.db.store import SqlItemStore
from connector.adapters.keystore import KeyRing
from connector.checks_loader import CheckConfigSource
from connector.core import signing
from connector.core.inbound import validate_item_batch
from connector.core.model import Intake
from connector.core.references import digest, item_reference
from connector.core.xmlsafe import parse_xml
from connector.flow.accept import checks_of, incoming_items
from connector.forwarder import BatchBuilder
from connector.ports import ForwardClaim, OperatorRecord
from connector.sample import generate_batch
from connector.settings import ForwardingSettings
from connector.testing import SystemClock


def _warm_up(ring: KeyRing, checks: CheckConfigSource) -> None:
    """Compile the schemas and load what the first batch would (the service is warm too)."""
    data = generate_batch(20, seed=1, operator_id=OPERATOR).xml
    report, findings = checks_of(validate_item_batch(data), checks.current)
    signing.sign(parse_xml(data), ring.active)
    incoming_items(report, findings)


async def _bound(batches: Sequence[Batch], ring: KeyRing, directory: Path) -> tuple[int, float]:
    url = f"sqlite+aiosqlite:///{directory}/bound.db"
    await engine.upgrade(url)
    store = await SqlItemStore.open(url)
    try:
        await store.upsert_operators((OperatorRecord(OPERATOR, OPERATOR, token_sha256="0" * 64),))
        clock = SystemClock()
        checks = CheckConfigSource()
        build = BatchBuilder(CONNECTOR_ID, ring, clock, refresh_s=-1)
        size = ForwardingSettings().batch_size
        _warm_up(ring, checks)
        items = 0
        started = time.perf_counter()
        for batch in batches:
            report, findings = checks_of(validate_item_batch(batch.xml), checks.current)
            incoming = incoming_items(report, findings)
            await store.record_intake(
                Intake(
                    operator_id=OPERATOR,
                    batch_id=report.header.batch_id,
                    received_at=clock.now(),
                    payload_digest=digest(batch.xml),
                    item_count=report.item_count,
                    items=incoming,
                    rejected=report.errors,
                    source="push",
                )
            )
            claims = [
                ForwardClaim(
                    0,
                    item_reference(OPERATOR, item.item_id),
                    OPERATOR,
                    item.item_id,
                    1,
                    item.destination_country,
                    item.item_xml,
                    0,
                    item.findings,
                )
                for item in incoming
            ]
            for start in range(0, len(claims), size):
                build(claims[start : start + size], DESTINATION)
            items += len(incoming)
        return items, time.perf_counter() - started
    finally:
        await store.close()


def run(batches: Sequence[Batch], ring: KeyRing, repeat: int = 1) -> tuple[int, float]:
    """(accepted items, seconds) of the bound over ``batches``: the fastest of ``repeat`` runs,
    each on a fresh database (the one least disturbed by other work on the machine)."""
    best: tuple[int, float] | None = None
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="ead-bench-bound-") as directory:
            result = asyncio.run(_bound(batches, ring, Path(directory)))
        if best is None or result[1] < best[1]:
            best = result
    assert best is not None, "repeat must be at least 1"
    return best
