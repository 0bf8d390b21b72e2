"""A second ``run`` on the same SQLite database stops at startup with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.adapters.db.lock import hold_sqlite, sqlite_path
from connector.errors import ConfigurationError
from tests.e2e.test_service import cli, free_port, write_config


def test_sqlite_path_of_urls(tmp_path: Path) -> None:
    assert sqlite_path(f"sqlite+aiosqlite:///{tmp_path}/c.db") == tmp_path / "c.db"
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_path("postgresql+asyncpg://u@h/db") is None


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/c.db"
    refused = pytest.raises(ConfigurationError, match="SQLite is for one process")
    with hold_sqlite(url), refused, hold_sqlite(url):
        pass
    with hold_sqlite(url) as lock:  # released by the first holder
        assert lock == tmp_path / "c.db.lock"
    with hold_sqlite("postgresql+asyncpg://u@h/db") as nothing:
        assert nothing is None


def test_a_second_run_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", free_port())
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    with hold_sqlite(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"):  # "the first replica"
        second = cli("run", "--config", str(config), "--role", "worker")
    assert second.returncode == 2
    assert "SQLite is for one process" in second.stderr
    # Reading and administering commands do not need the lock.
    assert cli("dead", "list", "--config", str(config)).returncode == 0
