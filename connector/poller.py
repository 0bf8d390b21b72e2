"""Polling Customs for decisions, as the service runs it, put together from the settings.

A Customs destination with ``responses_url`` is polled: :func:`open_pollers` gives each such
destination an HTTPS feed (:class:`~connector.adapters.sources.HttpSource` over the
destination's TLS settings: its CA bundle and our mTLS client certificate), a
:class:`~connector.flow.customs_poll.CustomsPoll` handing every response to the decide stage,
and a :class:`~connector.adapters.loops.StageLoop` that polls again at once while responses
come and every ``poll_interval_seconds`` otherwise. A fixed interval in each replica, not a
claimed schedule: a response read by two replicas is applied once and refused once as a
replay, so nothing needs to coordinate them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from connector.adapters.customs_client import client_ssl_context
from connector.adapters.loops import StageLoop
from connector.adapters.sources import HttpSource
from connector.flow.customs_poll import CustomsPoll, PollOutcome
from connector.flow.decide import DecideService
from connector.forwarder import customs_endpoints
from connector.ports import Clock, ItemStore, OperatorSource
from connector.settings import Settings

__all__ = ["Pollers", "customs_feed", "open_pollers"]


def customs_feed(settings: Settings, destination: str) -> HttpSource:
    """The HTTPS response feed of a Customs destination with a ``responses_url``.

    Raises:
        ConfigurationError: no such destination or no ``responses_url``; TLS files that do
            not load.
    """
    endpoint = customs_endpoints(settings)[destination]
    url = next(d.responses_url for d in settings.destinations if d.id == destination)
    assert url is not None
    context = client_ssl_context(
        endpoint.ca_file,
        endpoint.client_cert_file,
        endpoint.client_key_file,
        endpoint.client_key_passphrase,
    )

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=endpoint.max_concurrency),
            trust_env=False,
        )

    return HttpSource(
        url,
        timeout_s=endpoint.total_timeout_s,
        retries=endpoint.fast_retries,
        max_bytes=settings.http.max_body_bytes,
        session_factory=session,
    )


@dataclass
class Pollers:
    """The poll loops of the polled Customs destinations; :meth:`close` when done."""

    polls: Sequence[CustomsPoll]
    loops: Sequence[StageLoop[PollOutcome]]
    feeds: Sequence[OperatorSource]

    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the polls in flight finish (within ``timeout_s``), then close the feeds."""
        await asyncio.gather(*(loop.stop(timeout_s) for loop in self.loops))
        for feed in self.feeds:
            if isinstance(feed, HttpSource):
                await feed.close()


def open_pollers(
    settings: Settings,
    store: ItemStore,
    clock: Clock,
    decide: DecideService | None,
    *,
    feeds: dict[str, OperatorSource] | None = None,
) -> Pollers | None:
    """The poll loops (not started) of the Customs destinations with a ``responses_url``, or
    None when none is polled. ``feeds`` replaces the HTTPS feeds (tests)."""
    polled = [
        destination
        for destination in settings.destinations
        if destination.kind == "customs" and destination.responses_url is not None
    ]
    if not polled or decide is None:
        return None
    polls: list[CustomsPoll] = []
    loops: list[StageLoop[PollOutcome]] = []
    opened: list[OperatorSource] = []
    for destination in polled:
        feed = (feeds or {}).get(destination.id) or customs_feed(settings, destination.id)
        opened.append(feed)
        poll = CustomsPoll(destination.id, feed, decide.receive, store, clock)
        polls.append(poll)
        loops.append(
            StageLoop(
                f"poll:{destination.id}",
                poll.run_once,
                lambda outcome: outcome.busy,
                idle_s=destination.poll_interval_seconds,
                error_backoff_s=destination.poll_interval_seconds,
            )
        )
    return Pollers(polls, loops, opened)
