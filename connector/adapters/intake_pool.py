"""Item batches checked in worker processes, beside the service's event loop.

Validating and checking a batch is CPU work that holds the interpreter lock for most of its
time: in a thread it competes with the event loop (storing, acknowledging, forwarding) for
one core. With ``[intake] workers = N`` batches are checked in N processes instead. Each
loads the schemas and the check configuration once (the denied-party list is reloaded there
as it is in the service); a batch's bytes go out and a plain
:class:`~connector.flow.accept.CheckedBatch` comes back.

A worker that stops (killed, out of memory) fails the batches it held with
:class:`~connector.errors.IntakeUnavailable` (503: nothing was stored, the sender sends
again), and the next batch starts a fresh pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor

import structlog

from connector.checks_loader import configured_checks
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import ParseLimits
from connector.errors import IntakeUnavailable
from connector.flow.accept import CheckedBatch, Checks, check_batch
from connector.heap import settle_heap
from connector.settings import ChecksSettings

__all__ = ["IntakePool"]

_log = structlog.get_logger("connector.intake")
_WATCH_SECONDS = 1.0

# One worker process's configuration, set once by _start_worker.
_limits: ParseLimits | None = None
_checks: Checks = None


def _start_worker(limits: ParseLimits, checks: ChecksSettings) -> None:
    """Load what every batch needs, once per worker process."""
    global _limits, _checks
    # SIGINT reaches the whole process group: the service stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_watch_service, args=(os.getppid(),), name="watch-service", daemon=True
    ).start()
    _limits = limits
    _checks = configured_checks(checks)
    default_registry().lxml(MessageKind.ITEM_BATCH)
    settle_heap()


def _watch_service(service: int) -> None:
    """End this worker once the service is gone: killed (SIGKILL, out of memory), it cannot
    stop its workers, and they would wait for batches forever."""
    while os.getppid() == service:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


def _check(data: bytes) -> CheckedBatch:
    assert _limits is not None, "the worker was started by _start_worker"
    return check_batch(data, _limits, _checks)


def _pid() -> int:
    return os.getpid()


class IntakePool:
    """Checks item batches in ``workers`` processes (an
    :data:`~connector.flow.accept.BatchChecker`)."""

    def __init__(self, workers: int, limits: ParseLimits, checks: ChecksSettings) -> None:
        if workers < 1:
            raise ValueError("an intake pool needs at least one worker")
        self.workers = workers
        self._limits = limits
        self._checks = checks
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                # Spawned, not forked: the service's threads and event loop stay behind.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._limits, self._checks),
            )
        return self._executor

    async def start(self) -> None:
        """Start every worker and wait until each has loaded (the first batches are not
        held up by it)."""
        loop = asyncio.get_running_loop()
        pool = self._pool()
        await asyncio.gather(*(loop.run_in_executor(pool, _pid) for _ in range(self.workers)))

    async def __call__(self, data: bytes) -> CheckedBatch:
        pool = self._pool()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _check, data)
        except BrokenExecutor as exc:
            if self._executor is pool:
                self._executor = None
                pool.shutdown(wait=False, cancel_futures=True)
                _log.error("intake.worker_stopped", workers=self.workers)
            raise IntakeUnavailable() from exc

    async def close(self) -> None:
        """Stop the workers (after the batches they hold)."""
        pool, self._executor = self._executor, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
