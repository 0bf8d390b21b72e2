"""Send minimized, signed copies of forwarded items to the border agencies that subscribe.

The forward stage queues one copy job per (item, agency) when Customs accepts the item's
declaration (:meth:`connector.ports.ItemStore.record_forwarded`). One
:meth:`CopyService.run_once` claims due copy jobs with a lease (renewed by a
:class:`~connector.flow.forward.LeaseHeartbeat` while it works), groups them by agency, builds
and signs one ``AgencyCopy`` per agency (only the agency's allow-listed fields) and sends it
through the :class:`~connector.ports.CustomsGateway` (agencies speak the same HTTPS + mTLS
protocol with a signed receipt):

- accepted: the jobs are done; the signed copy and the receipt are kept as evidence
  (``declarations``, destination = the agency id);
- :class:`~connector.errors.CustomsRefused`: the copies are dead at once;
- any other :class:`~connector.errors.ConnectorError`: retried per the
  :class:`~connector.core.retry.RetryPolicy`, dead after too many attempts.

A copy is informational: it never changes the item's state, and a dead copy leaves the item
FORWARDED (or wherever Customs has taken it since). Copy jobs are separate outbox rows, so an
agency that is down never delays a declaration to Customs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

import structlog

from connector.core.retry import RetryPolicy
from connector.errors import ConnectorError, StoreUnavailable
from connector.flow.forward import DEFAULT_LEASE_S, LeaseHeartbeat
from connector.ports import Clock, CopyClaim, CustomsGateway, ItemStore

__all__ = ["DEFAULT_COPY_BATCH_SIZE", "BuildCopy", "CopyOutcome", "CopyService"]

DEFAULT_COPY_BATCH_SIZE = 500

#: Makes ``(copy_batch_id, signed_xml)`` of one agency's claims (the agency id is given).
BuildCopy = Callable[[Sequence[CopyClaim], str], tuple[str, bytes]]

_log = structlog.get_logger("connector.copy")


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    """What one copy run did (counts of copy jobs, except ``batches``)."""

    claimed: int = 0
    sent: int = 0  # delivered to the agency
    retried: int = 0  # failed, to be sent again later
    dead: int = 0  # failed for good (refused, or out of attempts)
    batches: int = 0  # agency copies accepted
    error: str | None = None  # why the run stopped early (the store was unreachable)


@dataclass
class _Tally:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    batches: int = 0

    def outcome(self, error: str | None = None) -> CopyOutcome:
        return CopyOutcome(
            self.claimed, self.sent, self.retried, self.dead, self.batches, error=error
        )


class CopyService:
    """The agency copy stage; :meth:`run_once` is its only entry point (STYLE.md 14)."""

    def __init__(
        self,
        store: ItemStore,
        gateway: CustomsGateway,
        clock: Clock,
        owner: str,
        build: BuildCopy,
        policy: RetryPolicy | None = None,
        *,
        batch_size: int = DEFAULT_COPY_BATCH_SIZE,
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
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._heartbeat_s = lease_s / 3 if heartbeat_s is None else heartbeat_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    async def run_once(self) -> CopyOutcome:
        """Claim one batch of due copies and send them; failures are recorded, never raised.

        A store failure ends the run with ``outcome.error``; claims not yet recorded stay
        claimed until their lease expires and are then sent again.
        """
        tally = _Tally()
        try:
            claims = await self._store.claim_copies(
                self._owner, self._batch_size, self._lease_s, self._clock.now()
            )
            tally.claimed = len(claims)
            if claims:
                async with LeaseHeartbeat(
                    self._store,
                    self._clock,
                    self._owner,
                    self._lease_s,
                    self._heartbeat_s,
                    stage="copy",
                ) as heartbeat:
                    heartbeat.hold(claim.outbox_id for claim in claims)
                    ordered = sorted(claims, key=lambda claim: (claim.agency, claim.outbox_id))
                    for agency, group in groupby(ordered, key=lambda claim: claim.agency):
                        batch = list(group)
                        await self._send(agency, batch, tally)
                        heartbeat.release(claim.outbox_id for claim in batch)
        except StoreUnavailable as error:
            _log.warning("copy.store_unavailable", error=str(error))
            return tally.outcome(str(error))
        outcome = tally.outcome()
        if outcome.claimed:
            _log.info(
                "copy.run",
                claimed=outcome.claimed,
                sent=outcome.sent,
                retried=outcome.retried,
                dead=outcome.dead,
                batches=outcome.batches,
            )
        return outcome

    async def _send(self, agency: str, claims: list[CopyClaim], tally: _Tally) -> None:
        """Build, sign and send one agency's copy, then record how it went."""
        try:
            copy_id, signed_xml = await asyncio.to_thread(self._build, claims, agency)
            receipt = await self._gateway.send(agency, copy_id, signed_xml)
        except StoreUnavailable:
            raise
        except ConnectorError as error:
            _log.warning("copy.send_failed", agency=agency, items=len(claims), error=str(error))
            await self._fail(claims, f"{agency}: {error.code}: {error.message}", error, tally)
            return
        tally.sent += await self._store.record_copied(
            claims, self._owner, copy_id, signed_xml, receipt, self._clock.now()
        )
        tally.batches += 1

    async def _fail(
        self, claims: Sequence[CopyClaim], message: str, error: ConnectorError, tally: _Tally
    ) -> None:
        """Record a failed attempt of ``claims``: one policy decision per attempt count."""
        now = self._clock.now()
        by_attempts = sorted(claims, key=lambda claim: claim.attempts)
        for attempts, group in groupby(by_attempts, key=lambda claim: claim.attempts):
            decision = self._policy.decide(attempts + 1, now, error, self._rng)
            recorded = await self._store.record_copy_failure(
                list(group), self._owner, message, decision, now
            )
            if decision.dead:
                tally.dead += recorded
                _log.error("copy.dead", agency=claims[0].agency, copies=recorded, why=message)
            else:
                tally.retried += recorded
