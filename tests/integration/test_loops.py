"""StageLoop: repeats while busy, idles, wakes early, survives errors, stops gracefully."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from connector.adapters.loops import StageLoop


class Stage:
    """A stage with a queue of outcomes: True = found work; an exception is raised."""

    def __init__(self, *outcomes: bool | Exception, delay_s: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.finished = 0
        self.delay_s = delay_s
        self.called = asyncio.Event()

    async def run_once(self) -> bool:
        self.calls += 1
        self.called.set()
        await asyncio.sleep(self.delay_s)
        outcome = self.outcomes.pop(0) if self.outcomes else False
        if isinstance(outcome, Exception):
            raise outcome
        self.finished += 1
        return outcome


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_runs_again_at_once_while_busy_then_idles() -> None:
    stage = Stage(True, True, True)
    loop = StageLoop("t", stage.run_once, bool, idle_s=3600)
    loop.start()
    await _until(lambda: stage.calls == 4)
    await asyncio.sleep(0.05)
    assert stage.calls == 4  # the fourth found nothing: now idle for an hour
    await loop.stop()
    assert not loop.running


async def test_wake_ends_the_idle_pause() -> None:
    stage = Stage()
    loop = StageLoop("t", stage.run_once, bool, idle_s=3600)
    loop.start()
    await _until(lambda: stage.calls == 1)
    loop.wake()
    await _until(lambda: stage.calls == 2)
    await loop.stop()


async def test_an_exception_does_not_end_the_loop() -> None:
    stage = Stage(RuntimeError("boom"), True)
    seen: list[bool] = []
    loop = StageLoop(
        "t", stage.run_once, bool, idle_s=3600, error_backoff_s=0.01, on_outcome=seen.append
    )
    loop.start()
    await _until(lambda: stage.calls == 3)
    assert loop.errors == 1
    assert seen[:2] == [True, False]
    await loop.stop()


async def test_stop_waits_for_the_run_in_flight() -> None:
    stage = Stage(delay_s=0.1)
    loop = StageLoop("t", stage.run_once, bool, idle_s=3600)
    loop.start()
    await stage.called.wait()
    await loop.stop(timeout_s=5)
    assert stage.finished == 1  # not cut in half


async def test_stop_cancels_a_run_that_takes_too_long() -> None:
    stage = Stage(delay_s=3600)
    loop = StageLoop("t", stage.run_once, bool)
    loop.start()
    await stage.called.wait()
    await loop.stop(timeout_s=0.05)
    assert stage.finished == 0
    assert not loop.running


async def test_workers_run_concurrently() -> None:
    """Two workers: a second run starts while the first still waits."""
    running = 0
    most = 0
    gate = asyncio.Event()

    async def run_once() -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        return False

    loop = StageLoop("t", run_once, bool, idle_s=3600, workers=2)
    loop.start()
    await _until(lambda: most == 2)
    gate.set()
    await loop.stop()
    assert most == 2
