"""Alembic environment for the connector's schema.

Normally :func:`connector.adapters.db.engine.upgrade` hands in an open connection (inside a
transaction) through ``config.attributes["connection"]``; with only ``sqlalchemy.url`` set,
this script opens the async engine itself and migrates through ``run_sync``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from connector.adapters.db import engine as db_engine
from connector.adapters.db import tables
from connector.errors import ConfigurationError


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.METADATA,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_url(url: str) -> None:
    engine = db_engine.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


def _main() -> None:
    if context.is_offline_mode():
        raise ConfigurationError("offline (--sql) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _migrate(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigurationError(f"no database to migrate; use `{db_engine.UPGRADE_COMMAND}`")
    asyncio.run(_migrate_url(url))


_main()
