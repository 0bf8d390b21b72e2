"""Wiring: settings in, a running connector out.

:func:`open_connector` opens the store (refusing a database whose schema is not at head),
syncs the configured operators into it and builds the stage services; :func:`build_app`
turns that into the aiohttp application whose ``cleanup_ctx`` starts the pull scheduler
and closes every resource on shutdown. The CLI, the service and the tests use the same
functions; tests pass their own store or clock instead of patching modules.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from connector.adapters.db.listen import WorkListener
from connector.adapters.db.store import SqlItemStore
from connector.adapters.intake_pool import IntakePool
from connector.adapters.keystore import load_certificate
from connector.adapters.scheduler import (
    CronSchedule,
    IntervalSchedule,
    PullScheduler,
    Schedule,
)
from connector.adapters.sources import DirectorySource, HttpSource
from connector.adapters.web.admin import (
    ADMIN_CHANNELS,
    ADMIN_KEYRING,
    ADMIN_SCHEDULER,
    OperatorChannels,
)
from connector.adapters.web.answers import ANSWERS
from connector.adapters.web.customs import DECIDE
from connector.adapters.web.server import METRICS, build_web_app
from connector.checks_loader import configured_checks
from connector.flow.accept import AcceptService
from connector.flow.amend import AmendService
from connector.flow.answer import AnswerService
from connector.flow.decide import DecideService, Destination
from connector.flow.pull import PullService
from connector.forwarder import Forwarder, open_forwarder
from connector.notifier import Notifier, open_notifier
from connector.poller import Pollers, open_pollers
from connector.ports import Clock, CustomsGateway, ItemStore, NoticeWebhook, OperatorSource
from connector.settings import Settings, hash_token
from connector.testing import SystemClock

__all__ = ["Connector", "build_app", "default_owner", "open_connector"]

SCHEDULER: web.AppKey[PullScheduler] = web.AppKey("scheduler", PullScheduler)
_log = structlog.get_logger("connector.app")


def default_owner() -> str:
    """This process's name in claims and leases: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _sources(settings: Settings) -> dict[str, OperatorSource]:
    sources: dict[str, OperatorSource] = {}
    for operator in settings.operators:
        pull = operator.pull
        if pull is None or not operator.enabled:
            continue
        if pull.directory is not None:
            sources[operator.id] = DirectorySource(
                pull.directory, max_bytes=settings.limits.max_bytes
            )
        elif pull.url is not None:
            sources[operator.id] = HttpSource(
                pull.url,
                token=pull.token.get_secret_value() if pull.token else None,
                timeout_s=pull.timeout_seconds,
                retries=pull.retries,
                max_bytes=settings.limits.max_bytes,
            )
    return sources


def _schedules(settings: Settings) -> dict[str, Schedule]:
    schedules: dict[str, Schedule] = {}
    for operator in settings.operators:
        schedule = operator.schedule
        if schedule is None or not operator.enabled or operator.pull is None:
            continue
        if schedule.interval_seconds is not None:
            schedules[operator.id] = IntervalSchedule(schedule.interval_seconds)
        elif schedule.cron is not None:
            schedules[operator.id] = CronSchedule(schedule.cron)
    return schedules


@dataclass
class Connector:
    """The connector's services over one store; ``close()`` releases everything."""

    settings: Settings
    store: ItemStore
    clock: Clock
    accept: AcceptService
    amend: AmendService
    pull: PullService
    sources: dict[str, OperatorSource]
    scheduler: PullScheduler
    owner: str
    _owns_store: bool = field(default=True, repr=False)
    forwarder: Forwarder | None = None
    """The forward stage (None without Customs destinations)."""
    decide: DecideService | None = None
    """The decide stage for Customs responses (None without Customs destinations)."""
    pollers: Pollers | None = None
    """The polls of Customs destinations with a ``responses_url`` (None: none polled)."""
    notifier: Notifier | None = None
    """The notify stage (None when no operator has a webhook)."""
    listener: WorkListener | None = None
    """On PostgreSQL, wakes this replica's stages when another replica creates work."""
    intake_pool: IntakePool | None = None
    """The processes that check batches (None: ``intake.workers = 0``, a thread)."""

    async def start_intake(self) -> None:
        """Start the intake's worker processes now, so that the first batches do not wait
        for them (they start on first use otherwise)."""
        if self.intake_pool is not None:
            await self.intake_pool.start()

    def start(self, *, schedule: bool = True, forward: bool = True) -> None:
        """Start the background work: scheduled pulls and the forwarder."""
        if schedule:
            self.scheduler.start()
        if forward and self.forwarder is not None:
            self.forwarder.start()
        if forward and self.notifier is not None:
            self.notifier.start()
        if forward and self.pollers is not None:
            self.pollers.start()
        if forward and self.listener is None:
            self.listener = _work_listener(self)
            if self.listener is not None:
                self.listener.start()

    async def close(self, drain_timeout_s: float = 10.0) -> None:
        """Stop intake schedules, let the send in flight finish, then release everything."""
        if self.scheduler.running:
            await self.scheduler.shutdown(wait=True)
        if self.listener is not None:
            await self.listener.stop()
        if self.pollers is not None:
            await self.pollers.close(drain_timeout_s)
        if self.forwarder is not None:
            await self.forwarder.stop(drain_timeout_s)
            await self.forwarder.close()
        if self.notifier is not None:
            await self.notifier.stop(drain_timeout_s)
            await self.notifier.close()
        for source in self.sources.values():
            if isinstance(source, HttpSource):
                await source.close()
        if self.intake_pool is not None:
            await self.intake_pool.close()
        if self._owns_store and isinstance(self.store, SqlItemStore):
            await self.store.close()


