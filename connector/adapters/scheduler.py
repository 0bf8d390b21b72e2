"""Scheduled pulls: APScheduler 3.x in every replica, one run per slot across all of them.

Every replica registers the same jobs (``pull:<operator_id>``) from configuration in an
in-memory job store, and every replica fires them. What makes a tick run once is the store:
each firing computes its slot (the ``fire_time``), checks that the schedule is not paused, and
runs the pull only if it wins :meth:`ItemStore.claim_tick` for ``(schedule_id, fire_time)``.

Replicas must compute the *same* ``fire_time`` for the same tick, so it is derived from the
schedule, not from when the job happened to start: intervals are aligned to the Unix epoch
(``slot = floor(now / interval) * interval``) and cron expressions are evaluated in UTC (the
slot is the latest fire time at or before now). APScheduler 3 does not hand the scheduled run
time to the job, so the job floors the clock to the slot; this is exact as long as a firing
starts less than one interval late, which ``misfire_grace_s`` (smaller than the interval in
practice) and coalescing guarantee.

Manual runs (:meth:`PullScheduler.trigger`) use ``fire_time = now`` and are claimed like any
tick; they run even when the schedule is paused, because an administrator asked for them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import structlog
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.errors import ConfigurationError, ConnectorError, NotFound
from connector.flow.pull import PullOutcome, PullService
from connector.ports import Clock, ItemStore, OperatorSource

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "PullScheduler",
    "Schedule",
    "parse_schedule",
    "schedule_id",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_MISFIRE_GRACE_S: Final = 10
_CRON_LOOKBACK_MAX: Final = timedelta(days=400)

_log = structlog.get_logger("connector.scheduler")


def schedule_id(operator_id: str) -> str:
    """The id of ``operator_id``'s pull schedule, in APScheduler and in the store."""
    return f"pull:{operator_id}"


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every ``seconds`` seconds, at multiples of ``seconds`` since the Unix epoch."""

    seconds: int

    def __post_init__(self) -> None:
        if self.seconds < 1:
            raise ConfigurationError(f"a pull interval must be at least 1 second, got {self}")

    def trigger(self) -> IntervalTrigger:
        """The APScheduler trigger firing exactly on the slots."""
        return IntervalTrigger(seconds=self.seconds, start_date=EPOCH, timezone=UTC)

    def describe(self) -> str:
        return f"{self.seconds} s"

    def slot(self, now: datetime) -> datetime:
        """The slot ``now`` falls in: ``floor(now / interval) * interval``."""
        elapsed = (now - EPOCH) // timedelta(seconds=1)
        return EPOCH + timedelta(seconds=elapsed - elapsed % self.seconds)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A five-field crontab expression, evaluated in UTC."""

    expression: str

    def __post_init__(self) -> None:
        try:
            self.trigger()
        except ValueError as exc:
            raise ConfigurationError(f"invalid cron expression {self.expression!r}: {exc}") from exc

    def trigger(self) -> CronTrigger:
        """The APScheduler trigger for the expression, in UTC."""
        return CronTrigger.from_crontab(self.expression, timezone=UTC)

    def describe(self) -> str:
        return f"cron {self.expression}"

    def slot(self, now: datetime) -> datetime:
        """The latest fire time at or before ``now`` (``now`` itself if there is none)."""
        trigger = self.trigger()
        lookback = timedelta(minutes=1)
        while True:
            found: datetime | None = trigger.get_next_fire_time(None, now - lookback)
            if found is not None and found <= now:
                break
            if lookback >= _CRON_LOOKBACK_MAX:
                return now
            lookback *= 2
        while True:
            following: datetime | None = trigger.get_next_fire_time(found, found)
            if following is None or following <= found or following > now:
                return found.astimezone(UTC)
            found = following


Schedule = IntervalSchedule | CronSchedule

_INTERVAL = re.compile(r"(?:interval:)?\s*(\d+)\s*(s|m|h)?", re.IGNORECASE)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600}


def parse_schedule(text: str) -> Schedule:
    """``"interval:300"``, ``"300"``, ``"5m"``, ``"1h"`` or ``"cron:*/5 * * * *"``/a crontab."""
    spec = text.strip()
    if spec.lower().startswith("cron:"):
        return CronSchedule(spec[5:].strip())
    match = _INTERVAL.fullmatch(spec)
    if match:
        unit = (match.group(2) or "s").lower()
        return IntervalSchedule(int(match.group(1)) * _UNIT_SECONDS[unit])
    if len(spec.split()) == 5:
        return CronSchedule(spec)
    raise ConfigurationError(
        f"invalid schedule {text!r}: use an interval such as '300', '5m', '1h' or a "
        "five-field cron expression"
    )


