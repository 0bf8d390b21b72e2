"""Admin API: operators (list, add, disable, enable, rotate token), the audit log of every
admin action, and the item search; admin token only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters.keystore import KeyRing
from connector.adapters.scheduler import IntervalSchedule, PullScheduler
from connector.adapters.sources import DirectorySource
from connector.adapters.web import server
from connector.adapters.web.admin import ADMIN_CHANNELS, ADMIN_KEYRING, ADMIN_SCHEDULER
from connector.adapters.web.admin import OperatorChannels as Channels
from connector.core.retry import RetryDecision
from connector.flow.accept import AcceptService
from connector.flow.pull import PullService
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.web.conftest import (
    ADMIN_TOKEN,
    AUTH_A,
    AUTH_B,
    OPERATOR_A,
    OPERATOR_B,
    TOKEN_A,
    TOKEN_B,
    TWO_ITEMS,
    XML,
    operators,
    sha256_hex,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Client = TestClient[web.Request, web.Application]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _authenticates(client: Client, token: str) -> bool:
    """Whether ``token`` opens an operator route (404 for an unknown item: authenticated)."""
    status = (await client.get("/v1/items/RR000000000DE", headers=bearer(token))).status
    assert status in (401, 404)
    return status == 404


async def _audit(client: Client, after: int = 0) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/admin/audit?after={after}", headers=ADMIN)
    assert response.status == 200
    entries: list[dict[str, Any]] = (await response.json())["entries"]
    return entries


# -- operators ------------------------------------------------------------------------------


def _app(store: InMemoryItemStore, clock: FrozenClock) -> web.Application:
    return server.build_web_app(
        store=store,
        accept=AcceptService(store, clock),
        clock=clock,
        max_body_bytes=1 << 20,
        admin_token_sha256=sha256_hex(ADMIN_TOKEN),
    )


async def test_operators_are_listed_with_fingerprints_never_credentials(
    aiohttp_client: Any, store: InMemoryItemStore, clock: FrozenClock
) -> None:
    app = _app(store, clock)
    app[ADMIN_CHANNELS] = {OPERATOR_A: Channels(pull=True, webhook=True)}
    client: Client = await aiohttp_client(TestServer(app))
    response = await client.get("/v1/admin/operators", headers=ADMIN)
    assert response.status == 200
    text = await response.text()
    for secret in (TOKEN_A, TOKEN_B, sha256_hex(TOKEN_A), sha256_hex(TOKEN_B)):
        assert secret not in text
    a, b = (await response.json())["operators"]
    assert (a["operator_id"], a["enabled"], a["managed_by"], a["auth"]) == (
        OPERATOR_A,
        True,
        "config",
        ["token"],
    )
    assert a["token_fingerprint"] == sha256_hex(TOKEN_A)[:8]
    assert (a["pull"], a["webhook"], b["pull"], b["webhook"]) == (True, True, False, False)
    assert b["operator_id"] == OPERATOR_B


async def test_an_added_operator_authenticates_with_the_token_shown_once(
    client: Client, store: InMemoryItemStore
) -> None:
    response = await client.post(
        "/v1/admin/operators", json={"operator_id": "AT-POST", "name": "Post AG"}, headers=ADMIN
    )
    assert response.status == 201
    body = await response.json()
    token = body["token"]
    assert len(token) >= 40
    assert (body["managed_by"], body["name"], body["auth"]) == ("admin", "Post AG", ["token"])
    assert await _authenticates(client, token)
    assert store.operators["AT-POST"].token_sha256 == sha256_hex(token)  # only the digest
    # Listed afterwards without the token.
    listed = await (await client.get("/v1/admin/operators", headers=ADMIN)).text()
    assert token not in listed
    assert "AT-POST" in listed
    [entry] = await _audit(client)
    assert (entry["actor"], entry["action"], entry["target"]) == ("api", "operator.add", "AT-POST")
    assert entry["request_id"] == response.headers["X-Request-Id"]
    assert token not in json.dumps(entry)
    assert sha256_hex(token) not in json.dumps(entry)
    assert entry["detail"]["token_fingerprint"] == sha256_hex(token)[:8]


async def test_an_operator_with_only_a_client_certificate(client: Client) -> None:
    fingerprint = ":".join(["AB"] * 32)
    response = await client.post(
        "/v1/admin/operators",
        json={"operator_id": "CERT-ONLY", "client_cert_sha256": fingerprint, "issue_token": False},
        headers=ADMIN,
    )
    assert response.status == 201
    body = await response.json()
    assert "token" not in body
    assert (body["auth"], body["cert_fingerprint"]) == (["client_cert"], "abababab")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"operator_id": OPERATOR_A}, 409, "illegal_transition"),
        ({"operator_id": "has space"}, 400, "invalid_message"),
        ({}, 400, "invalid_message"),
        ({"operator_id": "X", "token": "mine"}, 400, "invalid_message"),
        ({"operator_id": "X", "issue_token": False}, 400, "invalid_message"),
        ({"operator_id": "X", "issue_token": "yes"}, 400, "invalid_message"),
        ({"operator_id": "X", "client_cert_sha256": "12"}, 400, "invalid_message"),
        ({"operator_id": "X", "name": "n" * 201}, 400, "invalid_message"),
        (["X"], 400, "invalid_message"),
    ],
)
async def test_a_refused_add_changes_nothing(
    client: Client, store: InMemoryItemStore, body: object, status: int, code: str
) -> None:
    response = await client.post("/v1/admin/operators", json=body, headers=ADMIN)
    assert response.status == status
    assert (await response.json())["code"] == code
    assert sorted(store.operators) == [OPERATOR_A, OPERATOR_B]
    assert store.audit == []


async def test_a_rotated_token_replaces_the_old_one_at_once(
    client: Client, store: InMemoryItemStore
) -> None:
    assert await _authenticates(client, TOKEN_A)
    response = await client.post(f"/v1/admin/operators/{OPERATOR_A}/rotate-token", headers=ADMIN)
    assert response.status == 200
    new = (await response.json())["token"]
    assert not await _authenticates(client, TOKEN_A)
    assert await _authenticates(client, new)
    assert await _authenticates(client, TOKEN_B)  # the other operator is untouched
    # A restart syncs the configuration again: the configured (old) token stays ignored.
    assert await store.upsert_operators(operators()) == (OPERATOR_A,)
    assert not await _authenticates(client, TOKEN_A)
    assert await _authenticates(client, new)
    [entry] = await _audit(client)
    assert entry["action"] == "operator.rotate_token"
    assert entry["detail"] == {
        "token_fingerprint": sha256_hex(new)[:8],
        "previous_fingerprint": sha256_hex(TOKEN_A)[:8],
    }
    for secret in (new, TOKEN_A, sha256_hex(new), sha256_hex(TOKEN_A)):
        assert secret not in json.dumps(entry)


async def test_a_disabled_operator_gets_401_until_enabled_even_after_a_restart(
    client: Client, store: InMemoryItemStore
) -> None:
    disabled = await client.post(f"/v1/admin/operators/{OPERATOR_A}/disable", headers=ADMIN)
    assert disabled.status == 200
    assert (await disabled.json())["enabled"] is False
    pushed = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert pushed.status == 401
    await store.upsert_operators(operators())  # restart: the configuration says enabled
    assert not await _authenticates(client, TOKEN_A)
    enabled = await client.post(f"/v1/admin/operators/{OPERATOR_A}/enable", headers=ADMIN)
    assert (await enabled.json())["enabled"] is True
    assert await _authenticates(client, TOKEN_A)
    assert [entry["action"] for entry in await _audit(client)] == [
        "operator.disable",
        "operator.enable",
    ]


async def test_actions_on_an_unknown_operator_are_404(client: Client) -> None:
    for action in ("disable", "enable", "rotate-token"):
        response = await client.post(f"/v1/admin/operators/NOPE/{action}", headers=ADMIN)
        assert response.status == 404
    assert await _audit(client) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/operators"),
        ("POST", "/v1/admin/operators"),
        ("POST", f"/v1/admin/operators/{OPERATOR_B}/disable"),
        ("POST", f"/v1/admin/operators/{OPERATOR_B}/enable"),
        ("POST", f"/v1/admin/operators/{OPERATOR_B}/rotate-token"),
        ("GET", "/v1/admin/audit"),
        ("GET", "/v1/admin/items"),
    ],
)
async def test_operator_tokens_and_no_token_get_401(
    client: Client, store: InMemoryItemStore, method: str, path: str
) -> None:
    for headers in (AUTH_A, AUTH_B, {}):
        response = await client.request(method, path, json={"operator_id": "X"}, headers=headers)
        assert response.status == 401
    assert await _authenticates(client, TOKEN_B)
    assert store.audit == []


# -- the audit log of the other admin actions ---------------------------------------------


@pytest.fixture
async def full_client(
    aiohttp_client: Any, store: InMemoryItemStore, clock: FrozenClock, tmp_path: Path
) -> Client:
    """The admin API with a pull schedule for A and a signing key ring."""
    app = _app(store, clock)
    (tmp_path / "drop").mkdir()
    app[ADMIN_SCHEDULER] = PullScheduler(
        store,
        PullService(store, AcceptService(store, clock), clock),
        {OPERATOR_A: DirectorySource(tmp_path / "drop")},
        {OPERATOR_A: IntervalSchedule(300)},
        clock,
        "replica-1",
    )
    app[ADMIN_KEYRING] = KeyRing.create(tmp_path / "keys", b"audit passphrase", "ec", "EADC", 30)
    client: Client = await aiohttp_client(TestServer(app))
    return client


async def test_every_admin_change_is_audited_and_reads_are_not(
    full_client: Client, store: InMemoryItemStore, clock: FrozenClock
) -> None:
    client = full_client
    pushed = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert pushed.status == 200
    claims = await store.claim_for_forwarding("w", 10, 60, clock.now())
    dead = RetryDecision(retry_at=None, dead=True, reason="customs_refused: no")
    await store.record_forward_failure(claims[:1], "w", "refused", dead, clock.now())
    reference = claims[0].reference

    calls = [
        ("POST", f"/v1/admin/dead/{reference}/replay"),
        ("POST", f"/v1/admin/schedules/{OPERATOR_A}/pause"),
        ("POST", f"/v1/admin/schedules/{OPERATOR_A}/resume"),
        ("POST", f"/v1/admin/schedules/{OPERATOR_A}/trigger"),
        ("POST", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys/rotate"),
    ]
    for method, path in calls:
        response = await client.request(method, path, headers=ADMIN)
        assert response.status in (200, 201), path
    ring = client.app[ADMIN_KEYRING]
    assert ring is not None
    first_key = ring.entries()[0].key_id
    activated = await client.post(f"/v1/admin/keys/{first_key}/activate", headers=ADMIN)
    assert activated.status == 200
    for path in ("/v1/admin/dead", "/v1/admin/schedules", "/v1/admin/keys", "/v1/admin/items"):
        assert (await client.get(path, headers=ADMIN)).status == 200

    entries = await _audit(client)
    assert [(entry["action"], entry["actor"]) for entry in entries] == [
        ("dead.replay", "api"),
        ("schedule.pause", "api"),
        ("schedule.resume", "api"),
        ("schedule.trigger", "api"),
        ("key.add", "api"),
        ("key.rotate", "api"),
        ("key.activate", "api"),
    ]
    assert entries[0]["target"] == reference
    assert entries[0]["detail"] == {"operator_id": OPERATOR_A, "item_id": claims[0].item_id}
    assert entries[1]["target"] == f"pull:{OPERATOR_A}"
    assert entries[6]["target"] == first_key
    assert all(entry["request_id"] for entry in entries)
    assert len({entry["id"] for entry in entries}) == len(entries)
    text = json.dumps(entries)
    assert ADMIN_TOKEN not in text
    assert "passphrase" not in text


async def test_the_audit_log_pages_after_an_id(client: Client) -> None:
    for action in ("disable", "enable", "disable"):
        await client.post(f"/v1/admin/operators/{OPERATOR_B}/{action}", headers=ADMIN)
    page = await (await client.get("/v1/admin/audit?limit=2", headers=ADMIN)).json()
    assert [entry["action"] for entry in page["entries"]] == [
        "operator.disable",
        "operator.enable",
    ]
    rest = await (
        await client.get(f"/v1/admin/audit?after={page['next_after']}", headers=ADMIN)
    ).json()
    assert [entry["action"] for entry in rest["entries"]] == ["operator.disable"]
    empty = await (
        await client.get(f"/v1/admin/audit?after={rest['next_after']}", headers=ADMIN)
    ).json()
    assert (empty["entries"], empty["next_after"]) == ([], rest["next_after"])
    for query in ("after=x", "limit=0", "limit=1001", "limit=x"):
        response = await client.get(f"/v1/admin/audit?{query}", headers=ADMIN)
        assert response.status == 400, query


# -- item search ----------------------------------------------------------------------------


async def test_items_are_searched_and_paged_newest_first(
    client: Client, store: InMemoryItemStore, clock: FrozenClock, accepted: dict[Any, Any]
) -> None:
    found = await (
        await client.get(f"/v1/admin/items?operator={OPERATOR_A}&state=accepted", headers=ADMIN)
    ).json()
    assert found["count"] == 2
    assert found["next_after"] is None
    assert {item["operator_id"] for item in found["items"]} == {OPERATOR_A}
    assert {item["state"] for item in found["items"]} == {"ACCEPTED"}

    first = await (await client.get("/v1/admin/items?limit=1", headers=ADMIN)).json()
    assert first["count"] == 1
    assert first["next_after"]
    second = await (
        await client.get(f"/v1/admin/items?limit=1&after={first['next_after']}", headers=ADMIN)
    ).json()
    assert second["count"] == 1
    assert {first["items"][0]["reference"], second["items"][0]["reference"]} == {
        item["reference"] for item in found["items"]
    }
    third = await (
        await client.get(f"/v1/admin/items?limit=1&after={second['next_after']}", headers=ADMIN)
    ).json()
    assert (third["count"], third["next_after"]) == (0, None)

    for query, count in (
        (f"operator={OPERATOR_B}", 0),
        ("decision=RELEASE", 0),
        ("state=FORWARDED", 0),
        (f"from={clock.now().isoformat().replace('+', '%2B')}", 2),
        (f"to={clock.now().isoformat().replace('+', '%2B')}", 0),
        ("from=2026-11-27", 0),
        ("to=2026-11-27", 2),
    ):
        body = await (await client.get(f"/v1/admin/items?{query}", headers=ADMIN)).json()
        assert body["count"] == count, query


@pytest.mark.parametrize(
    "query",
    ["state=SLEEPING", "decision=MAYBE", "from=yesterday", "limit=0", "limit=x", "after=nope"],
)
async def test_a_bad_search_is_400(client: Client, query: str) -> None:
    response = await client.get(f"/v1/admin/items?{query}", headers=ADMIN)
    assert response.status == 400
    assert (await response.json())["code"] in ("invalid_message", "unknown_code")
