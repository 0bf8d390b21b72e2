"""schemathesis against the running app: no 5xx, and no answer that contradicts /openapi.json.

The app runs on loopback (in-memory store, two operators, the admin token) in a thread of
its own; the document is the one the app serves. Each operation is called with an operator's
token and then, by schemathesis' own checks, without credentials (the routes that declare
security must refuse that).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from connector.adapters.web import server
from connector.adapters.web.openapi import openapi_document
from connector.flow.accept import AcceptService
from connector.testing import FrozenClock, InMemoryItemStore
from tests.e2e.test_service import free_port
from tests.integration.web.conftest import ADMIN_TOKEN, TOKEN_A, operators, sha256_hex


def _app() -> web.Application:
    store, clock = InMemoryItemStore(), FrozenClock()
    asyncio.run(store.upsert_operators(operators()))
    return server.build_web_app(
        store=store,
        accept=AcceptService(store, clock),
        clock=clock,
        max_body_bytes=1 << 20,
        admin_token_sha256=sha256_hex(ADMIN_TOKEN),
    )


APP = _app()
PORT = free_port()
BASE_URL = f"http://127.0.0.1:{PORT}"
schema = schemathesis.openapi.from_dict(openapi_document(APP))


@pytest.fixture(scope="module", autouse=True)
def live() -> Iterator[None]:
    app, port = APP, PORT
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    yield
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_contradiction(case: schemathesis.Case) -> None:
    # An XML body is defined by its XSD in xsd/, which OpenAPI cannot express: generated
    # bodies are not valid messages, so "valid data accepted" does not apply to them (every
    # other check does, 5xx first).
    xml_body = case.media_type == "application/xml"
    case.call_and_validate(
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {TOKEN_A}"},
        excluded_checks=[positive_data_acceptance] if xml_body else None,
    )
