"""WAL checkpoints of a SQLite database in a thread of their own.

In WAL mode a commit appends pages to the ``-wal`` file; a checkpoint copies them back into
the database file and syncs it. Left to SQLite, the writer whose commit crosses
``wal_autocheckpoint`` pages runs the checkpoint inside that commit: with a 1,000-item intake
writing ~1,700 pages, every sixth commit took ~100 ms longer, and the store's writers queued
behind it. A :class:`WalCheckpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own
connection instead, every :attr:`~WalCheckpointer.interval_s` seconds: a passive checkpoint
takes no write lock, so writers go on appending while it copies. The store's connections keep
a far larger ``wal_autocheckpoint`` as a backstop, should this thread fall behind or stop.

What a commit guarantees does not change: it is in the WAL before COMMIT returns, whenever
the checkpoint runs.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import structlog

__all__ = ["BACKSTOP_PAGES", "WalCheckpointer"]

#: The store connections' ``wal_autocheckpoint`` while a checkpointer runs (~400 MiB of WAL).
BACKSTOP_PAGES = 100_000

_log = structlog.get_logger("connector.db")


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite database at ``path`` from a daemon thread."""

    def __init__(self, path: Path, *, interval_s: float = 0.5) -> None:
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    if connection is None:
                        connection = _connect(self.path)
                    self.checkpoint(connection)
                except sqlite3.Error as error:
                    # The backstop keeps the WAL bounded; say so once, not every interval.
                    if not self._failing:
                        _log.warning("db.checkpoint_failed", error=str(error))
                    self._failing = True
        finally:
            if connection is not None:
                connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One passive checkpoint on ``connection``."""
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if self._failing:
            _log.info("db.checkpoint_recovered")
            self._failing = False


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to the existing database at ``path`` (never creates one)."""
    uri = f"{path.resolve().as_uri()}?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
