"""Scheduled pulls across replicas: each (schedule, fire time) runs once, pauses hold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from connector.adapters.scheduler import (
    CronSchedule,
    IntervalSchedule,
    PullScheduler,
    parse_schedule,
    schedule_id,
)
from connector.errors import ConfigurationError, NotFound
from connector.flow.accept import AcceptService
from connector.flow.pull import PullService
from connector.ports import Clock, FetchedBatch, OperatorRecord
from connector.sample import generate_batch
from connector.testing import FrozenClock, InMemoryItemStore, SystemClock

OP = "DE-POST"
SID = schedule_id(OP)


@dataclass
class Feed:
    """The operator's side: one list of batches that every replica's source reads."""

    batches: list[bytes]
    fetches: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class FeedSource:
    """One replica's source over the shared feed; a cursor is the index of the last batch."""

    feed: Feed
    replica: str

    async def fetch(self, cursor: str | None) -> FetchedBatch | None:
        self.feed.fetches.append((self.replica, cursor))
        index = 0 if cursor is None else int(cursor) + 1
        if index >= len(self.feed.batches):
            return None
        return FetchedBatch(self.feed.batches[index], cursor=str(index), name=f"{index}.xml")

    async def done(
        self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
    ) -> None:
        return None


async def _store() -> InMemoryItemStore:
    store = InMemoryItemStore()
    await store.upsert_operators((OperatorRecord(OP, "Deutsche Post"),))
    return store


def _replica(
    store: InMemoryItemStore, feed: Feed, owner: str, clock: Clock, seconds: int = 1
) -> PullScheduler:
    pull = PullService(store, AcceptService(store=store, clock=clock), clock)
    return PullScheduler(
        store,
        pull,
        {OP: FeedSource(feed, owner)},
        {OP: IntervalSchedule(seconds)},
        clock,
        owner,
    )


def _feed() -> Feed:
    return Feed([generate_batch(2, seed=seed, operator_id=OP).xml for seed in (1, 2)])


@pytest.mark.slow
async def test_two_replicas_run_each_aligned_slot_once() -> None:
    """Two running schedulers on one store: every 1-second slot is claimed and run once."""
    store, feed, clock = await _store(), _feed(), SystemClock()
    replicas = [_replica(store, feed, owner, clock) for owner in ("replica-a", "replica-b")]
    with capture_logs() as logs:
        for replica in replicas:
            replica.start()
        try:
            await asyncio.sleep(3.5)
        finally:
            for replica in replicas:
                await replica.shutdown(wait=True)
    ticks = {fire_time: tick for (sid, fire_time), tick in store.ticks.items() if sid == SID}
    assert 3 <= len(ticks) <= 4
    assert all(t.microsecond == 0 for t in ticks)  # aligned to whole seconds of the epoch
    assert all(
        tick.result is not None and tick.result.startswith("ok: ") for tick in ticks.values()
    )
    # The first run fetched both batches and then found nothing (3 fetches); every later
    # run fetched once. Any duplicate run would have added fetches.
    assert len(feed.fetches) == 2 + len(ticks)
    assert len(store.items) == 4
    assert await store.get_cursor(OP) == "1"
    # Both replicas fired the slots (the first one may fall before one of them started).
    ran = [log for log in logs if log["event"] == "schedule.tick"]
    lost = [log for log in logs if log["event"] == "schedule.claimed_elsewhere"]
    assert len(ran) == len(ticks)
    assert len(ticks) - 1 <= len(lost) <= len(ticks)
    assert {log["fire_time"] for log in lost} <= {t.isoformat() for t in ticks}


async def test_the_same_fire_time_from_both_replicas_runs_once() -> None:
    """Driving one slot from two replicas at once: exactly one claims it and pulls."""
    store, feed, clock = await _store(), _feed(), FrozenClock()
    a, b = (_replica(store, feed, owner, clock) for owner in ("replica-a", "replica-b"))
    base = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    for step in range(3):
        fire_time = base + timedelta(seconds=step)
        outcomes = await asyncio.gather(a.run_tick(OP, fire_time), b.run_tick(OP, fire_time))
        assert sum(outcome is not None for outcome in outcomes) == 1
    assert len(feed.fetches) == 3 + 2  # 3 fetches in the first run, 1 in each later one
    assert {owner for owner, _ in feed.fetches} <= {"replica-a", "replica-b"}
    assert len(store.items) == 4
    states = await store.schedule_states()
    state = states[SID]
    assert state.last_fire_time == base + timedelta(seconds=2)
    assert state.last_result is not None
    assert state.last_result.startswith("ok: 0 items")