class PullScheduler:
    """Fires each operator's pull on its schedule; the store decides which replica runs it."""

    def __init__(
        self,
        store: ItemStore,
        pull: PullService,
        sources: Mapping[str, OperatorSource],
        schedules: Mapping[str, Schedule],
        clock: Clock,
        owner: str,
        *,
        misfire_grace_s: int = DEFAULT_MISFIRE_GRACE_S,
    ) -> None:
        unknown = sorted(set(schedules) - set(sources))
        if unknown:
            raise ConfigurationError(f"schedules for operators without a pull source: {unknown}")
        self._store = store
        self._pull = pull
        self._sources = dict(sources)
        self._schedules = dict(schedules)
        self._clock = clock
        self.owner = owner
        self._inflight: set[asyncio.Task[PullOutcome | None]] = set()
        self._scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": misfire_grace_s,
            },
            timezone=UTC,
        )
        for operator_id, schedule in self._schedules.items():
            self._scheduler.add_job(
                self._fire,
                trigger=schedule.trigger(),
                args=[operator_id],
                id=schedule_id(operator_id),
                name=schedule_id(operator_id),
                replace_existing=True,
            )

    @property
    def schedules(self) -> Mapping[str, Schedule]:
        """The configured schedules by operator id."""
        return MappingProxyType(self._schedules)

    @property
    def running(self) -> bool:
        """Whether the scheduler fires jobs."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Start firing (call from inside the running event loop)."""
        self._scheduler.start()
        _log.info("scheduler.started", owner=self.owner, schedules=sorted(self._schedules))

    async def shutdown(self, wait: bool = True) -> None:
        """Stop firing; then let runs in progress finish (``wait``) or cancel them.

        A cancelled pull loses nothing: every stored batch committed its cursor already.
        """
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the next loop iteration
        tasks = set(self._inflight)
        if not wait:
            for task in tasks:
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        _log.info("scheduler.stopped", owner=self.owner)

    def slot(self, operator_id: str, now: datetime) -> datetime:
        """The fire time every replica computes for ``operator_id``'s tick at ``now``."""
        return self._schedules[operator_id].slot(now)

    def next_run_times(self) -> dict[str, datetime | None]:
        """Per operator with a source, when its schedule fires next (None: manual only)."""
        now = self._clock.now()
        result: dict[str, datetime | None] = dict.fromkeys(self._sources)
        for operator_id, schedule in self._schedules.items():
            job = self._scheduler.get_job(schedule_id(operator_id))
            when: datetime | None
            if job is not None and self._scheduler.running:
                when = job.next_run_time
            else:
                when = schedule.trigger().get_next_fire_time(None, now)
            result[operator_id] = when.astimezone(UTC) if when is not None else None
        return result

    async def trigger(self, operator_id: str) -> PullOutcome | None:
        """Run ``operator_id``'s pull now (``fire_time = now``), claimed like any tick.

        Returns None only if another replica claimed the same instant.
        """
        if operator_id not in self._sources:
            raise NotFound(f"no pull source is configured for operator {operator_id!r}")
        return await self._tracked(
            self.run_tick(operator_id, self._clock.now(), honour_pause=False)
        )

    async def run_tick(
        self, operator_id: str, fire_time: datetime, *, honour_pause: bool = True
    ) -> PullOutcome | None:
        """Run one tick unless paused or claimed elsewhere; None when it did not run here."""
        sid = schedule_id(operator_id)
        log = _log.bind(schedule=sid, fire_time=fire_time.isoformat(), owner=self.owner)
        try:
            if honour_pause:
                state = (await self._store.schedule_states()).get(sid)
                if state is not None and state.paused:
                    log.info("schedule.paused")
                    return None
            if not await self._store.claim_tick(sid, fire_time, self.owner):
                log.debug("schedule.claimed_elsewhere")
                return None
        except ConnectorError as exc:
            log.warning("schedule.claim_failed", code=exc.code, detail=exc.message)
            return None
        log.info("schedule.tick")
        try:
            outcome = await self._pull.run_once(operator_id, self._sources[operator_id])
        except asyncio.CancelledError:
            await self._finish(sid, fire_time, "error: cancelled (shutdown)", log)
            raise
        except Exception as exc:
            await self._finish(sid, fire_time, f"error: internal: {type(exc).__name__}", log)
            raise
        await self._finish(sid, fire_time, outcome.summary(), log)
        return outcome

    async def _finish(
        self,
        sid: str,
        fire_time: datetime,
        result: str,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        try:
            await self._store.finish_tick(sid, fire_time, result, self._clock.now())
        except ConnectorError as exc:
            log.warning("schedule.finish_failed", code=exc.code, detail=exc.message)

    async def _tracked(self, run: Coroutine[Any, Any, PullOutcome | None]) -> PullOutcome | None:
        task = asyncio.create_task(run)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        # Shielded: when APScheduler cancels the job at shutdown, the pull itself goes on
        # until shutdown(wait=...) decides.
        return await asyncio.shield(task)

    async def _fire(self, operator_id: str) -> None:
        """The APScheduler job: compute the slot, then run the tick if this replica wins it."""
        fire_time = self.slot(operator_id, self._clock.now())
        try:
            await self._tracked(self.run_tick(operator_id, fire_time))
        except Exception:
            _log.exception(
                "schedule.tick_failed",
                schedule=schedule_id(operator_id),
                fire_time=fire_time.isoformat(),
                owner=self.owner,
            )
