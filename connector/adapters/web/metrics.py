"""Prometheus metrics: ``GET /metrics`` (admin token) in the text exposition format.

One :class:`Metrics` per application, on its own registry (no process-global state, so
tests and several apps in one process do not mix). What it shows:

- ``ead_http_requests_total{route,method,status}`` and
  ``ead_http_request_duration_seconds{route}``: every request, by route name (never the raw
  path, so item ids do not become label values);
- ``ead_items_total{operator,outcome}``: items acknowledged as ``accepted`` or ``rejected``;
- ``ead_forward_items_total{outcome}``: items the forwarder ``sent``, ``retried`` or made
  ``dead``; ``ead_forward_batches_total``: batches Customs accepted;
- ``ead_notices_total{outcome}``: notices the webhook stage ``delivered``, ``retried`` or made
  ``dead``;
- ``ead_forward_send_seconds``: how long each send to Customs took (answer or failure);
- ``ead_outbox_pending`` and ``ead_dead_letters``, ``ead_items_by_state{state}`` and
  ``ead_backlog_oldest_seconds`` (age of the oldest item not yet forwarded): read from the
  database at each scrape, so every replica reports the shared backlog;
- ``ead_schedule_last_success_timestamp_seconds{operator}``: when each operator's scheduled
  pull last ended well (from the database);
- ``ead_signing_certificate_days_left``: days until the active signing certificate expires
  (warn at 30, act at 7).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from connector.adapters.web import auth
from connector.adapters.web.server import ADMIN_TOKEN_SHA256, CLOCK, METRICS, STORE
from connector.core.model import Acknowledgement, ItemState
from connector.ports import ItemStats, ScheduleState

__all__ = ["METRICS_ROUTES", "Metrics", "metrics_middleware"]


@runtime_checkable
class _Backlog(Protocol):
    async def outbox_depth(self) -> int: ...

    async def item_stats(self) -> ItemStats: ...


@runtime_checkable
class _Schedules(Protocol):
    async def schedule_states(self) -> Mapping[str, ScheduleState]: ...


class _NotifyOutcome(Protocol):
    @property
    def delivered(self) -> int: ...

    @property
    def retried(self) -> int: ...

    @property
    def dead(self) -> int: ...


class _ForwardOutcome(Protocol):
    @property
    def sent(self) -> int: ...

    @property
    def retried(self) -> int: ...

    @property
    def dead(self) -> int: ...

    @property
    def batches(self) -> int: ...


class Metrics:
    """The service's metrics on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ead_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ead_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.items = Counter(
            "ead_items",
            "Items acknowledged, by operator and outcome (accepted, rejected).",
            ["operator", "outcome"],
            registry=self.registry,
        )
        self.forwarded = Counter(
            "ead_forward_items",
            "Items handled by the forwarder, by outcome (sent, retried, dead).",
            ["outcome"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "ead_forward_send_seconds",
            "Time to send one declaration batch to Customs, answered or failed.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.by_state = Gauge(
            "ead_items_by_state",
            "Items in the database by lifecycle state.",
            ["state"],
            registry=self.registry,
        )
        self.backlog_age = Gauge(
            "ead_backlog_oldest_seconds",
            "Age of the oldest item accepted but not yet forwarded (0 when none waits).",
            registry=self.registry,
        )
        self.batches = Counter(
            "ead_forward_batches",
            "Declaration batches Customs accepted.",
            registry=self.registry,
        )
        self.outbox = Gauge(
            "ead_outbox_pending", "Items waiting to be forwarded.", registry=self.registry
        )
        self.notices = Counter(
            "ead_notices",
            "Notices handled by the webhook stage, by outcome (delivered, retried, dead).",
            ["outcome"],
            registry=self.registry,
        )
        self.schedule_success = Gauge(
            "ead_schedule_last_success_timestamp_seconds",
            "When an operator's scheduled pull last ended well (Unix time).",
            ["operator"],
            registry=self.registry,
        )
        self.certificate_days = Gauge(
            "ead_signing_certificate_days_left",
            "Days until the active signing certificate expires.",
            registry=self.registry,
        )
        self.dead = Gauge(
            "ead_dead_letters", "Items whose forwarding gave up.", registry=self.registry
        )

    def acknowledged(self, ack: Acknowledgement) -> None:
        """Count the items of one acknowledgement."""
        accepted = sum(1 for item in ack.items if item.accepted)
        if accepted:
            self.items.labels(ack.operator_id, "accepted").inc(accepted)
        if len(ack.items) > accepted:
            self.items.labels(ack.operator_id, "rejected").inc(len(ack.items) - accepted)

    def forward_run(self, outcome: _ForwardOutcome) -> None:
        """Count what one forward run did (the forwarder's StageLoop ``on_outcome``)."""
        for name in ("sent", "retried", "dead"):
            count = getattr(outcome, name)
            if count:
                self.forwarded.labels(name).inc(count)
        if outcome.batches:
            self.batches.inc(outcome.batches)
        for seconds in getattr(outcome, "send_seconds", ()):
            self.send_seconds.observe(seconds)

    def notify_run(self, outcome: _NotifyOutcome) -> None:
        """Count what one notify run did (the notifier's StageLoop listener)."""
        for name in ("delivered", "retried", "dead"):
            count = getattr(outcome, name)
            if count:
                self.notices.labels(name).inc(count)

    async def refresh_backlog(self, store: object) -> None:
        """Read the shared backlog and the schedules' last results from the database."""
        if isinstance(store, _Backlog):
            self.outbox.set(await store.outbox_depth())
            stats = await store.item_stats()
            for state_name, count in stats.by_state.items():
                self.by_state.labels(state_name).set(count)
            # A dead letter is an item in state DEAD (replay or a decision moves it out).
            self.dead.set(stats.by_state.get(ItemState.DEAD.value, 0))
            oldest = stats.oldest_waiting
            age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
            self.backlog_age.set(max(age, 0.0))
        if isinstance(store, _Schedules):
            for schedule_id, state in (await store.schedule_states()).items():
                ok = state.last_result is not None and state.last_result.startswith("ok")
                if ok and state.last_finished_at is not None:
                    operator = schedule_id.split(":", 1)[-1]
                    self.schedule_success.labels(operator).set(state.last_finished_at.timestamp())

    def refresh_certificate(self, not_after: datetime | None, now: datetime) -> None:
        """The active signing certificate's days left (nothing without signing keys)."""
        if not_after is not None:
            self.certificate_days.set((not_after - now).total_seconds() / 86400)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by its route name."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app.get(METRICS)
        if metrics is not None:
            route = request.match_info.route.name or "unmatched"
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)


async def get_metrics(request: web.Request) -> web.Response:
    """The metrics in the Prometheus text format; needs the admin token."""
    auth.require_admin(request, request.app[ADMIN_TOKEN_SHA256])
    metrics = request.app[METRICS]
    await metrics.refresh_backlog(request.app[STORE])
    from connector.adapters.web.admin import ADMIN_KEYRING

    ring = request.app.get(ADMIN_KEYRING)
    not_after = ring.active.certificate.not_valid_after_utc if ring is not None else None
    metrics.refresh_certificate(not_after, request.app[CLOCK].now())
    response = web.Response(body=generate_latest(metrics.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


METRICS_ROUTES: Final = (web.get("/metrics", get_metrics, name="metrics"),)
