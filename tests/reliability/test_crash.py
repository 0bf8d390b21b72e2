"""kill -9 at the worst moments, restart, and nothing acknowledged is lost or told twice.

Under a steady push load, with Customs deciding by callback and notices going to the
operator's webhook, the ``run`` process is killed (SIGKILL) again and again, each time at one
of four moments chosen by a seeded random generator:

- **intake**: a few milliseconds after a push started (the batch may or may not be stored;
  the operator only counts what was acknowledged and resends the rest);
- **send**: right after Customs stored a declaration batch, before its receipt reaches the
  service (so the batch is sent again after the restart);
- **apply**: just after Customs POSTed a signed response (applied or not, its answer is lost;
  Customs sends the decisions again, and the service must count them as repeats);
- **notice**: right after the operator recorded a notice, before the service hears 200 (so
  the notice is delivered again).

Then the service is restarted and left to finish. Every acknowledged item must be forwarded
under its one reference (Customs may see it again only as the same reference and version),
decided exactly as Customs decided, and notified: the operator holds one notice per decision,
in order, and a redelivered notice carries the same notice id.

``make test`` kills a few times; ``CONNECTOR_SOAK_KILLS=50`` (``make soak``) many times.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from connector.core.notices import ItemNotice
from connector.sample import generate_batch
from tests.e2e.test_service import OPERATOR, PG_URL, TOKEN, fresh_postgres_database
from tests.reliability.world import (
    LEASE_S,
    SOAK_KILLS,
    Service,
    World,
    item_states,
    plan_for,
    push_batch,
    reference_of,
    until,
)

pytestmark = pytest.mark.reliability

KILLS = SOAK_KILLS or 4
TIMEOUT = 180
PHASES = ("intake", "send", "apply", "notice")
BATCH_ITEMS = 20


@dataclass
class Run:
    """One crash run's moving parts and figures."""

    world: World
    service: Service
    http: aiohttp.ClientSession
    rng: random.Random
    acknowledged: set[str] = field(default_factory=set)
    kills: Counter[str] = field(default_factory=Counter)
    armed: set[str] = field(default_factory=set)
    stopping: bool = False
    pushing: bool = True
    pushes_interrupted: int = 0
    batch_seed: int = 0

    def kill_soon(self) -> None:
        """SIGKILL after a few milliseconds, from the event loop."""
        asyncio.get_running_loop().call_later(self.rng.uniform(0, 0.02), self.service.kill)

    async def pusher(self) -> None:
        """Push batches steadily; one not acknowledged is pushed again, as an operator would."""
        pending: bytes | None = None
        while self.pushing and not self.stopping:
            if pending is None:
                self.batch_seed += 1
                pending = generate_batch(
                    BATCH_ITEMS, seed=self.batch_seed, operator_id=OPERATOR
                ).xml
            if "intake" in self.armed:
                self.armed.discard("intake")
                self.kill_soon()
            accepted = await push_batch(self.http, self.service.base, pending)
            if accepted is None:
                self.pushes_interrupted += 1
            else:
                self.acknowledged |= accepted
                pending = None
            await asyncio.sleep(0.1)

    async def decider(self) -> None:
        """Customs decides what it received, round after round."""
        while not self.stopping:
            await asyncio.sleep(0.15)
            on_send = None
            if "apply" in self.armed and self.world.due():
                self.armed.discard("apply")
                on_send = self.kill_soon
            await self.world.decide_round(self.service.base, on_send)

    def arm(self, phase: str) -> None:
        if phase == "send":

            def sent(references: tuple[str, ...]) -> None:
                # Undecided until the service sent them again after its restart.
                self.world.hold_back(references, LEASE_S + 5)
                self.service.kill()

            self.world.customs.trap = sent
        elif phase == "notice":
            self.world.operator.trap = self.service.kill
        else:
            self.armed.add(phase)

    def disarm(self) -> None:
        self.world.customs.trap = None
        self.world.operator.trap = None
        self.armed.clear()


@contextlib.asynccontextmanager
async def _world(tmp_path: Path) -> AsyncIterator[World]:
    world = await World.create(tmp_path)
    try:
        yield world
    finally:
        await world.close()


