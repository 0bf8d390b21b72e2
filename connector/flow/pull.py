"""Pull an operator's batches from its source and hand each one to the accept stage.

A pull is a checkpointed, idempotent job: the cursor of a batch is committed in the same
transaction as its items (:meth:`AcceptService.accept_batch` with ``cursor=...``), and the
source is told ``done`` only after that commit. A run that stops anywhere leaves the cursor
at the last stored batch, so the next run fetches the rest; re-fetching a stored batch is
harmless because identical items are duplicates (no-ops) in the store.

A batch that is unusable as a whole (:class:`~connector.errors.InvalidMessage`, including
one the source itself refuses, such as an oversized one, or
:class:`~connector.errors.Forbidden`) must not block the queue behind it. The store port has
no "advance the cursor only" method, so the *source* skips it when told
``done(ok=False)``: a directory source moves the file to ``failed/``, an HTTP source jumps
past it in memory (see :mod:`connector.adapters.sources`). The refusal is counted in the
outcome and recorded with :meth:`ItemStore.record_pull_error` at the end of the run, so it
stays visible after later batches of the same run were stored.

Failing to reach the source or the store ends the run with ``outcome.error`` set, the
cursor unchanged and the failing batch not marked done (it is fetched again next time). Only
programming errors escape :meth:`PullService.run_once`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from connector.core.outbound import acknowledgement_xml
from connector.errors import ConnectorError, Forbidden, InvalidMessage, StoreUnavailable
from connector.flow.accept import AcceptService
from connector.ports import Clock, FetchedBatch, ItemStore, OperatorSource

__all__ = ["DEFAULT_MAX_BATCHES", "PullOutcome", "PullService"]

#: Batches fetched at most in one run, so one busy operator cannot hold a run forever.
DEFAULT_MAX_BATCHES = 100

_log = structlog.get_logger("connector.pull")


@dataclass(frozen=True, slots=True)
class PullOutcome:
    """What one pull run did."""

    operator_id: str
    batches_stored: int = 0
    items_accepted: int = 0  # acknowledged as accepted, duplicates of stored items included
    items_rejected: int = 0  # rejected by validation or conflicting with a stored item
    batches_refused: int = 0  # unusable as a whole; the source set them aside
    refusals: tuple[str, ...] = ()  # one "name: code: message" per refused batch
    error: str | None = None  # why the run stopped early (source or store unreachable)
    more: bool = False  # stopped at max_batches with batches possibly left

    @property
    def ok(self) -> bool:
        """The run reached the end of the source (or its batch limit) without failing."""
        return self.error is None

    def summary(self) -> str:
        """A one-line result (``ok: ...`` or ``error: ...``) for the schedule's last result."""
        counts = (
            f"{self.items_accepted} items accepted, {self.items_rejected} rejected "
            f"in {self.batches_stored} batches"
        )
        if self.batches_refused:
            counts += f", {self.batches_refused} batches refused"
        if self.more:
            counts += ", more waiting"
        if self.error is not None:
            return f"error: {self.error} (after {counts})"
        return f"ok: {counts}"


@dataclass
class _Tally:
    stored: int = 0
    accepted: int = 0
    rejected: int = 0
    refusals: list[str] = field(default_factory=list)
    error: str | None = None
    more: bool = False


def _describe(exc: ConnectorError) -> str:
    return f"{exc.code}: {exc.message}"


