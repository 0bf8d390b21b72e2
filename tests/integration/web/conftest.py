"""The web app over the in-memory store, with two operators and their bearer tokens."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters.web import server
from connector.flow.accept import AcceptService
from connector.ports import OperatorRecord
from connector.testing import FrozenClock, InMemoryItemStore

DATA = Path(__file__).resolve().parents[2] / "data"
TWO_ITEMS = DATA / "valid" / "two_items.xml"

OPERATOR_A = "DE-POST"  # the operator named in tests/data/valid/two_items.xml
OPERATOR_B = "FR-POST"
TOKEN_A = "token-of-de-post-0123456789abcdef"
TOKEN_B = "token-of-fr-post-fedcba9876543210"
ADMIN_TOKEN = "admin-token-0123456789"
MAX_BODY_BYTES = 64 * 1024

XML = {"Content-Type": "application/xml"}
AUTH_A = {"Authorization": f"Bearer {TOKEN_A}"}
AUTH_B = {"Authorization": f"Bearer {TOKEN_B}"}

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def sha256_hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def operators(cert_a: bytes | None = None) -> tuple[OperatorRecord, ...]:
    """Operators A and B with token digests; A also with a client certificate if given."""
    return (
        OperatorRecord(
            OPERATOR_A,
            "Deutsche Post",
            token_sha256=sha256_hex(TOKEN_A),
            cert_sha256=sha256_hex(cert_a) if cert_a is not None else None,
        ),
        OperatorRecord(OPERATOR_B, "La Poste", token_sha256=sha256_hex(TOKEN_B)),
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def store() -> InMemoryItemStore:
    store = InMemoryItemStore()
    await store.upsert_operators(operators())
    return store


@pytest.fixture
def make_client(aiohttp_client: Any, clock: FrozenClock) -> ClientFactory:
    """Start the app over a given store on loopback (with another body limit, over TLS)."""

    async def make(
        store: InMemoryItemStore,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        admin_token_sha256: str | None = sha256_hex(ADMIN_TOKEN),
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> TestClient[web.Request, web.Application]:
        app = server.build_web_app(
            store=store,
            accept=AcceptService(store, clock),
            clock=clock,
            max_body_bytes=max_body_bytes,
            admin_token_sha256=admin_token_sha256,
        )
        app.add_routes(extra_routes)
        # aiohttp_client(app, server_kwargs=...) drops "ssl"; a started server keeps it.
        test_server = TestServer(app)
        await test_server.start_server(ssl=ssl_context)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(test_server)
        return client

    return make


@pytest.fixture
async def client(
    make_client: ClientFactory, store: InMemoryItemStore
) -> TestClient[web.Request, web.Application]:
    return await make_client(store)


@pytest.fixture
async def accepted(
    client: TestClient[web.Request, web.Application], store: InMemoryItemStore
) -> dict[Any, Any]:
    """Operator A's two items, pushed and stored; a snapshot of the store's items after it."""
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert response.status == 200
    assert len(store.items) == 2
    return dict(store.items)
