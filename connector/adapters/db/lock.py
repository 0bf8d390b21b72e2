"""One service process per SQLite database.

SQLite is the embedded default for one process: its stages are woken in-process and its
claims rely on the single writer. :func:`hold_sqlite` takes an exclusive advisory lock on
``<database>.lock`` for as long as the service runs, so a second ``ead-connector run`` (of
any role) on the same file stops at startup with a clear message instead of sharing it.
Commands that only read or administer (``items show``, ``dead list``, ``db upgrade``) do not
take it. The lock goes with the process, also when it is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from connector.errors import ConfigurationError

__all__ = ["hold_sqlite", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases or in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@contextlib.contextmanager
def hold_sqlite(url: str) -> Iterator[Path | None]:
    """Hold the service lock of a SQLite database for the ``with`` block (no-op otherwise).

    Raises:
        ConfigurationError: another process runs the service on this database.
    """
    path = sqlite_path(url)
    if path is None:
        yield None
        return
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                f"another process already runs the service on the SQLite database {path}; "
                "SQLite is for one process: run several replicas on PostgreSQL "
                "(CONNECTOR_DATABASE_URL=postgresql+asyncpg://...)",
                key="database.url",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        os.close(fd)  # releases the lock
