"""GET /metrics: Prometheus text with request, item and backlog figures; admin token only."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from connector.adapters.web.server import METRICS
from connector.flow.forward import ForwardOutcome
from connector.testing import InMemoryItemStore
from tests.integration.web.conftest import ADMIN_TOKEN, AUTH_A, TWO_ITEMS, XML

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
