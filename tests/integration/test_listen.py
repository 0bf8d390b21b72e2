"""PostgreSQL LISTEN/NOTIFY: a replica's stages wake when another replica creates work."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import text

from connector.adapters.db.listen import KINDS, WorkListener, notify_sql
from connector.adapters.db.store import SqlItemStore
from tests.integration.conftest import PgDatabase, make_intake


def test_notify_sql_names_only_known_kinds() -> None:
    assert notify_sql("outbox") == "SELECT pg_notify('ead_work', 'outbox')"
    assert {"outbox", "notices", "answers"} == KINDS
    with pytest.raises(ValueError, match="unknown work kind"):
        notify_sql("x'); DROP TABLE items; --")


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):  # a hang guard, not a speed assertion
        while not condition():
            await asyncio.sleep(0.02)


async def test_intake_on_one_replica_wakes_the_forwarder_of_another(
    pg_store: SqlItemStore, pg_database: PgDatabase
) -> None:
    woken: Counter[str] = Counter()
    listener = WorkListener(
        pg_database.url,
        {"outbox": lambda: woken.update(["outbox"]), "notices": lambda: woken.update(["n"])},
    )
    listener.start()
    try:
        await listener.wait_connected(10)
        await _until(lambda: woken["outbox"] >= 1)  # woken once on connecting
        before = woken["outbox"]
        await pg_store.record_intake(make_intake(3, batch_id="B-LISTEN"))
        await _until(lambda: woken["outbox"] > before)
        # An identical resend stores nothing new and notifies nothing.
        settled = woken["outbox"]
        await pg_store.record_intake(make_intake(3, batch_id="B-LISTEN"))
        await asyncio.sleep(0.3)
        assert woken["outbox"] == settled
    finally:
        await listener.stop()


async def test_the_listener_reconnects_after_losing_its_connection(
    pg_database: PgDatabase,
) -> None:
    woken: Counter[str] = Counter()
    listener = WorkListener(
        pg_database.url, {"outbox": lambda: woken.update(["outbox"])}, retry_s=0.05
    )
    listener.start()
    try:
        await listener.wait_connected(10)
        engine = pg_database.engine()
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                    )
                )
            await _until(lambda: woken["outbox"] >= 2)  # reconnected: woken again
            async with engine.begin() as connection:
                await connection.execute(text(notify_sql("outbox")))
            await _until(lambda: woken["outbox"] >= 3)
        finally:
            await engine.dispose()
    finally:
        await listener.stop()