@dataclass(frozen=True, slots=True)
class PullService:
    """Runs pulls: fetch, accept (cursor committed with the items), then acknowledge."""

    store: ItemStore
    accept: AcceptService
    clock: Clock
    max_batches: int = DEFAULT_MAX_BATCHES

    async def run_once(self, operator_id: str, source: OperatorSource) -> PullOutcome:
        """Pull ``operator_id``'s waiting batches from ``source``, up to ``max_batches``."""
        log = _log.bind(operator=operator_id)
        tally = _Tally()
        for _ in range(self.max_batches):
            if not await self._step(operator_id, source, tally, log):
                break
        else:
            tally.more = True
        problems = [*tally.refusals]
        if tally.error is not None:
            problems.append(tally.error)
        if problems:
            await self._record_error(operator_id, "; ".join(problems), tally, log)
        outcome = PullOutcome(
            operator_id=operator_id,
            batches_stored=tally.stored,
            items_accepted=tally.accepted,
            items_rejected=tally.rejected,
            batches_refused=len(tally.refusals),
            refusals=tuple(tally.refusals),
            error=tally.error,
            more=tally.more,
        )
        log.info("pull.finished", result=outcome.summary())
        return outcome

    async def _step(
        self,
        operator_id: str,
        source: OperatorSource,
        tally: _Tally,
        log: structlog.typing.FilteringBoundLogger,
    ) -> bool:
        """Fetch and handle one batch; False when the run is over."""
        try:
            cursor = await self.store.get_cursor(operator_id)
        except ConnectorError as exc:
            tally.error = f"store: {_describe(exc)}"
            return False
        try:
            batch = await source.fetch(cursor)
        except InvalidMessage as exc:
            # The source refused this batch itself (e.g. too large) and has set it aside.
            tally.refusals.append(_describe(exc))
            log.warning("pull.batch_refused", code=exc.code, detail=exc.message)
            return True
        except ConnectorError as exc:
            tally.error = f"source: {_describe(exc)}"
            log.warning("pull.source_failed", code=exc.code, detail=exc.message)
            return False
        if batch is None:
            return False
        return await self._handle(operator_id, source, batch, tally, log)

    async def _handle(
        self,
        operator_id: str,
        source: OperatorSource,
        batch: FetchedBatch,
        tally: _Tally,
        log: structlog.typing.FilteringBoundLogger,
    ) -> bool:
        try:
            ack = await self.accept.accept_batch(
                operator_id, batch.data, source="pull", cursor=batch.cursor
            )
        except (InvalidMessage, Forbidden) as exc:
            detail = _describe(exc)
            tally.refusals.append(f"{batch.name}: {detail}")
            log.warning("pull.batch_refused", batch=batch.name, code=exc.code, detail=exc.message)
            return await self._done(source, batch, ok=False, detail=detail, tally=tally)
        except StoreUnavailable as exc:
            # Nothing was stored: the cursor is where it was and the batch is not acknowledged,
            # so it is fetched again by the next run.
            tally.error = f"store: {_describe(exc)}"
            log.warning("pull.store_failed", batch=batch.name, detail=exc.message)
            return False
        except ConnectorError as exc:
            tally.error = f"{batch.name}: {_describe(exc)}"
            log.warning("pull.batch_failed", batch=batch.name, code=exc.code, detail=exc.message)
            return False
        accepted = sum(1 for item in ack.items if item.accepted)
        tally.stored += 1
        tally.accepted += accepted
        tally.rejected += len(ack.items) - accepted
        log.info(
            "pull.batch_stored",
            batch=batch.name,
            batch_id=ack.batch_id,
            accepted=accepted,
            rejected=len(ack.items) - accepted,
        )
        detail = f"batch {ack.batch_id}: {accepted} accepted, {len(ack.items) - accepted} rejected"
        receipt = acknowledgement_xml(ack)
        return await self._done(source, batch, ok=True, detail=detail, tally=tally, receipt=receipt)

    async def _done(
        self,
        source: OperatorSource,
        batch: FetchedBatch,
        *,
        ok: bool,
        detail: str,
        tally: _Tally,
        receipt: bytes | None = None,
    ) -> bool:
        try:
            await source.done(batch, ok=ok, detail=detail, receipt=receipt)
        except ConnectorError as exc:
            # A stored batch that could not be acknowledged is fetched again next run and is
            # then a duplicate; stop now rather than loop on it.
            tally.error = f"source: {batch.name}: {_describe(exc)}"
            return False
        return True

    async def _record_error(
        self,
        operator_id: str,
        error: str,
        tally: _Tally,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        try:
            await self.store.record_pull_error(operator_id, error, self.clock.now())
        except ConnectorError as exc:
            log.warning("pull.error_not_recorded", code=exc.code, detail=exc.message)
            if tally.error is None:
                tally.error = f"store: {_describe(exc)}"
