"""Per-operator rate limit: 429 with Retry-After over the limit, other operators unaffected."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters.web import server
from connector.adapters.web.ratelimit import RateLimiter
from connector.errors import ConfigurationError
from connector.flow.accept import AcceptService
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.web.conftest import AUTH_A, AUTH_B


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_bursts_then_the_rate() -> None:
    ticks = Ticks()
    limiter = RateLimiter(2.0, 3, clock=ticks)
    assert [limiter.take("A") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("A") == pytest.approx(0.5)
    assert limiter.take("B") == 0.0  # buckets are per key
    ticks.now += 0.5
    assert limiter.take("A") == 0.0
    assert limiter.take("A") > 0
    ticks.now += 100
    assert [limiter.take("A") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # never above burst


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_bad_limits_are_configuration_errors(rate: float, burst: int) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(rate, burst)


async def test_over_the_limit_is_429_and_other_operators_go_on(
    aiohttp_client: Any, store: InMemoryItemStore, clock: FrozenClock
) -> None:
    app = server.build_web_app(
        store=store,
        accept=AcceptService(store, clock),
        clock=clock,
        max_body_bytes=64 * 1024,
        rate_limit=(0.001, 2),  # two requests, then one per 1000 s
    )
    client: TestClient[Any, Any] = await aiohttp_client(TestServer(app))
    statuses = [(await client.get("/v1/items/RR1", headers=AUTH_A)).status for _ in range(2)]
    assert statuses == [404, 404]  # allowed (the item does not exist)
    refused = await client.get("/v1/items/RR1", headers=AUTH_A)
    assert refused.status == 429
    assert (await refused.json())["code"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 999
    assert (await client.get("/v1/items/RR1", headers=AUTH_B)).status == 404
    assert (await client.get("/healthz")).status == 200  # health is never limited
