"""Forward accepted items to Customs in signed declaration batches, with durable retries.

One :meth:`ForwardService.run_once` claims due outbox jobs with a lease (taking over the
expired leases of a crashed replica), groups them by destination, builds and signs one
declaration batch per group and sends it through the :class:`~connector.ports.CustomsGateway`:

- accepted: the jobs are done and the items FORWARDED; the signed bytes and the receipt are
  kept as evidence (``declarations``), each item's event names the declaration batch id;
- :class:`~connector.errors.CustomsRefused`: the items are DEAD at once (visible to admins,
  replayable);
- any other :class:`~connector.errors.ConnectorError` (Customs unavailable, the builder or
  signing key failing): the :class:`~connector.core.retry.RetryPolicy` says when to try again,
  or that the items are DEAD after too many attempts;
- an item without a route to a destination fails with ``no_route`` and is retried like an
  unavailable destination: it is never dropped.

While a run holds its claims (building, signing, sending, recording) a
:class:`LeaseHeartbeat` renews their lease every third of it, so a slow Customs or a big batch
does not let another replica take the work over meanwhile; a replica that dies stops renewing
and its claims are taken over one lease later.

Agency copies: ``agencies`` names, per claim, the agencies subscribing to the item (by its
HS chapters and destination country). When Customs accepted the batch, the same transaction
that records the items FORWARDED queues one copy job per agency
(:class:`connector.flow.copy.CopyService` sends them). A copy never holds up, or changes, the
declaration to Customs.

Nothing is lost between these steps. A replica killed after sending but before recording
leaves its jobs claimed; when the lease runs out another replica claims and sends them again,
maybe in a batch with another ``declaration_batch_id``. Every item in every batch carries its
stable connector reference (:attr:`ForwardClaim.reference`), and Customs deduplicates
declarations on that item reference, so such a resend does not declare an item twice. Only
the owner of a claim can complete it (``AND owner = :me``), so a replica that wakes up after
its lease was taken over changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from types import TracebackType
from typing import Protocol

import structlog

from connector.core.retry import RetryPolicy
from connector.errors import ConfigurationError, ConnectorError, StoreUnavailable
from connector.ports import Clock, CustomsGateway, ForwardClaim, ItemStore

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEASE_S",
    "NO_ROUTE",
    "Agencies",
    "BuildBatch",
    "ForwardOutcome",
    "ForwardService",
    "LeaseHeartbeat",
    "LeaseStore",
    "Route",
]

DEFAULT_BATCH_SIZE = 500
DEFAULT_LEASE_S = 60.0
#: The error recorded for an item whose destination has no configured Customs route.
NO_ROUTE = "no_route"

#: Makes ``(declaration_batch_id, signed_xml)`` of one destination's claims.
BuildBatch = Callable[[Sequence[ForwardClaim], str], tuple[str, bytes]]
#: The destination id of a claimed item, or None when there is no route for it.
Route = Callable[[ForwardClaim], str | None]
#: The agency ids that get a copy of a claimed item (none: no copy).
Agencies = Callable[[ForwardClaim], Sequence[str]]

_log = structlog.get_logger("connector.forward")


@dataclass(frozen=True, slots=True)
class ForwardOutcome:
    """What one forward run did (counts of items, except ``batches``)."""

    claimed: int = 0
    sent: int = 0  # recorded as FORWARDED
    retried: int = 0  # failed, to be sent again later
    dead: int = 0  # failed for good (refused, or out of attempts)
    batches: int = 0  # declaration batches Customs accepted
    error: str | None = None  # why the run stopped early (the store was unreachable)
    send_seconds: tuple[float, ...] = field(default=(), compare=False)
    """How long each send to Customs took, answered or not (timings: not compared)."""


def _no_agencies(claim: ForwardClaim) -> Sequence[str]:
    return ()


class LeaseStore(Protocol):
    """What a :class:`LeaseHeartbeat` renews leases through (the item store for outbox jobs;
    the notify stage adapts it to its notices)."""

    async def extend_leases(
        self, outbox_ids: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int: ...


class LeaseHeartbeat:
    """Renews the leases of the jobs held (:meth:`hold`) every ``every_s`` seconds while
    the ``async with`` block runs; ``every_s`` None: never (the lease alone).

    Each beat moves ``lease_until`` to ``now + lease_s`` through
    :meth:`~connector.ports.ItemStore.extend_leases`, which touches only jobs still owned by
    ``owner``. A failed beat is logged and the next one tries again; the owner guard keeps a
    lost lease harmless.
    """

    def __init__(
        self,
        store: LeaseStore,
        clock: Clock,
        owner: str,
        lease_s: float,
        every_s: float | None,
        *,
        stage: str = "forward",
    ) -> None:
        self._store = store
        self._clock = clock
        self._owner = owner
        self._lease_s = lease_s
        self._every_s = every_s
        self._stage = stage
        self._held: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    def hold(self, outbox_ids: Iterable[int]) -> None:
        """Renew these jobs' leases from now on."""
        self._held.update(outbox_ids)

    def release(self, outbox_ids: Iterable[int]) -> None:
        """Stop renewing these jobs (they are recorded)."""
        self._held.difference_update(outbox_ids)

    async def __aenter__(self) -> LeaseHeartbeat:
        if self._every_s is not None and self._every_s > 0:
            self._task = asyncio.create_task(self._beat(self._every_s))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            asked = sorted(self._held)
            if not asked:
                continue
            now = self._clock.now()
            until = now + timedelta(seconds=self._lease_s)
            try:
                held = await self._store.extend_leases(asked, self._owner, until, now)
            except ConnectorError as error:
                _log.warning(f"{self._stage}.lease_renewal_failed", error=str(error))
                continue
            self.beats += 1
            still = len(self._held.intersection(asked))  # some may be recorded meanwhile
            if held < still:
                _log.warning(f"{self._stage}.lease_lost", held=held, claimed=still)


