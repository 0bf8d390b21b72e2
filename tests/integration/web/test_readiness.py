"""GET /readyz: database, signing key and schemas; says which check failed and nothing more."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from connector.adapters.keystore import KeyRing
from connector.adapters.web import server
from connector.adapters.web.admin import ADMIN_KEYRING
from connector.flow.accept import AcceptService
from connector.testing import FrozenClock, InMemoryItemStore


async def _client(
    aiohttp_client: Any, store: InMemoryItemStore, clock: FrozenClock, ring: KeyRing
) -> Any:
    app = server.build_web_app(
        store=store, accept=AcceptService(store, clock), clock=clock, max_body_bytes=1 << 16
    )
    app[ADMIN_KEYRING] = ring
    return await aiohttp_client(TestServer(app))


async def test_ready_with_a_valid_signing_key(
    aiohttp_client: Any, store: InMemoryItemStore, tmp_path: Path
) -> None:
    ring = KeyRing.create(tmp_path / "keys", b"readiness test", "ec", "EADC", 30)
    clock = FrozenClock(ring.active.certificate.not_valid_before_utc + timedelta(days=1))
    client = await _client(aiohttp_client, store, clock, ring)
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["checks"] == {"database": "ok", "schemas": "ok", "keys": "ok"}


async def test_not_ready_once_the_signing_certificate_expired(
    aiohttp_client: Any, store: InMemoryItemStore, tmp_path: Path
) -> None:
    ring = KeyRing.create(tmp_path / "keys", b"readiness test", "ec", "EADC", 30)
    clock = FrozenClock(ring.active.certificate.not_valid_after_utc + timedelta(seconds=1))
    client = await _client(aiohttp_client, store, clock, ring)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["keys"] == "expired"
    assert "keys" in body["detail"]
