"""Alembic migrations: they build exactly the schema of tables.py, both ways, on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.adapters.db import engine as db_engine
from connector.adapters.db import tables
from connector.adapters.db.store import SqlItemStore
from connector.errors import ConfigurationError
from tests.integration.conftest import PgDatabase

APP_TABLES = {table.name for table in tables.METADATA.sorted_tables}


async def _drift(engine: AsyncEngine, metadata: sa.MetaData = tables.METADATA) -> list[Any]:
    """Differences between the live schema and ``metadata``, as Alembic autogenerate sees them."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


async def _round_trip(url: str, schema: str | None) -> None:
    """Upgrade, check there is no drift, downgrade to base, upgrade again."""
    engine = db_engine.create_engine(url, schema=schema)
    try:
        await db_engine.upgrade(url, schema=schema)
        assert await _table_names(engine) == APP_TABLES | {"alembic_version"}
        assert await _drift(engine) == []
        await db_engine.ensure_at_head(engine)
        await db_engine.upgrade(url, schema=schema)  # already at head: nothing to do

        await db_engine.downgrade(url, schema=schema)
        assert await _table_names(engine) == {"alembic_version"}
        assert await db_engine.current_revision(engine) is None

        await db_engine.upgrade(url, schema=schema)
        assert await _drift(engine) == []
    finally:
        await engine.dispose()


async def test_sqlite_migrations_match_the_tables_both_ways(tmp_path: Path) -> None:
    """On a fresh SQLite file, upgrade builds tables.py exactly and downgrade removes them."""
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", None)


async def test_postgres_migrations_match_the_tables_both_ways(
    pg_empty_schema: PgDatabase,
) -> None:
    """On a fresh PostgreSQL schema, upgrade builds tables.py exactly and downgrade removes them."""
    await _round_trip(pg_empty_schema.url, pg_empty_schema.schema)


async def test_drift_check_notices_a_difference(tmp_path: Path) -> None:
    """The no-drift assertion is meaningful: a column missing from the migrations is reported."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'drift.db'}"
    await db_engine.upgrade(url)
    changed = sa.MetaData()
    for table in tables.METADATA.sorted_tables:
        table.to_metadata(changed)
    changed.tables["items"].append_column(sa.Column("surprise", sa.Integer(), nullable=True))
    engine = db_engine.create_engine(url)
    try:
        drift = await _drift(engine, changed)
    finally:
        await engine.dispose()

    assert [(d[0], d[2], d[3].name) for d in drift] == [("add_column", "items", "surprise")]


async def test_store_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """Opening a store on a database without the schema names the command that fixes it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"

    with pytest.raises(ConfigurationError, match="ead-connector db upgrade") as raised:
        await SqlItemStore.open(url)

    assert raised.value.context["current_revision"] is None
    assert raised.value.context["required_revision"] == db_engine.head_revision()


async def test_store_refuses_a_database_at_another_revision(tmp_path: Path) -> None:
    """A schema from another version of the connector is refused, naming both revisions."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    await db_engine.upgrade(url)
    engine = db_engine.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
    finally:
        await engine.dispose()

    with pytest.raises(
        ConfigurationError, match=rf"at revision f00d.*needs {db_engine.head_revision()}"
    ):
        await SqlItemStore.open(url)


def test_alembic_runs_from_a_url_without_a_shared_connection(tmp_path: Path) -> None:
    """env.py migrates on its own async engine when given only sqlalchemy.url."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}"
    config = db_engine.alembic_config()
    config.set_main_option("sqlalchemy.url", url)

    with ThreadPoolExecutor(max_workers=1) as pool:  # env.py starts its own event loop
        pool.submit(command.upgrade, config, "head").result()

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        assert set(sa.inspect(engine).get_table_names()) == APP_TABLES | {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://user@host/db",
        "sqlite:///sync-driver.db",
        "postgresql://user@host/db",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite://",
        "not a url",
    ],
)
def test_unsupported_database_urls_are_configuration_errors(url: str) -> None:
    """Only file-backed sqlite+aiosqlite and postgresql+asyncpg URLs make an engine."""
    with pytest.raises(ConfigurationError):
        db_engine.create_engine(url)


def test_schema_option_is_postgres_only(tmp_path: Path) -> None:
    """Asking for a schema on SQLite is a configuration error, not silently ignored."""
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        db_engine.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", schema="s")