async def test_replicas_compute_the_same_slot() -> None:
    """Different moments inside one interval floor to the same epoch-aligned fire time."""
    store, feed = await _store(), _feed()
    a = _replica(store, feed, "a", FrozenClock(), seconds=300)
    b = _replica(store, feed, "b", FrozenClock(), seconds=300)
    slot = datetime(2026, 11, 26, 8, 5, tzinfo=UTC)
    assert a.slot(OP, slot + timedelta(seconds=1, microseconds=7)) == slot
    assert b.slot(OP, slot + timedelta(seconds=299)) == slot
    assert a.slot(OP, slot + timedelta(seconds=300)) == slot + timedelta(seconds=300)


async def test_a_paused_schedule_does_not_run() -> None:
    """A schedule paused in the store is skipped by every replica until it is resumed."""
    store, feed, clock = await _store(), _feed(), FrozenClock()
    replica = _replica(store, feed, "replica-a", clock)
    await store.set_paused(SID, True)
    fire_time = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert await replica.run_tick(OP, fire_time) is None
    assert feed.fetches == []
    assert (SID, fire_time) not in store.ticks
    await store.set_paused(SID, False)
    outcome = await replica.run_tick(OP, fire_time)
    assert outcome is not None
    assert outcome.batches_stored == 2


async def test_trigger_runs_now_as_a_claimed_tick() -> None:
    """trigger() runs the pull at once (even when paused), claimed at fire_time = now."""
    store, feed, clock = await _store(), _feed(), FrozenClock()
    replica = _replica(store, feed, "replica-a", clock)
    await store.set_paused(SID, True)
    outcome = await replica.trigger(OP)
    assert outcome is not None
    assert (outcome.batches_stored, outcome.items_accepted) == (2, 4)
    tick = store.ticks[(SID, clock.now())]
    assert tick.owner == "replica-a"
    assert tick.result == outcome.summary()
    with pytest.raises(NotFound):
        await replica.trigger("NOBODY")


async def test_next_run_times_follow_the_aligned_slots() -> None:
    """next_run_times() gives the next slot per operator, before and after start()."""
    store, feed = await _store(), _feed()
    replica = _replica(store, feed, "replica-a", SystemClock(), seconds=60)
    before = replica.next_run_times()[OP]
    assert before is not None
    assert before.second == before.microsecond == 0
    replica.start()
    try:
        after = replica.next_run_times()[OP]
    finally:
        await replica.shutdown()
    assert after == before
    assert not replica.running


def test_cron_slot_is_the_latest_fire_time() -> None:
    """A cron schedule's slot is its latest fire time at or before now, in UTC."""
    every_5 = CronSchedule("*/5 * * * *")
    assert every_5.slot(datetime(2026, 11, 26, 8, 7, 31, tzinfo=UTC)) == datetime(
        2026, 11, 26, 8, 5, tzinfo=UTC
    )
    assert every_5.slot(datetime(2026, 11, 26, 8, 10, tzinfo=UTC)) == datetime(
        2026, 11, 26, 8, 10, tzinfo=UTC
    )
    daily = CronSchedule("30 2 * * *")
    assert daily.slot(datetime(2026, 11, 26, 1, 0, tzinfo=UTC)) == datetime(
        2026, 11, 25, 2, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("300", IntervalSchedule(300)),
        ("interval:60", IntervalSchedule(60)),
        ("5m", IntervalSchedule(300)),
        ("1h", IntervalSchedule(3600)),
        ("*/5 * * * *", CronSchedule("*/5 * * * *")),
        ("cron: 0 * * * *", CronSchedule("0 * * * *")),
    ],
)
def test_parse_schedule(text: str, expected: object) -> None:
    """Interval and cron spellings of the configuration become schedules."""
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text", ["0", "soon", "61 * * * *", "* * *"])
def test_parse_schedule_rejects_nonsense(text: str) -> None:
    """Zero intervals, words and impossible cron fields are configuration errors."""
    with pytest.raises(ConfigurationError):
        parse_schedule(text)


async def test_a_schedule_needs_a_source() -> None:
    """Scheduling an operator without a pull source is refused at construction."""
    store, clock = await _store(), FrozenClock()
    pull = PullService(store, AcceptService(store=store, clock=clock), clock)
    with pytest.raises(ConfigurationError, match="without a pull source"):
        PullScheduler(store, pull, {}, {OP: IntervalSchedule(60)}, clock, "a")
