"""Outages: Customs down, the PostgreSQL connections cut, the SQLite database full or read-only.

- **Customs down under load**: the mock Customs drops every connection for a while
  (``OUTAGE_S``; ``make soak`` makes it two minutes) while operators keep pushing. Intake goes
  on, the backlog grows and ``ead_outbox_pending`` at ``GET /metrics`` shows it; once Customs
  is back the backlog drains by itself to 0, every acknowledged item reaches Customs and
  nothing became a dead letter.
- **PostgreSQL connections cut**: ``pg_terminate_backend`` ends every connection of the
  service's database several times under load (what a database restart or failover does to
  the pool). Pushes in the moment may answer 503 ``store_unavailable`` (the operator resends);
  the same process, without any manual action, accepts and forwards everything afterwards.
- **SQLite disk full or read-only**: root ignores file permissions and a full file system
  cannot be made on demand, so the failure is made inside SQLite itself. A pool ``checkout``
  hook on the service's own engine sets, on every connection it hands out,
  ``PRAGMA max_page_count`` to the file's current size (SQLite then answers every growing
  write with SQLITE_FULL, "database or disk is full", exactly as on a full disk) or
  ``PRAGMA query_only`` (SQLITE_READONLY, as for a read-only file). Intake must answer 503
  ``store_unavailable`` and store nothing of the batch; once the fault is lifted the same
  batch is accepted whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from connector.adapters.db import engine as db_engine
from connector.adapters.db.store import SqlItemStore
from connector.app import build_app, open_connector
from connector.sample import generate_batch
from connector.settings import validate_settings
from tests.e2e.test_service import (
    OPERATOR,
    PG_URL,
    TOKEN,
    accepted_ids,
    count_items,
    fresh_postgres_database,
)
from tests.reliability.world import (
    ADMIN_TOKEN,
    SOAK_KILLS,
    XML_JSON,
    World,
    outbox_pending,
    until,
)

pytestmark = pytest.mark.reliability

OUTAGE_S = float(os.environ.get("CONNECTOR_SOAK_OUTAGE_SECONDS") or (120 if SOAK_KILLS else 3))
CUTS = 10 if SOAK_KILLS else 3


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    world = await World.create(tmp_path)
    try:
        yield world
    finally:
        await world.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


async def _push_until_acknowledged(
    http: aiohttp.ClientSession, base: str, data: bytes, refused: list[int]
) -> set[str]:
    """Push one batch; on anything but 200 push it again, as an operator does."""
    for _ in range(600):
        try:
            async with http.post(f"{base}/v1/batches", data=data, headers=XML_JSON) as response:
                if response.status == 200:
                    return accepted_ids(await response.json())
                body = await response.json(content_type=None)
                assert response.status == 503, body
                assert body["code"] == "store_unavailable", body
                refused.append(response.status)
        except (aiohttp.ClientError, TimeoutError):
            refused.append(0)
        await asyncio.sleep(0.1)
    raise AssertionError("the batch was never acknowledged")


async def _metric(http: aiohttp.ClientSession, base: str, name: str) -> float:
    async with http.get(f"{base}/metrics") as probe:
        assert probe.status in (401, 403)  # an operator's token does not open it
    async with http.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_customs_outage_builds_a_backlog_that_drains_after_recovery(
    world: World, http: aiohttp.ClientSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = world.service(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    service.start()
    try:
        await service.wait_healthy(http)
        world.customs.mode = "down"
        acknowledged: set[str] = set()
        backlog: list[float] = []
        refused: list[int] = []
        started = time.monotonic()
        seed = 0
        while time.monotonic() - started < OUTAGE_S or len(backlog) < 3:
            seed += 1
            batch = generate_batch(25, seed=seed, operator_id=OPERATOR).xml
            acknowledged |= await _push_until_acknowledged(http, service.base, batch, refused)
            backlog.append(await outbox_pending(http, service.base))
            await asyncio.sleep(0.2)
        requests_while_down = world.customs.requests
        assert world.customs.declarations == {}  # nothing got through
        assert requests_while_down >= 1  # the service kept trying
        # Everything acknowledged waits, but for the jobs claimed by the sends in flight
        # (forwarding.concurrency 2 x batch_size 100); and the backlog grew.
        assert len(acknowledged) - 200 <= backlog[-1] <= len(acknowledged)
        assert backlog[-1] > backlog[0]

        world.customs.mode = "ok"

        async def drained() -> bool:
            return await outbox_pending(http, service.base) == 0

        await until(drained, "the backlog to drain")
        assert set(world.customs.declarations.values()) >= acknowledged
        assert await _metric(http, service.base, "ead_dead_letters") == 0
        assert service.alive()
        assert service.starts == 1
    finally:
        service.stop()
    with capsys.disabled():
        print(
            f"\nCustoms outage: {OUTAGE_S:.0f} s down, {len(acknowledged)} items acknowledged "
            f"meanwhile, backlog peaked at {max(backlog):.0f}, {requests_while_down} sends "
            f"refused, drained to 0, lost 0"
        )


@pytest.mark.skipif(PG_URL is None, reason="needs CONNECTOR_TEST_DATABASE_URL (PostgreSQL)")
async def test_postgresql_connections_cut_under_load_recover_without_restart(
    world: World, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fresh_postgres_database() as url:
        service = world.service(url)
        service.start()
        admin = create_async_engine(PG_URL or "", isolation_level="AUTOCOMMIT")
        database = url.rsplit("/", 1)[1]
        terminated = 0
        acknowledged: set[str] = set()
        refused: list[int] = []
        try:
            await service.wait_healthy(http)
            pid = service.process.pid if service.process else None

            async def load(first_seed: int, batches: int) -> None:
                for seed in range(first_seed, first_seed + batches):
                    data = generate_batch(20, seed=seed, operator_id=OPERATOR).xml
                    acknowledged.update(
                        await _push_until_acknowledged(http, service.base, data, refused)
                    )

            pushes = asyncio.create_task(load(1, 10 * CUTS))
            for _ in range(CUTS):
                await asyncio.sleep(0.5)
                async with admin.connect() as connection:
                    result = await connection.execute(
                        sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": database},
                    )
                    terminated += int(result.scalar_one())
            await asyncio.wait_for(pushes, timeout=120)
            assert terminated >= CUTS  # the cuts really hit the service's connections
            # After the last cut: the same process takes and forwards a new batch.
            await load(1000, 1)

            async def forwarded() -> bool:
                return set(world.customs.declarations.values()) >= acknowledged

            await until(forwarded, "everything acknowledged to reach Customs")
            async with http.get(f"{service.base}/readyz") as ready:
                assert ready.status == 200
            assert service.alive()
            assert service.process is not None
            assert service.process.pid == pid
            assert await count_items(url) >= len(acknowledged)
        finally:
            await admin.dispose()
            service.stop()
    with capsys.disabled():
        print(
            f"\nPostgreSQL cuts: {CUTS} cuts, {terminated} connections terminated, "
            f"{len(refused)} pushes refused (resent), {len(acknowledged)} items acknowledged, "
            f"all forwarded, no restart"
        )


# --- SQLite: disk full, read-only ------------------------------------------------------------

_FAULTS = {
    "disk_full": ("max_page_count = {pages}", "max_page_count = 1073741823"),
    "read_only": ("query_only = 1", "query_only = 0"),
}


@pytest.mark.parametrize("fault", sorted(_FAULTS))
async def test_sqlite_that_cannot_write_answers_503_and_stores_nothing(
    tmp_path: Path, aiohttp_client: Any, fault: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    await db_engine.upgrade(url)
    settings = validate_settings(
        {
            "database": {"url": url},
            "http": {"rate_limit_per_second": 0},
            "operators": [{"id": OPERATOR, "token": TOKEN}],
        }
    )
    engine = db_engine.create_engine(url)
    broken = {"on": False}
    set_fault, lift_fault = _FAULTS[fault]

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if broken["on"]:
                cursor.execute("PRAGMA page_count")
                pages = cursor.fetchone()[0]
                cursor.execute("PRAGMA " + set_fault.format(pages=pages))
            else:
                cursor.execute("PRAGMA " + lift_fault)
        finally:
            cursor.close()

    store = SqlItemStore(engine)
    connector = await open_connector(settings, store=store)
    try:
        app = await build_app(connector, schedule=False, forward=False)
        client: TestClient[Any, Any] = await aiohttp_client(TestServer(app))
        headers = XML_JSON | {"Authorization": f"Bearer {TOKEN}"}
        first = generate_batch(30, seed=1, operator_id=OPERATOR).xml
        second = generate_batch(30, seed=2, operator_id=OPERATOR).xml
        response = await client.post("/v1/batches", data=first, headers=headers)
        assert response.status == 200
        stored = await count_items(url)
        assert stored == 30

        broken["on"] = True
        for _ in range(3):
            response = await client.post("/v1/batches", data=second, headers=headers)
            assert response.status == 503
            body = json.loads(await response.text())
            assert body["code"] == "store_unavailable"
            assert "INSERT" not in body["detail"]
            assert "sqlite" not in body["detail"].lower()
        assert await count_items(url) == stored  # nothing of the batch

        broken["on"] = False
        response = await client.post("/v1/batches", data=second, headers=headers)
        assert response.status == 200
        assert len(accepted_ids(await response.json())) == 30
        assert await count_items(url) == 60
    finally:
        await connector.close()
        await store.close()
