"""``ead-connector operators|audit|items search`` (and the audited ``dead replay`` and
``schedules pause``) on a SQLite database, in-process."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest

from connector import cli
from connector.adapters.db.store import SqlItemStore
from connector.core.retry import RetryDecision
from connector.ports import OperatorRecord
from tests.integration.conftest import T0, make_intake

TOKEN = "token-of-op1-0123456789abcdef0123"
CONFIGURED = OperatorRecord(
    "OP1", "Post One", token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest()
)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _config(tmp_path: Path, url: str) -> str:
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    path = tmp_path / "connector.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n\n'
        f'[[operators]]\nid = "OP1"\nname = "Post One"\ntoken = "{TOKEN}"\n'
        f'webhook_url = "https://op1.example/notices"\n'
        f'[operators.pull]\ndirectory = "{drop}"\n'
        "[operators.schedule]\ninterval_seconds = 300\n",
        encoding="utf-8",
    )
    return str(path)


async def _run(*argv: str) -> int:
    """Run the CLI (which starts its own event loop) outside the test's loop."""
    return await asyncio.to_thread(cli.main, list(argv))


async def _store(url: str) -> SqlItemStore:
    store = await SqlItemStore.open(url)
    await store.upsert_operators((CONFIGURED,))  # what the service does at startup
    return store


def _token(out: str) -> str:
    match = re.search(r"^  token  (\S+)$", out, re.MULTILINE)
    assert match is not None, out
    return match.group(1)


async def test_operators_add_rotate_disable_enable_and_audit(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sqlite_url)
    await (await _store(sqlite_url)).close()

    assert await _run("operators", "add", "OP2", "--name", "Post Two", "--config", config) == 0
    first = _token(capsys.readouterr().out)
    assert await _run("operators", "rotate-token", "OP2", "--config", config) == 0
    second = _token(capsys.readouterr().out)
    assert second != first
    assert await _run("operators", "disable", "OP1", "--config", config) == 0
    assert "OP1 disabled" in capsys.readouterr().out

    store = await _store(sqlite_url)  # a restart: the configuration is synced again
    try:
        assert await store.operator_by_token(_sha256(first)) is None
        added = await store.operator_by_token(_sha256(second))
        assert added is not None
        assert added.operator_id == "OP2"
        assert await store.operator_by_token(_sha256(TOKEN)) is None  # still disabled
    finally:
        await store.close()

    assert await _run("operators", "list", "--config", config) == 0
    listed = capsys.readouterr().out
    op1, op2 = (line for line in listed.splitlines()[1:])
    assert op1.split()[:4] == ["OP1", "admin-off", "config", "pull,webhook"]
    assert op2.split()[:4] == ["OP2", "yes", "admin", "-"]
    assert f"token:{_sha256(second)[:8]}" in op2
    for secret in (TOKEN, first, second, _sha256(TOKEN), _sha256(second)):
        assert secret not in listed

    assert await _run("operators", "enable", "OP1", "--config", config) == 0
    capsys.readouterr()
    store = await _store(sqlite_url)
    try:
        assert await store.operator_by_token(_sha256(TOKEN)) is not None
    finally:
        await store.close()

    assert await _run("audit", "list", "--config", config) == 0
    audit = capsys.readouterr().out
    rows = [line.split() for line in audit.splitlines()]
    assert [(row[2], row[3], row[4]) for row in rows] == [
        ("cli", "operator.add", "OP2"),
        ("cli", "operator.rotate_token", "OP2"),
        ("cli", "operator.disable", "OP1"),
        ("cli", "operator.enable", "OP1"),
    ]
    for secret in (first, second, _sha256(first), _sha256(second)):
        assert secret not in audit
    assert await _run("audit", "list", "--after", rows[-1][0], "--config", config) == 0
    assert "no audit entries" in capsys.readouterr().out


async def test_refused_operator_commands_exit_2_with_the_code(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sqlite_url)
    await (await _store(sqlite_url)).close()

    assert await _run("operators", "add", "OP1", "--config", config) == 2
    assert "illegal_transition" in capsys.readouterr().err
    assert await _run("operators", "rotate-token", "NOPE", "--config", config) == 2
    assert "not_found" in capsys.readouterr().err
    assert await _run("operators", "add", "OP3", "--no-token", "--config", config) == 2
    assert "invalid_message" in capsys.readouterr().err
    assert await _run("audit", "list", "--config", config) == 0
    assert "no audit entries after 0" in capsys.readouterr().out


async def test_dead_replay_and_schedule_pause_are_audited_as_cli(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sqlite_url)
    store = await _store(sqlite_url)
    try:
        await store.record_intake(make_intake(1))
        claims = await store.claim_for_forwarding("w", 10, 60, T0 + timedelta(seconds=1))
        dead = RetryDecision(retry_at=None, dead=True, reason="out of attempts")
        await store.record_forward_failure(claims, "w", "503", dead, T0)
    finally:
        await store.close()

    assert await _run("dead", "replay", claims[0].reference, "--config", config) == 0
    assert await _run("schedules", "pause", "OP1", "--config", config) == 0
    capsys.readouterr()

    store = await SqlItemStore.open(sqlite_url)
    try:
        entries = await store.audit_after(0, 10)
        assert [(e.actor, e.action, e.target) for e in entries] == [
            ("cli", "dead.replay", claims[0].reference),
            ("cli", "schedule.pause", "pull:OP1"),
        ]
        assert all(entry.request_id is None for entry in entries)
    finally:
        await store.close()


async def test_items_search_filters_and_pages(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sqlite_url)
    store = await _store(sqlite_url)
    try:
        await store.record_intake(make_intake(3))
        await store.record_intake(
            make_intake(1, operator_id="OP9", batch_id="B9", received_at=T0 + timedelta(hours=1))
        )
    finally:
        await store.close()

    assert (
        await _run("items", "search", "--operator", "OP1", "--limit", "2", "--config", config) == 0
    )
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 4  # header, two items, the cursor
    assert all(" OP1 " in line for line in lines[1:3])
    cursor = lines[3].removeprefix("more: --after ")
    assert (
        await _run("items", "search", "--operator", "OP1", "--after", cursor, "--config", config)
        == 0
    )
    rest = capsys.readouterr().out.splitlines()
    assert len(rest) == 2
    assert rest[1].split()[2] not in out

    assert await _run("items", "search", "--from", "2026-11-26T08:30:00", "--config", config) == 0
    found = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in found[1:]] == ["OP9"]
    assert await _run("items", "search", "--state", "DECIDED", "--config", config) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert await _run("items", "search", "--state", "SLEEPING", "--config", config) == 2
    assert "SLEEPING" in capsys.readouterr().err
