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
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

import structlog

from connector.core.retry import RetryPolicy
from connector.errors import ConfigurationError, ConnectorError, StoreUnavailable
from connector.ports import Clock, CustomsGateway, ForwardClaim, ItemStore

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEASE_S",
    "NO_ROUTE",
    "BuildBatch",
    "ForwardOutcome",
    "ForwardService",
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


@dataclass
class _Tally:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    batches: int = 0


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
        batch_size: int = DEFAULT_BATCH_SIZE,
        lease_s: float = DEFAULT_LEASE_S,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._clock = clock
        self._owner = owner
        self._build = build
        self._route = route
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._lease_s = lease_s
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
            routed.sort(key=lambda pair: pair[0])
            for destination, group in groupby(routed, key=lambda pair: pair[0]):
                await self._send(destination, [claim for _, claim in group], tally)
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

    async def _send(self, destination: str, claims: list[ForwardClaim], tally: _Tally) -> None:
        """Build, sign and send one destination's batch, then record how it went."""
        try:
            # Building and signing is CPU-bound lxml work: keep it off the event loop.
            batch_id, signed_xml = await asyncio.to_thread(self._build, claims, destination)
            receipt = await self._gateway.send(destination, batch_id, signed_xml)
        except StoreUnavailable:
            raise
        except ConnectorError as error:
            _log.warning(
                "forward.send_failed", destination=destination, items=len(claims), error=str(error)
            )
            await self._fail(claims, f"{destination}: {error.code}: {error.message}", error, tally)
            return
        recorded = await self._store.record_forwarded(
            claims, self._owner, batch_id, signed_xml, receipt, self._clock.now()
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
        )
