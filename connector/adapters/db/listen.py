"""Wake the background stages of every replica when work arrives (PostgreSQL LISTEN/NOTIFY).

A transaction that creates work (an intake with new items, a Customs response that applied
decisions, a referral answer) also runs ``pg_notify('ead_work', KIND)``; PostgreSQL delivers it
to every listening connection when, and only if, that transaction commits. Each replica keeps
one :class:`WorkListener` connection and wakes the matching stage at once, so a replica that
did not take the request still forwards within milliseconds instead of at its next idle poll.
The idle poll stays as the fallback: a lost connection (reconnected with backoff) or a
dropped notification only delays work, never loses it. SQLite needs none of this: it is one
process, whose stages are woken directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Final

import structlog

__all__ = ["CHANNEL", "KINDS", "WorkListener", "notify_sql"]

CHANNEL: Final = "ead_work"
#: What a notification's payload names: the outbox (forward), notices (notify), answers.
KINDS: Final = frozenset({"outbox", "notices", "answers"})

_log = structlog.get_logger("connector.listen")


def notify_sql(kind: str) -> str:
    """The SQL that notifies ``kind`` at commit (``kind`` is one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown work kind {kind!r}")
    return f"SELECT pg_notify('{CHANNEL}', '{kind}')"


def _asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` as asyncpg takes it."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgresql") else url


class WorkListener:
    """One LISTEN connection; ``wake[kind]()`` is called for each notification of ``kind``."""

    def __init__(
        self,
        url: str,
        wake: Mapping[str, Callable[[], None]],
        *,
        retry_s: float = 1.0,
        max_retry_s: float = 30.0,
    ) -> None:
        self._dsn = _asyncpg_dsn(url)
        self._wake = dict(wake)
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.received = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="listen")

    async def wait_connected(self, timeout_s: float) -> None:
        """For tests and startup: until the LISTEN is in place."""
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received += 1
        wake = self._wake.get(payload)
        if wake is not None:
            wake()

    async def _run(self) -> None:
        import asyncpg

        delay = self._retry_s
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
                await connection.add_listener(CHANNEL, self._on_notification)
                self._connected.set()
                delay = self._retry_s
                _log.info("listen.connected", channel=CHANNEL)
                # A notification may have been missed while not listening: wake everyone.
                for wake in self._wake.values():
                    wake()
                while not connection.is_closed():
                    await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _log.warning("listen.lost", error_type=type(error).__name__, retry_s=delay)
            finally:
                self._connected.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_s)
