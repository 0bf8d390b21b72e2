"""The SQLite connection profile (checkpoint interval, page cache) and the store's WAL
checkpoints in a thread of their own."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text
from structlog.testing import capture_logs

from connector.adapters.db import engine as db_engine
from connector.adapters.db.checkpoint import BACKSTOP_PAGES, WalCheckpointer
from connector.adapters.db.lock import sqlite_path
from connector.adapters.db.store import SqlItemStore
from tests.integration.conftest import incoming, make_intake


async def _pragmas(
    url: str, *names: str, background_checkpoints: bool = False
) -> dict[str, object]:
    engine = db_engine.create_engine(url, background_checkpoints=background_checkpoints)
    try:
        async with engine.connect() as connection:
            return {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar() for name in names
            }
    finally:
        await engine.dispose()


async def test_sqlite_connections_checkpoint_less_often_and_cache_more(sqlite_url: str) -> None:
    """Each connection checkpoints every 10,000 WAL pages and caches 16 MiB of pages."""
    pragmas = await _pragmas(sqlite_url, "wal_autocheckpoint", "cache_size", "synchronous")

    assert pragmas == {"wal_autocheckpoint": 10000, "cache_size": -16384, "synchronous": 1}


async def test_with_background_checkpoints_commits_only_checkpoint_past_the_backstop(
    sqlite_url: str,
) -> None:
    pragmas = await _pragmas(sqlite_url, "wal_autocheckpoint", background_checkpoints=True)

    assert pragmas == {"wal_autocheckpoint": BACKSTOP_PAGES}


def _wal_frames(path: Path) -> int:
    """The frames written to the WAL since it was last restarted."""
    with sqlite3.connect(path) as probe:
        row = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1])


async def test_the_store_checkpoints_the_wal_in_its_own_thread(sqlite_url: str) -> None:
    """Committed pages reach the database file without any commit checkpointing them."""
    path = sqlite_path(sqlite_url)
    assert path is not None
    store = await SqlItemStore.open(sqlite_url)
    try:
        before = path.stat().st_size
        items = tuple(incoming(i, content="x" * 2_000) for i in range(300))
        await store.record_intake(make_intake(items))
        # ~600 KiB of items: far below the backstop, so no commit copied them back.
        grown = path.stat().st_size
        deadline = time.monotonic() + 10
        while grown <= before + 500_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            grown = path.stat().st_size
    finally:
        await store.close()

    assert grown > before + 500_000
    assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]


async def test_store_close_stops_the_checkpoint_thread(sqlite_url: str) -> None:
    store = await SqlItemStore.open(sqlite_url)
    running = [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
    await store.close()

    assert running
    assert not any(t.is_alive() for t in running)


async def test_the_wal_stays_bounded_while_the_store_writes(sqlite_url: str) -> None:
    """Under steady writes the checkpoints keep up: the WAL is restarted, not grown."""
    path = sqlite_path(sqlite_url)
    assert path is not None
    store = await SqlItemStore.open(sqlite_url)
    try:
        for batch in range(8):
            items = tuple(incoming(i, batch * 1_000 + i, content="y" * 1_000) for i in range(200))
            await store.record_intake(make_intake(items, batch_id=f"B{batch}"))
            await asyncio.sleep(0.6)  # longer than the checkpoint interval
        frames = _wal_frames(path)
    finally:
        await store.close()

    # Eight batches wrote well over a thousand pages in all; the WAL holds about one.
    assert frames < 600


def test_a_checkpointer_that_cannot_open_the_database_warns_once(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(tmp_path / "missing" / "connector.db", interval_s=0.01)
    with capture_logs() as logs:
        checkpointer.start()
        time.sleep(0.2)
        checkpointer.stop()

    assert [entry["event"] for entry in logs] == ["db.checkpoint_failed"]
    assert not (tmp_path / "missing").exists()  # it never creates a database
