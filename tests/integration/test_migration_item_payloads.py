"""Migration 0007 moves each item's XML to ``item_payloads`` and back, losing nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from connector.adapters.db import engine as db_engine
from connector.adapters.db.store import SqlItemStore
from tests.integration.conftest import PgDatabase

XML = {"EAD1": b'<Item xmlns="urn:x">one</Item>', "EAD2": b"<Item>\xc3\xa9 two</Item>"}


async def _items_at_0006(url: str, schema: str | None) -> None:
    """A database at 0006 holding two items (XML inline) and an event of each."""
    await db_engine.upgrade(url, revision="0006", schema=schema)
    engine = db_engine.create_engine(url, schema=schema)
    at = datetime(2026, 11, 26, 10, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            for number, (reference, xml) in enumerate(XML.items(), start=1):
                await connection.execute(
                    sa.text(
                        "INSERT INTO items (reference, operator_id, item_id, version, state, "
                        "destination_country, batch_id, digest, item_xml, received_at, "
                        "updated_at) VALUES (:reference, 'OP1', :item_id, 1, 'ACCEPTED', 'DE', "
                        "'B1', 'd', :xml, :at, :at)"
                    ),
                    {
                        "reference": reference,
                        "item_id": f"RR00000000{number}DE",
                        "xml": xml,
                        "at": at,
                    },
                )
                await connection.execute(
                    sa.text(
                        "INSERT INTO item_events (reference, at, actor, to_state, detail) "
                        "VALUES (:reference, :at, 'connector', 'ACCEPTED', 'validated')"
                    ),
                    {"reference": reference, "at": at},
                )
    finally:
        await engine.dispose()


async def _inline_xml(url: str, schema: str | None) -> dict[str, bytes]:
    engine = db_engine.create_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT reference, item_xml FROM items"))
            return {reference: bytes(xml) for reference, xml in rows}
    finally:
        await engine.dispose()


async def _check_round_trip(url: str, schema: str | None) -> None:
    await _items_at_0006(url, schema)

    await db_engine.upgrade(url, schema=schema)
    engine = db_engine.create_engine(url, schema=schema)
    store = SqlItemStore(engine)
    try:
        for number, (reference, xml) in enumerate(XML.items(), start=1):
            item = await store.get_item("OP1", f"RR00000000{number}DE")
            assert item is not None
            assert (item.reference, item.item_xml) == (reference, xml)
            assert [event.to_state.value for event in await store.item_events(reference)] == [
                "ACCEPTED"
            ]
    finally:
        await store.close()

    await db_engine.downgrade(url, revision="0006", schema=schema)
    assert await _inline_xml(url, schema) == XML


async def test_sqlite_items_keep_their_xml_through_0007(tmp_path: Path) -> None:
    """Upgraded, each item reads back with its XML; downgraded, the XML is inline again."""
    await _check_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'items.db'}", None)


async def test_postgres_items_keep_their_xml_through_0007(pg_empty_schema: PgDatabase) -> None:
    """The same on PostgreSQL."""
    await _check_round_trip(pg_empty_schema.url, pg_empty_schema.schema)
