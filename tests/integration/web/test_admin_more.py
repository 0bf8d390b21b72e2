"""Admin routes for schedules, signing keys and items; admin token only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters.keystore import KeyRing
from connector.adapters.scheduler import IntervalSchedule, PullScheduler
from connector.adapters.sources import DirectorySource
from connector.adapters.web import server
from connector.adapters.web.admin import ADMIN_KEYRING, ADMIN_SCHEDULER
from connector.flow.accept import AcceptService
from connector.flow.pull import PullService
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.web.conftest import (
    ADMIN_TOKEN,
    AUTH_A,
    OPERATOR_A,
    TWO_ITEMS,
    XML,
    sha256_hex,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def admin_client(
    aiohttp_client: Any, store: InMemoryItemStore, clock: FrozenClock, tmp_path: Path
) -> tuple[Client, KeyRing]:
    accept = AcceptService(store, clock)
    app = server.build_web_app(
        store=store,
        accept=accept,
        clock=clock,
        max_body_bytes=1 << 20,
        admin_token_sha256=sha256_hex(ADMIN_TOKEN),
    )
    (tmp_path / "drop").mkdir()
    app[ADMIN_SCHEDULER] = PullScheduler(
        store,
        PullService(store, accept, clock),
        {OPERATOR_A: DirectorySource(tmp_path / "drop")},
        {OPERATOR_A: IntervalSchedule(300)},
        clock,
        "replica-1",
    )
    ring = KeyRing.create(tmp_path / "keys", b"admin test passphrase", "ec", "EADC", 30)
    app[ADMIN_KEYRING] = ring
    client: Client = await aiohttp_client(TestServer(app))
    return client, ring


async def test_schedules_list_pause_resume_trigger(
    admin_client: tuple[Client, KeyRing], store: InMemoryItemStore
) -> None:
    client, _ = admin_client
    listed = await (await client.get("/v1/admin/schedules", headers=ADMIN)).json()
    (entry,) = listed["schedules"]
    assert (entry["operator_id"], entry["paused"]) == (OPERATOR_A, False)
    assert entry["next_run"] is not None
    paused = await client.post(f"/v1/admin/schedules/{OPERATOR_A}/pause", headers=ADMIN)
    assert paused.status == 200
    listed = await (await client.get("/v1/admin/schedules", headers=ADMIN)).json()
    assert listed["schedules"][0]["paused"] is True
    await client.post(f"/v1/admin/schedules/{OPERATOR_A}/resume", headers=ADMIN)
    assert (await store.schedule_states())[f"pull:{OPERATOR_A}"].paused is False
    triggered = await client.post(f"/v1/admin/schedules/{OPERATOR_A}/trigger", headers=ADMIN)
    outcome = (await triggered.json())["outcome"]
    assert outcome["operator_id"] == OPERATOR_A
    assert outcome["error"] is None
    unknown = await client.post("/v1/admin/schedules/NOPE/pause", headers=ADMIN)
    assert unknown.status == 404


async def test_keys_add_activate_rotate(admin_client: tuple[Client, KeyRing]) -> None:
    client, ring = admin_client
    first = ring.active_id
    listed = await (await client.get("/v1/admin/keys", headers=ADMIN)).json()
    assert listed["active"] == first
    assert [key["state"] for key in listed["keys"]] == ["active"]
    added = await client.post("/v1/admin/keys", json={"days": 60}, headers=ADMIN)
    assert added.status == 201
    new_id = (await added.json())["added"]
    assert ring.active_id == first  # published only
    activated = await client.post(f"/v1/admin/keys/{new_id}/activate", headers=ADMIN)
    assert (await activated.json())["active"] == new_id
    assert ring.active_id == new_id
    rotated = await client.post("/v1/admin/keys/rotate", headers=ADMIN)
    body = await rotated.json()
    assert body["previous"] == new_id
    assert ring.active_id == body["active"] not in (first, new_id)
    states = sorted(key["state"] for key in body["keys"])
    assert states == ["active", "published", "published"]
    bad = await client.post("/v1/admin/keys", json={"colour": "red"}, headers=ADMIN)
    assert bad.status == 400
    assert (await bad.json())["code"] == "invalid_message"
    missing = await client.post("/v1/admin/keys/no-such-key/activate", headers=ADMIN)
    assert missing.status == 404


async def test_items_of_every_operator_with_events(
    admin_client: tuple[Client, KeyRing],
) -> None:
    client, _ = admin_client
    pushed = await client.post(
        "/v1/batches",
        data=TWO_ITEMS.read_bytes(),
        headers=XML | AUTH_A | {"Accept": "application/json"},
    )
    item_id = (await pushed.json())["items"][0]["item_id"]
    found = await client.get(f"/v1/admin/items/{item_id}", headers=ADMIN)
    assert found.status == 200
    (item,) = (await found.json())["items"]
    assert (item["operator_id"], item["item_id"], item["state"]) == (
        OPERATOR_A,
        item_id,
        "ACCEPTED",
    )
    assert [event["to"] for event in item["events"]] == ["RECEIVED", "ACCEPTED"]
    missing = await client.get("/v1/admin/items/NOSUCH", headers=ADMIN)
    assert missing.status == 404


async def test_admin_routes_refuse_operator_tokens(admin_client: tuple[Client, KeyRing]) -> None:
    client, ring = admin_client
    active = ring.active_id
    for method, path in (
        ("GET", "/v1/admin/schedules"),
        ("POST", f"/v1/admin/schedules/{OPERATOR_A}/pause"),
        ("GET", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys/rotate"),
        ("GET", "/v1/admin/items/RR1"),
    ):
        response = await client.request(method, path, headers=AUTH_A)
        assert response.status == 401, path
    assert ring.active_id == active
