"""Admin routes: dead letters listed with their reason and replayed; admin token only."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from connector.core.model import ItemState
from connector.core.retry import RetryDecision
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.web.conftest import ADMIN_TOKEN, AUTH_A, AUTH_B

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Client = TestClient[web.Request, web.Application]


async def _kill_one(store: InMemoryItemStore, clock: FrozenClock) -> str:
    """Claim every accepted item and make the first one a dead letter; its reference."""
    claims = await store.claim_for_forwarding("worker", 10, 60, clock.now())
    dead = RetryDecision(retry_at=None, dead=True, reason="customs_refused: schema error")
    await store.record_forward_failure(claims[:1], "worker", "EU: refused", dead, clock.now())
    return claims[0].reference


async def test_dead_letters_are_listed_with_their_reason(
    client: Client, store: InMemoryItemStore, clock: FrozenClock, accepted: dict[Any, Any]
) -> None:
    reference = await _kill_one(store, clock)
    response = await client.get("/v1/admin/dead", headers=ADMIN)
    assert response.status == 200
    body = await response.json()
    assert body["count"] == 1
    (entry,) = body["dead"]
    assert entry["reference"] == reference
    assert entry["operator_id"] == "DE-POST"
    assert entry["reason"] == "customs_refused: schema error"


async def test_replay_by_reference_queues_the_item_again(
    client: Client, store: InMemoryItemStore, clock: FrozenClock, accepted: dict[Any, Any]
) -> None:
    reference = await _kill_one(store, clock)
    response = await client.post(f"/v1/admin/dead/{reference}/replay", headers=ADMIN)
    assert response.status == 200
    assert (await response.json())["state"] == "FORWARDING"
    assert await store.dead_letters() == ()
    again = await store.claim_for_forwarding("worker-2", 10, 60, clock.now())
    assert [claim.reference for claim in again] == [reference]
    (item,) = await store.find_items((await response.json())["item_id"])
    assert item.state is ItemState.FORWARDING
    # A second replay finds no dead letter any more.
    response = await client.post(f"/v1/admin/dead/{reference}/replay", headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["code"] == "not_found"


async def test_replay_by_item_id(
    client: Client, store: InMemoryItemStore, clock: FrozenClock, accepted: dict[Any, Any]
) -> None:
    reference = await _kill_one(store, clock)
    (item,) = [stored for stored in await store.dead_letters() if stored.reference == reference]
    response = await client.post(f"/v1/admin/dead/{item.item_id}/replay", headers=ADMIN)
    assert response.status == 200
    assert (await response.json())["reference"] == reference


async def test_operators_cannot_use_admin_routes(
    client: Client, store: InMemoryItemStore, clock: FrozenClock, accepted: dict[Any, Any]
) -> None:
    reference = await _kill_one(store, clock)
    for headers in (AUTH_A, AUTH_B, {}):
        listed = await client.get("/v1/admin/dead", headers=headers)
        replayed = await client.post(f"/v1/admin/dead/{reference}/replay", headers=headers)
        assert (listed.status, replayed.status) == (401, 401)
    assert [item.reference for item in await store.dead_letters()] == [reference]


async def test_unknown_dead_letter_is_not_found(client: Client) -> None:
    response = await client.post("/v1/admin/dead/EADNOSUCH/replay", headers=ADMIN)
    assert response.status == 404
    assert "no dead letter" in (await response.json())["detail"]
