"""Deliver the signed item notices to the operators' webhooks, at least once, stops first.

The decide stage stores one signed notice per applied decision (``notices``, pending). One
:meth:`NotifyService.run_once` claims due notices of the operators that have a webhook, with a
lease (renewed by a :class:`~connector.flow.forward.LeaseHeartbeat` while it works), and POSTs
each notice's stored signed bytes, unchanged, through the
:class:`~connector.ports.NoticeWebhook` with ``X-Notice-Id: <notice id>``:

- delivered (2xx): the notice is delivered; the item, when this is its latest notice and it is
  still DECIDED, moves to NOTIFIED with its event, in the same transaction;
- :class:`~connector.errors.WebhookRefused` (a 4xx that is a verdict on the notice, e.g. 400,
  410, 413, 422): dead at once; sending the same bytes again would not help;
- :class:`~connector.errors.WebhookUnavailable` (connection, timeout, TLS, 408, 425, 429, 5xx,
  a redirect, or 401/403/404/405, which are the endpoint's configuration, not a verdict): the
  :class:`~connector.core.retry.RetryPolicy` says when to try again, or dead after too many
  attempts. Once an operator's webhook failed so in a run, its other notices of that run are
  counted as failed with the same error without a request, so a webhook that is down costs
  one timeout per run rather than one per notice, and other operators' notices go on.

A dead notice is not lost: it stays in the operator's feed (``GET /v1/notices``) and is
listed for administrators (:meth:`~connector.ports.ItemStore.dead_notices`); it no longer
holds its item's later notices back.

Order. The store claims at most one notice per item (the head of the item's undelivered
notices), so a HOLD is delivered before the RELEASE that followed it; heads come most urgent
first. The run sends the DO_NOT_LOAD notices it claimed first, all of them, and records them,
before it starts on the others. Deliveries are recorded in chunks of a few times
``concurrency`` notices, not once per run, so a replica that dies mid-run leaves few
delivered-but-unrecorded notices behind.

At least once. A replica that dies after the POST but before recording leaves its claims to
expire; another replica sends them again, with the same notice id. Operators deduplicate on
``X-Notice-Id`` (equal to the signed ``NoticeId``) and answer a repeat with 2xx. Notices are
authenticated by their XML signature: operators verify it with the connector's published
certificate (``ead-connector keys``), so the webhook needs no shared secret.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from connector.core.model import CustomsDecision
from connector.core.retry import RetryDecision, RetryPolicy
from connector.errors import (
    ConnectorError,
    StoreUnavailable,
    WebhookRefused,
    WebhookUnavailable,
)
from connector.flow.forward import DEFAULT_LEASE_S, LeaseHeartbeat
from connector.ports import Clock, ItemStore, NoticeClaim, NoticeWebhook

__all__ = [
    "DEFAULT_NOTIFY_BATCH_SIZE",
    "DEFAULT_NOTIFY_CONCURRENCY",
    "NotifyOutcome",
    "NotifyService",
]

DEFAULT_NOTIFY_BATCH_SIZE = 200
DEFAULT_NOTIFY_CONCURRENCY = 8

#: Deliveries are recorded after every ``concurrency * _RECORD_EVERY_PER_SLOT`` notices (and
#: at least ``_RECORD_EVERY_MIN``): few enough to resend after a crash, enough to keep every
#: sending slot busy between two records.
_RECORD_EVERY_PER_SLOT = 4
_RECORD_EVERY_MIN = 16

_log = structlog.get_logger("connector.notify")


@dataclass(frozen=True, slots=True)
class NotifyOutcome:
    """What one notify run did (counts of notices)."""

    claimed: int = 0
    delivered: int = 0  # recorded as delivered
    retried: int = 0  # failed, to be sent again later
    dead: int = 0  # failed for good (refused, or out of attempts)
    error: str | None = None  # why the run stopped early (the store was unreachable)


@dataclass
class _Run:
    """One run's results, recorded after each wave."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    down: dict[str, WebhookUnavailable] = field(default_factory=dict)  # by operator

    def outcome(self, error: str | None = None) -> NotifyOutcome:
        return NotifyOutcome(self.claimed, self.delivered, self.retried, self.dead, error)


