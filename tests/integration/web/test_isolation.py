"""Operator isolation on every route: B's credentials never read or change A's data.

The table below must name every route of the app, so a new route fails this test until its
isolation is checked here. A holds two items (one decided, with a notice); B tries each route
against them and gets 401, 403 or 404, or a view with none of A's data; A's items are
unchanged afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from connector.core.model import CustomsDecision, ItemState
from connector.core.notices import ItemNotice, new_notice_id
from connector.ports import CustomsReceipt, DecisionToApply, ReceivedResponse
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.web.conftest import (
    ADMIN_TOKEN,
    AUTH_A,
    AUTH_B,
    OPERATOR_A,
    OPERATOR_B,
    TWO_ITEMS,
    XML,
    ClientFactory,
)
from tests.integration.web.test_amend_api import cancellation

Client = TestClient[web.Request, web.Application]
ITEM = "RR123456785DE"  # A's first item in TWO_ITEMS
Check = Callable[[Client, InMemoryItemStore], Awaitable[None]]


async def _a_world(client: Client, store: InMemoryItemStore, clock: FrozenClock) -> None:
    """A's two items, the first decided HOLD with a notice in A's feed."""
    pushed = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert pushed.status == 200
    claims = await store.claim_for_forwarding("w", 10, 60, clock.now())
    receipt = CustomsReceipt("EU-ICS2", "DB1", clock.now(), b"<r/>")
    await store.record_forwarded(claims, "w", "DB1", b"<s/>", receipt, clock.now())
    first = next(claim for claim in claims if claim.item_id == ITEM)
    notice = ItemNotice(
        notice_id=new_notice_id("EU-ICS2", "R1", first.reference),
        operator_id=OPERATOR_A,
        item_id=ITEM,
        item_reference=first.reference,
        decision=CustomsDecision.HOLD,
        issued_at=clock.now(),
        reason="inspection",
    )
    at = clock.now() + timedelta(seconds=1)
    await store.apply_response(
        ReceivedResponse("EU-ICS2", "R1", at, at, b"<signed/>", 1),
        [DecisionToApply(0, notice, b"<signed notice/>")],
    )


async def _public(client: Client, _: InMemoryItemStore) -> None:
    for path in ("/healthz", "/readyz"):
        body = await (await client.get(path, headers=AUTH_B)).text()
        assert ITEM not in body


async def _push(client: Client, _: InMemoryItemStore) -> None:
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_B)
    assert response.status == 403  # the batch names A


async def _amend(client: Client, store: InMemoryItemStore) -> None:
    body = cancellation(OPERATOR_B, ITEM)
    response = await client.post("/v1/amendments", data=body, headers=XML | AUTH_B)
    entries = (await response.json()).get("entries", [])
    assert all(entry["status"] != "applied" for entry in entries)
    as_a = cancellation(OPERATOR_A, ITEM)
    response = await client.post("/v1/amendments", data=as_a, headers=XML | AUTH_B)
    assert response.status == 403


async def _item(client: Client, _: InMemoryItemStore) -> None:
    theirs = await client.get(f"/v1/items/{ITEM}", headers=AUTH_B)
    missing = await client.get("/v1/items/RR000000000DE", headers=AUTH_B)
    assert theirs.status == missing.status == 404
    assert (await theirs.json())["detail"].replace(ITEM, "X") == (await missing.json())[
        "detail"
    ].replace("RR000000000DE", "X")


async def _notices(client: Client, _: InMemoryItemStore) -> None:
    json = {"Accept": "application/json"}
    mine = await (await client.get("/v1/notices", headers=AUTH_A | json)).json()
    assert len(mine["notices"]) == 1
    theirs = await client.get("/v1/notices?after=0&limit=100", headers=AUTH_B | json)
    assert theirs.status == 200
    assert (await theirs.json())["notices"] == []


async def _answer(client: Client, _: InMemoryItemStore) -> None:
    ns = "urn:ead-connector:referral-answer:1"
    body = (
        f'<ReferralAnswer xmlns="{ns}"><AnswerId>A-1</AnswerId>'
        f"<OperatorId>{OPERATOR_B}</OperatorId><ItemId>{ITEM}</ItemId>"
        "<ReferralReference>RFI-1</ReferralReference><AnsweredAt>2026-11-26T11:02:10Z"
        "</AnsweredAt><Information><FreeText>not yours</FreeText></Information>"
        "</ReferralAnswer>"
    ).encode()
    response = await client.post("/v1/answers", data=body, headers=XML | AUTH_B)
    assert response.status in (403, 404, 409)


async def _customs(client: Client, _: InMemoryItemStore) -> None:
    # Customs authenticates by signature: an operator's token opens nothing here.
    response = await client.post(
        "/v1/customs/EU-ICS2/responses", data=b"<CustomsResponse/>", headers=XML | AUTH_B
    )
    assert response.status in (400, 404)


def _admin(method: str, path: str) -> Check:
    async def check(client: Client, _: InMemoryItemStore) -> None:
        response = await client.request(method, path, headers=AUTH_B)
        assert response.status == 401, path

    return check


async def _operator_admin(client: Client, store: InMemoryItemStore) -> None:
    # B can neither disable A nor take over A's token; A still authenticates afterwards.
    for action in ("disable", "enable", "rotate-token"):
        path = f"/v1/admin/operators/{OPERATOR_A}/{action}"
        assert (await client.post(path, headers=AUTH_B)).status == 401, path
    added = await client.post("/v1/admin/operators", json={"operator_id": "X"}, headers=AUTH_B)
    assert added.status == 401
    assert (await client.get(f"/v1/items/{ITEM}", headers=AUTH_A)).status == 200
    assert [op.record.operator_id for op in await store.admin_operators()] == [
        OPERATOR_A,
        OPERATOR_B,
    ]
    assert store.audit == []


async def _openapi(client: Client, _: InMemoryItemStore) -> None:
    body = await (await client.get("/openapi.json", headers=AUTH_B)).text()
    assert ITEM not in body


ROUTES: dict[str, Check] = {
    "healthz": _public,
    "readyz": _public,
    "push_batch": _push,
    "post_amendment": _amend,
    "get_item": _item,
    "list_notices": _notices,
    "post_answer": _answer,
    "customs_responses": _customs,
    "admin_dead": _admin("GET", "/v1/admin/dead"),
    "admin_dead_replay": _admin("POST", f"/v1/admin/dead/{ITEM}/replay"),
    "admin_schedules": _admin("GET", "/v1/admin/schedules"),
    "admin_schedule_action": _admin("POST", f"/v1/admin/schedules/{OPERATOR_A}/pause"),
    "admin_keys": _admin("GET", "/v1/admin/keys"),
    "admin_key_add": _admin("POST", "/v1/admin/keys"),
    "admin_key_rotate": _admin("POST", "/v1/admin/keys/rotate"),
    "admin_key_activate": _admin("POST", "/v1/admin/keys/k1/activate"),
    "admin_items": _admin("GET", f"/v1/admin/items/{ITEM}"),
    "admin_items_search": _admin("GET", f"/v1/admin/items?operator={OPERATOR_A}"),
    "admin_operators": _admin("GET", "/v1/admin/operators"),
    "admin_operator_add": _operator_admin,
    "admin_operator_action": _operator_admin,
    "admin_audit": _admin("GET", "/v1/admin/audit"),
    "metrics": _admin("GET", "/metrics"),
    "openapi": _openapi,
}


def _route_names(client: Client) -> set[str]:
    return {route.name or "" for route in client.app.router.routes() if route.method != "HEAD"}


async def test_every_route_has_an_isolation_check(client: Client) -> None:
    missing = _route_names(client) - set(ROUTES)
    assert not missing, f"routes without an isolation check: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(ROUTES))
async def test_operator_b_gets_nothing_of_operator_a(
    name: str, make_client: ClientFactory, store: InMemoryItemStore, clock: FrozenClock
) -> None:
    client = await make_client(store)
    if name not in _route_names(client):
        pytest.skip(f"the app has no route {name}")
    await _a_world(client, store, clock)
    before: dict[str, Any] = {
        item.item_id: (item.state, item.version, item.decision)
        for item in await store.find_items(ITEM)
    }
    await ROUTES[name](client, store)
    after = {
        item.item_id: (item.state, item.version, item.decision)
        for item in await store.find_items(ITEM)
    }
    assert after == before
    assert before[ITEM][0] is ItemState.DECIDED
    # The admin token still works where B's did not (the checks are not vacuous).
    if name.startswith("admin_") or name == "metrics":
        assert (
            await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        ).status == 200
