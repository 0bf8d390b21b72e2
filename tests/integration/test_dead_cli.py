"""``ead-connector dead list|replay`` on a SQLite database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from connector import cli
from connector.adapters.db.store import SqlItemStore
from connector.core.model import ItemState
from connector.core.retry import RetryDecision
from tests.integration.conftest import T0, make_intake


async def _two_dead(url: str) -> tuple[str, str]:
    store = await SqlItemStore.open(url)
    try:
        await store.record_intake(make_intake(3))
        claims = await store.claim_for_forwarding("w", 10, 60, T0 + timedelta(seconds=1))
        dead = RetryDecision(retry_at=None, dead=True, reason="out of attempts (8)")
        await store.record_forward_failure(claims[:2], "w", "EU: 503", dead, T0)
        return claims[0].reference, claims[1].item_id
    finally:
        await store.close()


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "connector.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return str(path)


async def test_dead_list_and_replay(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, item_id = await _two_dead(sqlite_url)
    config = _config(tmp_path, sqlite_url)

    assert await _in_thread(["dead", "list", "--config", config]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("2 dead letter(s)")
    assert reference in listed
    assert "out of attempts (8)" in listed

    assert await _in_thread(["dead", "replay", reference, "--config", config]) == 0
    assert "queued for forwarding again" in capsys.readouterr().out
    assert await _in_thread(["dead", "replay", item_id, "--config", config]) == 0
    capsys.readouterr()

    store = await SqlItemStore.open(sqlite_url)
    try:
        assert await store.dead_letters() == ()
        (item,) = await store.find_items(item_id)
        assert item.state is ItemState.FORWARDING
    finally:
        await store.close()

    assert await _in_thread(["dead", "replay", reference, "--config", config]) == 2
    assert "no dead letter" in capsys.readouterr().err


async def _in_thread(argv: list[str]) -> int:
    """Run the CLI (which starts its own event loop) outside the test's loop."""
    return await asyncio.to_thread(cli.main, argv)
