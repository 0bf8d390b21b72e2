"""Poll a Customs destination for its signed responses, instead of (or besides) its callback.

One :class:`CustomsPoll` per polled destination. :meth:`CustomsPoll.run_once` asks the
destination's feed (an :class:`~connector.ports.OperatorSource`: ``GET responses_url?after=
CURSOR`` answering one signed customs response with its ``X-Next-Cursor``, or 204) for what
came after the stored cursor, response by response, until nothing is new or
``max_per_run`` were read. Each body goes to the decide stage exactly as a posted one does
(:meth:`connector.flow.decide.DecideService.receive`): verified against the destination's
pinned certificates, checked for freshness and replays, applied with its notices in one
transaction.

The cursor lives in the store under ``customs:<destination>`` (the pull cursors table) and
moves after each response is handled:

- applied, or refused as a whole (forged, stale, misdirected, invalid, or a replay of a
  response received before): the cursor moves past it; a refused response is logged and
  counted, never applied, and never blocks the ones behind it;
- the store was unreachable: the cursor stays and the run ends; the next run reads the
  response again.

A crash between applying a response and moving the cursor only means the response is read
again and refused as a replay (nothing applied twice). Several replicas polling the same feed
are harmless the same way: the first applies, the others are refused as replays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from connector.errors import ConnectorError, SourceUnavailable, StoreUnavailable
from connector.flow.decide import DecideOutcome
from connector.ports import Clock, ItemStore, OperatorSource

__all__ = ["DEFAULT_MAX_PER_RUN", "CustomsPoll", "PollOutcome", "Receive", "cursor_id"]

DEFAULT_MAX_PER_RUN = 100

#: The decide stage's intake: ``DecideService.receive(destination, body)``.
Receive = Callable[[str, bytes], Awaitable[DecideOutcome]]

_log = structlog.get_logger("connector.customs_poll")


def cursor_id(destination: str) -> str:
    """The id the store keeps a polled destination's cursor under."""
    return f"customs:{destination}"


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of one destination did."""

    destination: str
    fetched: int = 0  # responses read
    applied: int = 0  # decisions applied (notices made)
    refused: int = 0  # responses refused as a whole
    error: str | None = None  # why the poll stopped early (feed or store unreachable)

    @property
    def busy(self) -> bool:
        """Whether to poll again at once: it read something and did not fail."""
        return self.fetched > 0 and self.error is None


class CustomsPoll:
    """Polls one Customs destination's response feed; :meth:`run_once` is its entry point."""

    def __init__(
        self,
        destination: str,
        feed: OperatorSource,
        receive: Receive,
        store: ItemStore,
        clock: Clock,
        *,
        max_per_run: int = DEFAULT_MAX_PER_RUN,
    ) -> None:
        self.destination = destination
        self._feed = feed
        self._receive = receive
        self._store = store
        self._clock = clock
        self._max_per_run = max_per_run
        self._cursor_id = cursor_id(destination)

    async def run_once(self) -> PollOutcome:
        """Read and hand on what is new; failures are logged and recorded, never raised."""
        fetched = applied = refused = 0
        error: str | None = None
        try:
            cursor = await self._store.get_cursor(self._cursor_id)
            while fetched + refused < self._max_per_run:
                try:
                    batch = await self._feed.fetch(cursor)
                except SourceUnavailable as failure:
                    error = str(failure)
                    _log.warning("poll.feed_unavailable", destination=self.destination, error=error)
                    await self._store.record_pull_error(
                        self._cursor_id, error[:1000], self._clock.now()
                    )
                    break
                except ConnectorError as failure:  # e.g. too large: the feed skips it
                    refused += 1
                    _log.warning(
                        "poll.response_refused", destination=self.destination, error=str(failure)
                    )
                    continue
                if batch is None:
                    break
                fetched += 1
                try:
                    outcome = await self._receive(self.destination, batch.data)
                except StoreUnavailable:
                    raise
                except ConnectorError as failure:
                    refused += 1
                    _log.warning(
                        "poll.response_refused",
                        destination=self.destination,
                        cursor=batch.cursor,
                        code=failure.code,
                        error=failure.message,
                    )
                    await self._feed.done(batch, False, f"{failure.code}: {failure.message}")
                else:
                    applied += len(outcome.applied)
                    await self._feed.done(batch, True, outcome.response_id)
                await self._store.save_cursor(self._cursor_id, batch.cursor, self._clock.now())
                cursor = batch.cursor
        except StoreUnavailable as failure:
            error = str(failure)
            _log.warning("poll.store_unavailable", destination=self.destination, error=error)
        result = PollOutcome(self.destination, fetched, applied, refused, error)
        if fetched or refused:
            _log.info(
                "poll.run",
                destination=self.destination,
                fetched=fetched,
                applied=applied,
                refused=refused,
            )
        return result
