"""GET /metrics: Prometheus text with request, item and backlog figures; admin token only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters.keystore import KeyRing
from connector.adapters.web import server
from connector.adapters.web.admin import ADMIN_KEYRING
from connector.adapters.web.server import METRICS
from connector.flow.accept import AcceptService
from connector.flow.forward import ForwardOutcome
from connector.flow.notify import NotifyOutcome
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.web.conftest import ADMIN_TOKEN, AUTH_A, TWO_ITEMS, XML, sha256_hex

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Client = TestClient[web.Request, web.Application]


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in the metrics")


async def test_metrics_count_requests_items_and_backlog(
    client: Client, store: InMemoryItemStore
) -> None:
    pushed = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert pushed.status == 200
    await client.get("/v1/items/RR000000000DE", headers=AUTH_A)  # 404, by route not by id
    client.app[METRICS].forward_run(ForwardOutcome(claimed=2, sent=1, retried=1, batches=1))

    response = await client.get("/metrics", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert _value(text, 'ead_items_total{operator="DE-POST",outcome="accepted"}') == 2
    assert (
        _value(text, 'ead_http_requests_total{method="POST",route="push_batch",status="200"}') == 1
    )
    assert _value(text, 'ead_http_requests_total{method="GET",route="get_item",status="404"}') == 1
    assert "RR000000000DE" not in text  # ids never become label values
    assert _value(text, 'ead_forward_items_total{outcome="sent"}') == 1
    assert _value(text, "ead_forward_batches_total") == 1
    assert _value(text, "ead_outbox_pending") == 2  # read from the store at the scrape
    assert _value(text, "ead_dead_letters") == 0


async def test_metrics_need_the_admin_token(client: Client, accepted: dict[Any, Any]) -> None:
    for headers in ({}, AUTH_A):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401


async def test_metrics_show_notices_schedules_and_certificate_expiry(
    aiohttp_client: Any, store: InMemoryItemStore, clock: FrozenClock, tmp_path: Path
) -> None:
    ring = KeyRing.create(tmp_path / "keys", b"metrics test", "ec", "EADC", 30)
    app = server.build_web_app(
        store=store,
        accept=AcceptService(store, clock),
        clock=clock,
        max_body_bytes=1 << 16,
        admin_token_sha256=sha256_hex(ADMIN_TOKEN),
    )
    app[ADMIN_KEYRING] = ring
    client: Client = await aiohttp_client(TestServer(app))
    app[METRICS].notify_run(NotifyOutcome(claimed=3, delivered=2, dead=1))
    fired = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert await store.claim_tick("pull:DE-POST", fired, "replica-1")
    await store.finish_tick("pull:DE-POST", fired, "ok: 4 items", fired + timedelta(seconds=2))
    text = await (await client.get("/metrics", headers=ADMIN)).text()
    assert _value(text, 'ead_notices_total{outcome="delivered"}') == 2
    assert _value(text, 'ead_notices_total{outcome="dead"}') == 1
    success = 'ead_schedule_last_success_timestamp_seconds{operator="DE-POST"}'
    assert _value(text, success) == (fired + timedelta(seconds=2)).timestamp()
    days = _value(text, "ead_signing_certificate_days_left")
    expected = ring.active.certificate.not_valid_after_utc - clock.now()
    assert abs(days - expected.total_seconds() / 86400) < 0.01


async def test_metrics_show_items_by_state_backlog_age_and_send_latency(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    client.app[METRICS].forward_run(ForwardOutcome(claimed=1, send_seconds=(0.2, 3.0)))
    text = await (await client.get("/metrics", headers=ADMIN)).text()
    assert _value(text, 'ead_items_by_state{state="ACCEPTED"}') == 2
    assert _value(text, "ead_backlog_oldest_seconds") > 0  # the items were received "earlier"
    assert _value(text, "ead_forward_send_seconds_count") == 2
    assert _value(text, 'ead_forward_send_seconds_bucket{le="0.25"}') == 1
