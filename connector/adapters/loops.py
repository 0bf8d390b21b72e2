"""Run a flow stage's ``run_once`` over and over in the service, until told to stop.

A :class:`StageLoop` calls its stage again at once while the stage finds work, sleeps
``idle_s`` when it found none, and wakes early when :meth:`StageLoop.wake` is called (new
intake for the forwarder). An exception never ends the loop: it is logged and the next run
waits ``error_backoff_s``; the stages themselves record their failures durably, so a lost
run only delays work. :meth:`StageLoop.stop` lets the run in flight finish within a timeout
(graceful shutdown: a send is not cut in half when avoidable), then cancels it; work a
cancelled run had claimed is taken over when its lease ends. With ``workers`` > 1 that many
runs go on at once (e.g. one batch signed while another waits for Customs); the stages claim
disjoint work with leases, so concurrent runs never take the same item.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import structlog

__all__ = ["StageLoop"]

_Outcome = TypeVar("_Outcome")
_log = structlog.get_logger("connector.loops")


class StageLoop(Generic[_Outcome]):
    """Repeats ``run_once``; ``busy(outcome)`` says whether to go again without a pause."""

    def __init__(
        self,
        name: str,
        run_once: Callable[[], Awaitable[_Outcome]],
        busy: Callable[[_Outcome], bool],
        *,
        idle_s: float = 1.0,
        error_backoff_s: float = 5.0,
        on_outcome: Callable[[_Outcome], None] | None = None,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a loop needs at least one worker, not {workers}")
        self.name = name
        self.workers = workers
        self._run_once = run_once
        self._busy = busy
        self._idle_s = idle_s
        self._error_backoff_s = error_backoff_s
        self._listeners: list[Callable[[_Outcome], None]] = [on_outcome] if on_outcome else []
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[Any] | None = None
        self.runs = 0
        self.errors = 0

    def add_listener(self, listener: Callable[[_Outcome], None]) -> None:
        """Also call ``listener`` with every run's outcome (metrics, tests)."""
        self._listeners.append(listener)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (``workers`` concurrent runs) in the running event loop, once."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._workers(), name=self.name)

    async def _workers(self) -> None:
        await asyncio.gather(*(self._loop() for _ in range(self.workers)))

    def wake(self) -> None:
        """Run again now instead of at the end of the idle pause."""
        self._wake.set()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let the run in flight finish (at most ``timeout_s``), then end the loop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            _log.warning("loop.stop_timeout", loop=self.name, timeout_s=timeout_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while not self._stopping:
            pause = self._idle_s
            self._wake.clear()  # a wake() during the run below ends the next pause at once
            try:
                outcome = await self._run_once()
            except Exception as error:  # the loop must outlive any one run
                self.errors += 1
                pause = self._error_backoff_s
                _log.exception("loop.run_failed", loop=self.name, error_type=type(error).__name__)
            else:
                self.runs += 1
                for listener in self._listeners:
                    listener(outcome)
                if self._busy(outcome):
                    await asyncio.sleep(0)  # let the server breathe between busy runs
                    continue
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