class _NoticeLeases:
    """The notices' lease renewal in the shape :class:`LeaseHeartbeat` renews through."""

    def __init__(self, store: ItemStore) -> None:
        self._store = store

    async def extend_leases(
        self, outbox_ids: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        return await self._store.extend_notice_leases(outbox_ids, owner, until, now)


class NotifyService:
    """The notify stage; :meth:`run_once` is its only entry point (STYLE.md 14).

    ``webhooks`` maps the id of each operator with a webhook to its URL; the notices of other
    operators are never claimed (they read the feed).
    """

    def __init__(
        self,
        store: ItemStore,
        webhook: NoticeWebhook,
        clock: Clock,
        owner: str,
        webhooks: Mapping[str, str],
        policy: RetryPolicy | None = None,
        *,
        batch_size: int = DEFAULT_NOTIFY_BATCH_SIZE,
        concurrency: int = DEFAULT_NOTIFY_CONCURRENCY,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``heartbeat_s``: how often held leases are renewed (default a third of
        ``lease_s``; 0 never). ``concurrency``: notices POSTed at once."""
        self._store = store
        self._webhook = webhook
        self._clock = clock
        self._owner = owner
        self._webhooks = dict(webhooks)
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._concurrency = max(concurrency, 1)
        self._lease_s = lease_s
        self._heartbeat_s = lease_s / 3 if heartbeat_s is None else heartbeat_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    @property
    def operators(self) -> tuple[str, ...]:
        """The operators whose notices this stage delivers."""
        return tuple(self._webhooks)

    async def run_once(self) -> NotifyOutcome:
        """Claim due notices and deliver them; failures are recorded, never raised.

        A store failure ends the run with ``outcome.error``; claims not yet recorded stay
        claimed until their lease expires and are then sent again.
        """
        run = _Run()
        if not self._webhooks:
            return run.outcome()
        try:
            claims = await self._store.claim_notices(
                self._owner,
                self._batch_size,
                self._lease_s,
                self._clock.now(),
                operators=self._webhooks.keys(),
            )
            run.claimed = len(claims)
            if claims:
                async with LeaseHeartbeat(
                    _NoticeLeases(self._store),
                    self._clock,
                    self._owner,
                    self._lease_s,
                    self._heartbeat_s,
                    stage="notify",
                ) as heartbeat:
                    heartbeat.hold(claim.sequence for claim in claims)
                    stops = [c for c in claims if c.notice.decision is CustomsDecision.DO_NOT_LOAD]
                    others = [
                        c for c in claims if c.notice.decision is not CustomsDecision.DO_NOT_LOAD
                    ]
                    chunk = max(self._concurrency * _RECORD_EVERY_PER_SLOT, _RECORD_EVERY_MIN)
                    for group in (stops, others):
                        for start in range(0, len(group), chunk):
                            wave = group[start : start + chunk]
                            await self._wave(wave, run)
                            heartbeat.release(claim.sequence for claim in wave)
        except StoreUnavailable as error:
            _log.warning("notify.store_unavailable", error=str(error))
            return run.outcome(str(error))
        outcome = run.outcome()
        if outcome.claimed:
            _log.info(
                "notify.run",
                claimed=outcome.claimed,
                delivered=outcome.delivered,
                retried=outcome.retried,
                dead=outcome.dead,
            )
        return outcome

    async def _wave(self, claims: Sequence[NoticeClaim], run: _Run) -> None:
        """POST ``claims`` (at most ``concurrency`` at once, in claim order) and record them."""
        gate = asyncio.Semaphore(self._concurrency)

        async def send(claim: NoticeClaim) -> ConnectorError | None:
            async with gate:
                return await self._send(claim, run)

        results = await asyncio.gather(*(send(claim) for claim in claims))
        now = self._clock.now()
        delivered = [claim for claim, error in zip(claims, results, strict=True) if error is None]
        if delivered:
            run.delivered += await self._store.record_notice_delivered(delivered, self._owner, now)
        for claim, error in zip(claims, results, strict=True):
            if error is not None:
                await self._fail(claim, error, now, run)

    async def _send(self, claim: NoticeClaim, run: _Run) -> ConnectorError | None:
        """Deliver one notice; the error that stopped it, or None."""
        operator = claim.notice.operator_id
        down = run.down.get(operator)
        if down is not None:
            return down
        try:
            await self._webhook.deliver(
                self._webhooks[operator], claim.notice.notice_id, claim.signed_xml
            )
        except WebhookUnavailable as error:
            run.down.setdefault(operator, error)
            return error
        except ConnectorError as error:
            return error
        return None

    async def _fail(
        self, claim: NoticeClaim, error: ConnectorError, now: datetime, run: _Run
    ) -> None:
        """Record a failed attempt: dead at once when refused, else per the retry policy."""
        notice = claim.notice
        message = f"{error.code}: {error.message}"
        decision = (
            RetryDecision(None, dead=True, reason=f"refused by the webhook: {message}")
            if isinstance(error, WebhookRefused)
            else self._policy.decide(claim.attempts + 1, now, error, self._rng)
        )
        recorded = await self._store.record_notice_failure(
            [claim], self._owner, message, decision, now
        )
        log = _log.bind(
            operator=notice.operator_id,
            notice_id=notice.notice_id,
            decision=notice.decision.value,
            attempts=claim.attempts + 1,
        )
        if decision.dead:
            run.dead += recorded
            log.error("notify.dead", why=decision.reason)
        else:
            run.retried += recorded
            log.warning(
                "notify.delivery_failed",
                error=message,
                retry_at=decision.retry_at.isoformat() if decision.retry_at else None,
            )