def _work_listener(connector: Connector) -> WorkListener | None:
    """A LISTEN connection waking the running stages, on PostgreSQL only."""
    if not connector.settings.database.url.startswith("postgresql"):
        return None
    wake: dict[str, Callable[[], None]] = {}
    if connector.forwarder is not None:
        wake["outbox"] = connector.forwarder.wake
        wake["answers"] = connector.forwarder.wake_answers
    if connector.notifier is not None:
        wake["notices"] = connector.notifier.wake
    return WorkListener(connector.settings.database.url, wake) if wake else None


def _decide_service(
    settings: Settings,
    store: ItemStore,
    clock: Clock,
    forwarder: Forwarder | None,
    notifier: Notifier | None = None,
) -> DecideService | None:
    """The decide stage: each Customs destination's pinned certificates and countries; the
    notices are signed with the forwarder's key ring (its active key, rotations followed)."""
    if forwarder is None:
        return None
    ring = forwarder.ring
    destinations = [
        Destination(
            destination.id,
            tuple(load_certificate(path) for path in destination.certificates),
            frozenset(destination.countries),
        )
        for destination in settings.destinations
        if destination.kind == "customs"
    ]
    return DecideService(
        store,
        clock,
        destinations,
        lambda: ring.active,
        on_applied=notifier.wake if notifier is not None else None,
    )


async def open_connector(
    settings: Settings,
    *,
    store: ItemStore | None = None,
    clock: Clock | None = None,
    owner: str | None = None,
    gateway: CustomsGateway | None = None,
    webhook: NoticeWebhook | None = None,
) -> Connector:
    """Open the store (unless given), sync operators, and build the services.

    ``gateway`` replaces the HTTPS Customs gateway of the configured destinations,
    ``webhook`` the HTTP notice webhook of the operators.
    """
    clock = clock or SystemClock()
    owns_store = store is None
    if store is None:
        store = await SqlItemStore.open(settings.database.url)
    try:
        for operator_id in await store.upsert_operators(settings.operator_records()):
            _log.warning(
                "operators.config_token_ignored",
                operator_id=operator_id,
                reason="an administrator rotated this operator's token; the configured one "
                "is ignored (remove it from the configuration)",
            )
        limits = settings.limits.parse_limits()
        checks = await asyncio.to_thread(configured_checks, settings.checks)
        owner = owner or default_owner()
        forwarder = open_forwarder(settings, store, clock, owner, gateway=gateway)
        notifier = open_notifier(settings, store, clock, owner, webhook=webhook)
        decide = _decide_service(settings, store, clock, forwarder, notifier)
        pollers = open_pollers(settings, store, clock, decide)
        workers = settings.intake.workers
        pool = IntakePool(workers, limits, settings.checks) if workers else None
        accept = AcceptService(
            store=store,
            clock=clock,
            limits=limits,
            checks=checks,
            on_stored=forwarder.wake if forwarder is not None else None,
            checker=pool,
        )
        amend = AmendService(store=store, clock=clock, limits=limits, checks=checks)
        pull = PullService(store=store, accept=accept, clock=clock)
        sources = _sources(settings)
        scheduler = PullScheduler(store, pull, sources, _schedules(settings), clock, owner)
    except BaseException:
        if owns_store and isinstance(store, SqlItemStore):
            await store.close()
        raise
    return Connector(
        settings,
        store,
        clock,
        accept,
        amend,
        pull,
        sources,
        scheduler,
        owner,
        owns_store,
        forwarder,
        decide,
        pollers,
        notifier=notifier,
        intake_pool=pool,
    )


async def build_app(
    connector: Connector, *, schedule: bool = True, forward: bool = True
) -> web.Application:
    """The HTTP API over ``connector``; the scheduler and the forwarder run while it does."""
    settings = connector.settings
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    app = build_web_app(
        store=connector.store,
        accept=connector.accept,
        amend=connector.amend,
        clock=connector.clock,
        max_body_bytes=settings.http.max_body_bytes,
        admin_token_sha256=hash_token(admin) if admin else None,
        rate_limit=(
            (settings.http.rate_limit_per_second, settings.http.rate_limit_burst)
            if settings.http.rate_limit_per_second > 0
            else None
        ),
    )
    app[SCHEDULER] = connector.scheduler
    app[DECIDE] = connector.decide
    forwarder = connector.forwarder
    app[ANSWERS] = AnswerService(
        connector.store,
        connector.clock,
        on_recorded=forwarder.wake_answers if forwarder is not None else None,
    )
    app[ADMIN_SCHEDULER] = connector.scheduler
    app[ADMIN_KEYRING] = connector.forwarder.ring if connector.forwarder is not None else None
    app[ADMIN_CHANNELS] = {
        operator.id: OperatorChannels(
            pull=operator.pull is not None, webhook=operator.webhook_url is not None
        )
        for operator in settings.operators
    }
    if connector.forwarder is not None:
        connector.forwarder.loop.add_listener(app[METRICS].forward_run)
    if connector.notifier is not None:
        connector.notifier.loop.add_listener(app[METRICS].notify_run)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        connector.start(schedule=schedule, forward=forward)
        yield
        await connector.close()

    app.cleanup_ctx.append(lifecycle)
    return app
