"""The mock Customs itself: its answers to raw requests, its failure modes and its lifecycle."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from connector.core import signing
from connector.errors import ConfigurationError
from connector.peers.customs import MODES, MockCustoms
from connector.peers.tls import LoopbackPki

from .conftest import DESTINATION, MESSAGES, GatewayFactory, Keys, signed_batch

XML = {"Content-Type": "application/xml"}


async def _post(
    http: aiohttp.ClientSession, customs: MockCustoms, body: bytes, headers: dict[str, str] = XML
) -> tuple[int, dict[str, object], dict[str, str]]:
    async with http.post(customs.declarations_url, data=body, headers=headers) as response:
        text = await response.text()
        problem = json.loads(text) if response.content_type == "application/problem+json" else {}
        return response.status, problem, dict(response.headers)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"<x/>", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"<DeclarationBatch", XML, 400, "xml_malformed"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', XML, 400, "xml_doctype_forbidden"),
        ((MESSAGES / "customs-response.xml").read_bytes(), XML, 400, "invalid_message"),
        ((MESSAGES / "declaration-batch.xml").read_bytes(), XML, 400, "signature_invalid"),
    ],
    ids=["not-xml-media-type", "malformed", "doctype", "another-message", "unsigned"],
)
async def test_unusable_bodies_are_problems_with_codes(
    customs: MockCustoms,
    http: aiohttp.ClientSession,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    """A body that is not a signed declaration batch is a problem+json answer with its code."""
    answer_status, problem, _ = await _post(http, customs, body, headers)
    assert (answer_status, problem["code"]) == (status, code)
    assert customs.refusals == [code]
    assert customs.batches == []


async def test_nothing_is_accepted_when_no_certificate_is_trusted(
    customs: MockCustoms, http: aiohttp.ClientSession, keys: Keys
) -> None:
    """With every connector certificate distrusted, a signed batch is refused."""
    customs.distrust(keys.connector.certificate)
    assert customs.trusted == ()
    status, problem, _ = await _post(http, customs, signed_batch(keys.connector, "DB-1"))
    assert (status, problem["code"]) == (400, "signature_invalid")
    customs.trust(keys.connector.certificate)
    status, _, _ = await _post(http, customs, signed_batch(keys.connector, "DB-1"))
    assert status == 200


async def test_fail_next_queues_modes_before_the_standing_mode(
    customs: MockCustoms, http: aiohttp.ClientSession, keys: Keys
) -> None:
    """fail_next answers the next requests in its modes, in order, then the standing mode."""
    customs.retry_after_s = 7
    customs.fail_next(1, "error")
    customs.fail_next(2, "throttle")
    batch = signed_batch(keys.connector, "DB-1")
    answers = [await _post(http, customs, batch) for _ in range(4)]
    assert [status for status, _, _ in answers] == [500, 429, 429, 200]
    assert answers[1][2]["Retry-After"] == "7"
    assert answers[0][1]["code"] == "internal_error"
    assert customs.requests == 4
    assert customs.batches == ["DB-1"]


async def test_receipt_is_signed_by_the_mock_key(
    customs: MockCustoms, http: aiohttp.ClientSession, keys: Keys
) -> None:
    """The 200 answer is a receipt signed with the mock's key, naming the batch."""
    async with http.post(
        customs.declarations_url, data=signed_batch(keys.connector, "DB-9"), headers=XML
    ) as response:
        assert response.status == 200
        assert response.content_type == "application/xml"
        body = await response.read()
    result = signing.verify(body, signing.VerifyPolicy((keys.customs.certificate,)))
    assert result.fingerprint == keys.customs.fingerprint
    assert b"<DeclarationBatchId>DB-9</DeclarationBatchId>" in body


def test_modes_are_checked(pki: LoopbackPki, keys: Keys) -> None:
    """An unknown mode is a ConfigurationError, for the standing mode and for fail_next."""
    mock = MockCustoms(keys.customs, [], ssl_context=pki.server_context())
    assert "ok" in MODES
    with pytest.raises(ConfigurationError, match="sideways"):
        mock.mode = "sideways"  # type: ignore[assignment]
    with pytest.raises(ConfigurationError):
        mock.fail_next(1, "sideways")  # type: ignore[arg-type]
    assert mock.mode == "ok"


async def test_lifecycle_binds_a_free_port_and_stops(
    pki: LoopbackPki, keys: Keys, gateway_for: GatewayFactory
) -> None:
    """start() binds a free loopback port, refuses a second start, and stop() frees it; the
    server certificate also serves the name localhost."""
    mock = MockCustoms(keys.customs, [keys.connector.certificate], ssl_context=pki.server_context())
    url = await mock.start()
    try:
        assert url == f"https://127.0.0.1:{mock.port}"
        assert mock.port > 0
        with pytest.raises(ConfigurationError):
            await mock.start()
        gateway = gateway_for(mock, url=f"https://localhost:{mock.port}/v1/declarations")
        receipt = await gateway.send(DESTINATION, "DB-1", signed_batch(keys.connector, "DB-1"))
        assert receipt.declaration_batch_id == "DB-1"
        assert mock.received["DB-1"].client_fingerprint is None  # not asked for
    finally:
        await mock.stop()
    await mock.stop()  # stopping twice is harmless


async def test_stop_cuts_off_a_slow_request(
    customs: MockCustoms, http: aiohttp.ClientSession, keys: Keys
) -> None:
    """A request held by the slow mode ends when the mock stops, without an answer."""
    customs.mode = "slow"
    customs.slow_s = 3600
    pending = asyncio.ensure_future(_post(http, customs, signed_batch(keys.connector, "DB-1")))
    while customs.requests == 0:
        await asyncio.sleep(0.01)
    await customs.stop()
    with pytest.raises(aiohttp.ClientError):
        await pending
    assert customs.batches == []
