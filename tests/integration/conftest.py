"""Store fixtures: the in-memory fake, SQLite in tmp_path and (when configured) PostgreSQL.

SQLite: the schema is migrated once per session into a template file, copied per test.
PostgreSQL: set ``CONNECTOR_TEST_DATABASE_URL`` (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); each test session migrates its own
uniquely named schema (so parallel runs never collide), every test starts from emptied tables,
and the schema is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.adapters.db import engine as db_engine
from connector.adapters.db import tables
from connector.adapters.db.store import SqlItemStore
from connector.core.model import IncomingItem, Intake, ItemError
from connector.core.references import digest
from connector.testing import InMemoryItemStore

# Read at import time: a later environment scrub must not hide it from the fixtures.
PG_URL = os.environ.get("CONNECTOR_TEST_DATABASE_URL")
PG_SKIP = (
    "PostgreSQL tests need CONNECTOR_TEST_DATABASE_URL "
    "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
)
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

Store = InMemoryItemStore | SqlItemStore
T = TypeVar("T")


def run_in_thread(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own loop, away from pytest-asyncio's loop."""

    async def main() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass(frozen=True)
class PgDatabase:
    """A migrated PostgreSQL schema of this test session."""

    url: str
    schema: str

    def engine(self) -> AsyncEngine:
        return db_engine.create_engine(self.url, schema=self.schema)


async def _execute(url: str, *statements: str) -> None:
    engine = db_engine.create_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    """A fresh schema at head, private to this test session."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    url = PG_URL
    schema = f"test_{uuid.uuid4().hex[:16]}"
    run_in_thread(lambda: _execute(url, f'CREATE SCHEMA "{schema}"'))
    try:
        run_in_thread(lambda: db_engine.upgrade(url, schema=schema))
        yield PgDatabase(url, schema)
    finally:
        run_in_thread(lambda: _execute(url, f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def pg_empty_schema() -> Iterator[PgDatabase]:
    """A fresh, empty (never migrated) schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    url = PG_URL
    schema = f"test_{uuid.uuid4().hex[:16]}"
    run_in_thread(lambda: _execute(url, f'CREATE SCHEMA "{schema}"'))
    try:
        yield PgDatabase(url, schema)
    finally:
        run_in_thread(lambda: _execute(url, f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
async def pg_store(pg_database: PgDatabase) -> AsyncIterator[SqlItemStore]:
    """A SQL store on the session's PostgreSQL schema, all tables emptied."""
    engine = pg_database.engine()
    names = ", ".join(f'"{table.name}"' for table in tables.METADATA.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    store = SqlItemStore(engine)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_in_thread(lambda: db_engine.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """The URL of a fresh copy of the migrated SQLite template."""
    target = tmp_path / "connector.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[SqlItemStore]:
    """A SQL store on a fresh SQLite file."""
    store = await SqlItemStore.open(sqlite_url)
    yield store
    await store.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each ItemStore implementation in turn: the contract suite runs once per backend."""
    if request.param == "memory":
        return InMemoryItemStore()
    if request.param == "postgresql" and not PG_URL:
        pytest.skip(PG_SKIP)
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    backend: SqlItemStore = request.getfixturevalue(name)
    return backend


async def outbox_depth(store: Store) -> int:
    """Pending forwarding work, asked the way each implementation can answer."""
    if isinstance(store, InMemoryItemStore):
        return len(store.outbox)
    return await store.outbox_depth()


def item_id(number: int) -> str:
    """A well-formed S10-looking item id for ``number``."""
    return f"RR{number:09d}DE"


def incoming(index: int, number: int | None = None, *, content: str = "") -> IncomingItem:
    """An accepted item; ``content`` changes its bytes (and so its digest)."""
    ident = item_id(index if number is None else number)
    xml = f"<Item><ItemId>{ident}</ItemId><Note>{content}</Note></Item>".encode()
    return IncomingItem(
        item_index=index,
        item_id=ident,
        destination_country="DE",
        digest=digest(xml),
        item_xml=xml,
    )


def make_intake(
    items: tuple[IncomingItem, ...] | int,
    *,
    operator_id: str = "OP1",
    batch_id: str = "B1",
    received_at: datetime = T0,
    cursor: str | None = None,
    source: str = "push",
    rejected: tuple[ItemError, ...] = (),
) -> Intake:
    """An intake of ``items`` (or of that many generated items)."""
    if isinstance(items, int):
        items = tuple(incoming(index) for index in range(items))
    return Intake(
        operator_id=operator_id,
        batch_id=batch_id,
        received_at=received_at,
        payload_digest=digest(batch_id.encode()),
        item_count=len(items) + len(rejected),
        items=items,
        rejected=rejected,
        source=source,
        cursor=cursor,
    )
