"""The SQLite connection profile's checkpoint interval and page cache."""

from __future__ import annotations

from sqlalchemy import text

from connector.adapters.db import engine as db_engine


async def test_sqlite_connections_checkpoint_less_often_and_cache_more(sqlite_url: str) -> None:
    """Each connection checkpoints every 10,000 WAL pages and caches 16 MiB of pages."""
    engine = db_engine.create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("wal_autocheckpoint", "cache_size", "synchronous")
            }
    finally:
        await engine.dispose()

    assert pragmas == {"wal_autocheckpoint": 10000, "cache_size": -16384, "synchronous": 1}