@dataclass
class _Tally:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    batches: int = 0
    send_seconds: list[float] = field(default_factory=list)


class ForwardService:
    """The forward stage; :meth:`run_once` is its only entry point (STYLE.md 14)."""

    def __init__(
        self,
        store: ItemStore,
        gateway: CustomsGateway,
        clock: Clock,
        owner: str,
        build: BuildBatch,
        route: Route,
        policy: RetryPolicy | None = None,
        *,
        agencies: Agencies = _no_agencies,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``heartbeat_s``: how often held leases are renewed (default a third of
        ``lease_s``; 0 never)."""
        self._store = store
        self._gateway = gateway
        self._clock = clock
        self._owner = owner
        self._build = build
        self._route = route
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._agencies = agencies
        self._heartbeat_s = lease_s / 3 if heartbeat_s is None else heartbeat_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    async def run_once(self) -> ForwardOutcome:
        """Claim one batch of due work and send it; failures are recorded, never raised.

        A store failure ends the run with ``outcome.error``; claims not yet recorded stay
        claimed until their lease expires and are then sent again.
        """
        tally = _Tally()
        try:
            claims = await self._store.claim_for_forwarding(
                self._owner, self._batch_size, self._lease_s, self._clock.now()
            )
            tally.claimed = len(claims)
            if claims:
                async with LeaseHeartbeat(
                    self._store, self._clock, self._owner, self._lease_s, self._heartbeat_s
                ) as heartbeat:
                    heartbeat.hold(claim.outbox_id for claim in claims)
                    await self._process(claims, heartbeat, tally)
        except StoreUnavailable as error:
            _log.warning("forward.store_unavailable", error=str(error))
            return self._outcome(tally, error=str(error))
        outcome = self._outcome(tally)
        if outcome.claimed:
            _log.info(
                "forward.run",
                claimed=outcome.claimed,
                sent=outcome.sent,
                retried=outcome.retried,
                dead=outcome.dead,
                batches=outcome.batches,
            )
        return outcome

    async def _process(
        self, claims: Sequence[ForwardClaim], heartbeat: LeaseHeartbeat, tally: _Tally
    ) -> None:
        routed: list[tuple[str, ForwardClaim]] = []
        unrouted: list[ForwardClaim] = []
        for claim in claims:
            destination = self._route(claim)
            if destination is None:
                unrouted.append(claim)
            else:
                routed.append((destination, claim))
        if unrouted:
            no_route = ConfigurationError(f"{NO_ROUTE}: no Customs route for the item")
            await self._fail(unrouted, NO_ROUTE, no_route, tally)
            heartbeat.release(claim.outbox_id for claim in unrouted)
        routed.sort(key=lambda pair: pair[0])
        for destination, group in groupby(routed, key=lambda pair: pair[0]):
            batch = [claim for _, claim in group]
            await self._send(destination, batch, tally)
            heartbeat.release(claim.outbox_id for claim in batch)

    def _prepare(
        self, claims: Sequence[ForwardClaim], destination: str
    ) -> tuple[str, bytes, dict[str, tuple[str, ...]]]:
        """The signed batch and the agencies of each item (in a worker thread)."""
        batch_id, signed_xml = self._build(claims, destination)
        copies: dict[str, tuple[str, ...]] = {}
        for claim in claims:
            try:
                agencies = tuple(self._agencies(claim))
            except ConnectorError as error:  # never hold up the declaration for a copy
                _log.error("forward.agencies_failed", reference=claim.reference, error=str(error))
                continue
            if agencies:
                copies[claim.reference] = agencies
        return batch_id, signed_xml, copies

    async def _send(self, destination: str, claims: list[ForwardClaim], tally: _Tally) -> None:
        """Build, sign and send one destination's batch, then record how it went."""
        try:
            # Building, signing and reading HS codes is CPU-bound lxml work: keep it off
            # the event loop.
            batch_id, signed_xml, copies = await asyncio.to_thread(
                self._prepare, claims, destination
            )
            started = time.perf_counter()
            try:
                receipt = await self._gateway.send(destination, batch_id, signed_xml)
            finally:
                tally.send_seconds.append(time.perf_counter() - started)
        except StoreUnavailable:
            raise
        except ConnectorError as error:
            _log.warning(
                "forward.send_failed", destination=destination, items=len(claims), error=str(error)
            )
            await self._fail(claims, f"{destination}: {error.code}: {error.message}", error, tally)
            return
        recorded = await self._store.record_forwarded(
            claims, self._owner, batch_id, signed_xml, receipt, self._clock.now(), copies=copies
        )
        tally.sent += recorded
        tally.batches += 1

    async def _fail(
        self, claims: Sequence[ForwardClaim], message: str, error: ConnectorError, tally: _Tally
    ) -> None:
        """Record a failed attempt of ``claims``: one policy decision per attempt count."""
        now = self._clock.now()
        by_attempts = sorted(claims, key=lambda claim: claim.attempts)
        for attempts, group in groupby(by_attempts, key=lambda claim: claim.attempts):
            decision = self._policy.decide(attempts + 1, now, error, self._rng)
            recorded = await self._store.record_forward_failure(
                list(group), self._owner, message, decision, now
            )
            if decision.dead:
                tally.dead += recorded
            else:
                tally.retried += recorded

    @staticmethod
    def _outcome(tally: _Tally, error: str | None = None) -> ForwardOutcome:
        return ForwardOutcome(
            claimed=tally.claimed,
            sent=tally.sent,
            retried=tally.retried,
            dead=tally.dead,
            batches=tally.batches,
            error=error,
            send_seconds=tuple(tally.send_seconds),
        )