async def _crash_run(tmp_path: Path, database_url: str, seed: int) -> dict[str, int]:
    async with (
        _world(tmp_path) as world,
        aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=aiohttp.ClientTimeout(total=30)
        ) as http,
    ):
        service = world.service(database_url)
        run = Run(world, service, http, random.Random(seed))
        service.start()
        await service.wait_healthy(http)
        tasks = [asyncio.create_task(run.pusher()), asyncio.create_task(run.decider())]
        try:
            phases: list[str] = []
            untargeted = 0
            for _ in range(KILLS):
                if not phases:
                    phases = list(PHASES)
                    run.rng.shuffle(phases)
                phase = phases.pop()
                await asyncio.sleep(run.rng.uniform(0.2, 1.0))  # the load runs
                run.arm(phase)
                deadline = time.monotonic() + 10
                while service.alive() and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                run.disarm()
                if service.alive():  # the moment did not come: kill anyway
                    untargeted += 1
                    service.kill()
                assert service.process is not None
                service.process.wait(timeout=30)
                run.kills[phase] += 1
                service.start()
                await service.wait_healthy(http)
            run.pushing = False  # the load stops; Customs goes on deciding
            await asyncio.wait_for(tasks[0], timeout=60)
            acknowledged = run.acknowledged
            assert acknowledged, "no push was acknowledged"

            async def finished() -> bool:
                for task in tasks[1:]:
                    if task.done():
                        task.result()  # the decider must not have died
                if any(
                    world.steps.get(reference_of(item), 0) < len(plan_for(reference_of(item)))
                    for item in acknowledged
                ):
                    return False
                states = await item_states(database_url)
                return all(states.get(item, ("",))[0] == "NOTIFIED" for item in acknowledged)

            try:
                await until(finished, "every acknowledged item decided and notified", TIMEOUT)
            except AssertionError as error:
                raise AssertionError(f"{error}: {_diagnosis(world, acknowledged)}") from None
        finally:
            run.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            service.stop()

        states = await item_states(database_url)
    return _check(world, acknowledged, states) | {
        "kills": sum(run.kills.values()),
        **{f"kills during {phase}": run.kills[phase] for phase in PHASES},
        "kills not at their moment": untargeted,
        "pushes interrupted": run.pushes_interrupted,
        "decision posts unanswered (sent again)": world.decide_failures,
        "decision posts that hung (cut after 10 s)": world.decide_timeouts,
    }


def _diagnosis(world: World, acknowledged: set[str]) -> str:
    """Where the unfinished items are, for a failure message."""
    keys = world.forwarded_references(acknowledged)
    unfinished = [
        item
        for item in acknowledged
        if world.steps.get(reference_of(item), 0) < len(plan_for(reference_of(item)))
    ]
    now = time.monotonic()
    return (
        f"{len(unfinished)} items unfinished, {sum(1 for i in unfinished if not keys[i])} of "
        f"them never at Customs, "
        f"{sum(1 for i in unfinished if world.held_back.get(reference_of(i), 0) > now)} held "
        f"back, {len(world.due())} due; problems {world.problems[:3]}"
    )


def _check(
    world: World, acknowledged: set[str], states: dict[str, tuple[str, str | None]]
) -> dict[str, int]:
    """Assert the promises on every acknowledged item; the figures."""
    assert world.problems == [], world.problems[:5]
    keys = world.forwarded_references(acknowledged)
    lost = sorted(item for item, found in keys.items() if not found)
    assert lost == [], f"{len(lost)} acknowledged items never reached Customs"
    for item, found in keys.items():
        assert found == {(reference_of(item), 1)}, (item, found)

    notices: dict[str, list[ItemNotice]] = {}
    for notice_id in world.operator.order:
        notice = world.operator.received[notice_id].notice
        notices.setdefault(notice.item_id, []).append(notice)
    for item in acknowledged:
        reference = reference_of(item)
        plan = plan_for(reference)
        seen = notices.get(item, [])
        assert [notice.decision for notice in seen] == list(plan), (item, seen)
        assert all(notice.item_reference == reference for notice in seen)
        sequences = [notice.sequence or 0 for notice in seen]
        assert sequences == sorted(sequences), (item, sequences)
        assert states[item] == ("NOTIFIED", plan[-1].value), (item, states[item])
    return {
        "items acknowledged": len(acknowledged),
        "items lost": len(lost),
        "batches Customs received again": world.customs.resent_batches,
        "declarations Customs saw again (same reference and version)": world.customs.duplicates,
        "notices delivered again (same notice id)": world.operator.duplicates,
    }


def _report(title: str, figures: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    width = max(len(name) for name in figures)
    with capsys.disabled():
        print(f"\n{title}")
        for name, value in figures.items():
            print(f"  {name:<{width}}  {value}")


async def test_kill_9_on_sqlite_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = await _crash_run(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", seed=9)
    _report("crash test (SQLite)", figures, capsys)
    assert figures["kills"] == KILLS
    assert figures["items lost"] == 0


@pytest.mark.skipif(PG_URL is None, reason="needs CONNECTOR_TEST_DATABASE_URL (PostgreSQL)")
async def test_kill_9_on_postgresql_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fresh_postgres_database() as url:
        figures = await _crash_run(tmp_path, url, seed=10)
    _report("crash test (PostgreSQL)", figures, capsys)
    assert figures["kills"] == KILLS
    assert figures["items lost"] == 0
