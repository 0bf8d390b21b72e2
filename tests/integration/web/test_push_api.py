"""The operator push API over aiohttp on loopback: intake, acknowledgements, errors, scoping."""

from __future__ import annotations

import gzip
import io
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient
from lxml import etree
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from connector.adapters.web import auth, server
from connector.core.model import ItemState
from connector.core.schemas import MessageKind, default_registry
from connector.errors import StoreUnavailable
from connector.sample import generate_batch
from connector.testing import InMemoryItemStore

from .conftest import (
    ADMIN_TOKEN,
    AUTH_A,
    AUTH_B,
    DATA,
    MAX_BODY_BYTES,
    OPERATOR_A,
    OPERATOR_B,
    TOKEN_A,
    TWO_ITEMS,
    XML,
    ClientFactory,
    operators,
    sha256_hex,
)

Client = TestClient[web.Request, web.Application]
JSON_ACK = {"Accept": "application/json"}
ACK_NS = {"a": MessageKind.ACKNOWLEDGEMENT.namespace}
ATTACKS = sorted((DATA / "attacks").glob("*.xml"))


async def push(client: Client, data: object, headers: dict[str, str] | None = None) -> Any:
    """POST ``data`` to /v1/batches as operator A with a JSON acknowledgement."""
    return await client.post(
        "/v1/batches", data=data, headers=XML | AUTH_A | JSON_ACK | (headers or {})
    )


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Check ``response`` is a problem+json of ``status`` and ``code``; return its body."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert response.headers["X-Request-Id"]
    body: dict[str, Any] = json.loads(await response.text())
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:ead-connector:problem:{code}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


# --- acknowledgements -----------------------------------------------------------------------


async def test_push_answers_xml_acknowledgement_valid_against_its_schema(
    client: Client, store: InMemoryItemStore
) -> None:
    """A valid batch without an Accept header is acknowledged in XML that passes the XSD."""
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A)
    assert response.status == 200
    assert response.content_type == "application/xml"
    root = etree.fromstring(await response.read())
    default_registry().lxml(MessageKind.ACKNOWLEDGEMENT).assertValid(root)
    assert root.findtext("a:OperatorId", namespaces=ACK_NS) == OPERATOR_A
    items = root.findall("a:Items/a:Item", namespaces=ACK_NS)
    assert [item.findtext("a:Status", namespaces=ACK_NS) for item in items] == ["accepted"] * 2
    references = [item.findtext("a:Reference", namespaces=ACK_NS) or "" for item in items]
    assert sorted(references) == sorted(item.reference for item in store.items.values())


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/xml", "application/xml"),
        ("text/xml", "application/xml"),
        ("*/*", "application/xml"),
        ("application/json, application/xml", "application/xml"),
        ("application/json", "application/json"),
        ("application/xml;q=0.5, application/json", "application/json"),
        ("text/html", "application/xml"),
    ],
)
async def test_accept_header_chooses_the_acknowledgement_format(
    client: Client, accept: str, expected: str
) -> None:
    """JSON comes back only when Accept prefers it; XML on ties and unusable headers."""
    response = await client.post(
        "/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | AUTH_A | {"Accept": accept}
    )
    assert response.status == 200
    assert response.content_type == expected
    assert response.headers["Vary"] == "Accept"


async def test_json_acknowledgement_has_the_design_shape(
    client: Client, store: InMemoryItemStore
) -> None:
    """The JSON acknowledgement lists every item with status, reference and errors."""
    response = await push(client, TWO_ITEMS.read_bytes())
    assert response.status == 200
    assert response.content_type == "application/json"
    ack = await response.json()
    assert ack["batch_id"] == "DE-2026-11-26-0001"
    assert [item["item_id"] for item in ack["items"]] == ["RR123456785DE", "LX473124829CN"]
    for item in ack["items"]:
        assert item["status"] == "accepted"
        assert item["errors"] == []
        assert store.items[(OPERATOR_A, item["item_id"])].reference == item["reference"]


async def test_identical_resend_is_idempotent(client: Client, store: InMemoryItemStore) -> None:
    """Resending a batch gives the same statuses and references and stores nothing twice."""
    first = await (await push(client, TWO_ITEMS.read_bytes())).json()
    events_before = {ref: list(events) for ref, events in store.events.items()}
    second = await (await push(client, TWO_ITEMS.read_bytes())).json()
    assert first["items"] == second["items"]
    assert len(store.items) == 2
    assert len(store.outbox) == 2
    assert store.events == events_before


async def test_invalid_items_are_rejected_and_the_others_accepted(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """Items with faults come back rejected with their codes; the good ones are stored."""
    batch = generate_batch(10, invalid_ratio=0.3, seed=1, operator_id=OPERATOR_A)
    assert batch.faults
    response = await push(client, batch.xml)
    assert response.status == 200
    items = (await response.json())["items"]
    faults = {fault.index: fault.code for fault in batch.faults}
    assert len(items) == batch.item_count
    for item in items:
        if item["item_index"] in faults:
            assert item["status"] == "rejected"
            assert item["reference"] is None
            assert faults[item["item_index"]] in {e["code"] for e in item["errors"]}
        else:
            assert item["status"] == "accepted"
            assert (OPERATOR_A, item["item_id"]) in store.items
    assert len(store.items) == len(accepted) + batch.item_count - len(faults)
    assert accepted.items() <= store.items.items()


async def test_changed_item_with_same_id_is_an_item_conflict(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """A changed item under a known id is rejected with item_conflict and changes nothing."""
    changed = (
        TWO_ITEMS.read_bytes()
        .replace(b"DE-2026-11-26-0001", b"DE-2026-11-26-0002")
        .replace(b"Invoice INV-2026-00421", b"Invoice INV-2026-00422")
    )
    response = await push(client, changed)
    assert response.status == 200
    first, second = (await response.json())["items"]
    assert first["status"] == "rejected"
    assert [e["code"] for e in first["errors"]] == ["item_conflict"]
    assert second["status"] == "accepted"
    assert store.items == accepted


async def test_thousand_item_batch_is_accepted_whole(
    make_client: ClientFactory, store: InMemoryItemStore
) -> None:
    """A 1,000-item batch (about 1.4 MB) goes through in one push, every item stored."""
    batch = generate_batch(1000, seed=2, operator_id=OPERATOR_A)
    client = await make_client(store, max_body_bytes=4 * 1024 * 1024)
    # A BytesIO, not bytes: aiohttp's client warns about sending over 1 MB of raw bytes.
    response = await push(client, io.BytesIO(batch.xml))
    assert response.status == 200
    items = (await response.json())["items"]
    assert [item["status"] for item in items] == ["accepted"] * 1000
    assert len(store.items) == 1000


# --- whole-batch failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN_A}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {'x' * 2000}"},
    ],
    ids=["none", "wrong-token", "basic-scheme", "empty-bearer", "huge-token"],
)
async def test_push_without_valid_credentials_is_401(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any], headers: dict[str, str]
) -> None:
    """Missing or wrong credentials get a 401 problem with a Bearer challenge."""
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=XML | headers)
    body = await problem(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert TOKEN_A not in json.dumps(body)
    assert store.items == accepted


async def test_admin_token_is_not_an_operator_token(
    client: Client, store: InMemoryItemStore
) -> None:
    """The admin token does not authenticate an operator."""
    headers = XML | {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=headers)
    await problem(response, 401, "not_authenticated")
    assert store.items == {}


async def test_disabled_operator_is_401(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """An operator switched off in the configuration can no longer push."""
    a, b = operators()
    await store.upsert_operators((replace(a, enabled=False), b))
    response = await push(client, TWO_ITEMS.read_bytes())
    await problem(response, 401, "not_authenticated")
    assert store.items == accepted


async def test_batch_naming_another_operator_is_403(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """Operator B cannot push a batch whose header names operator A; nothing is stored."""
    batch = generate_batch(3, seed=5, operator_id=OPERATOR_A)
    response = await client.post("/v1/batches", data=batch.xml, headers=XML | AUTH_B)
    body = await problem(response, 403, "forbidden")
    assert OPERATOR_B in body["detail"]
    assert store.items == accepted


async def test_body_over_limit_by_content_length_is_413(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """A declared Content-Length over the limit is refused before the body is read."""
    batch = generate_batch(100, seed=3, operator_id=OPERATOR_A)
    assert len(batch.xml) > MAX_BODY_BYTES
    response = await push(client, batch.xml)
    body = await problem(response, 413, "xml_too_large")
    assert body["limit"] == MAX_BODY_BYTES
    assert body["size"] == len(batch.xml)
    assert store.items == accepted


async def test_chunked_body_over_limit_is_413(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """A chunked body without Content-Length is cut off once it passes the limit."""
    batch = generate_batch(100, seed=3, operator_id=OPERATOR_A)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(batch.xml), 8192):
            yield batch.xml[start : start + 8192]

    response = await push(client, chunks())
    assert "Content-Length" not in response.request_info.headers
    body = await problem(response, 413, "xml_too_large")
    assert body["limit"] == MAX_BODY_BYTES
    assert store.items == accepted


async def test_chunked_body_under_limit_is_accepted(
    client: Client, store: InMemoryItemStore
) -> None:
    """A chunked body within the limit is read whole and accepted."""
    data = TWO_ITEMS.read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    response = await push(client, chunks())
    assert response.status == 200
    assert len(store.items) == 2


async def test_compressed_body_inflating_over_limit_is_413(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """A gzip body that is small on the wire but inflates past the limit is refused."""
    batch = generate_batch(100, seed=3, operator_id=OPERATOR_A)
    packed = gzip.compress(batch.xml)
    assert len(packed) < MAX_BODY_BYTES < len(batch.xml)
    response = await push(client, packed, {"Content-Encoding": "gzip"})
    await problem(response, 413, "xml_too_large")
    assert store.items == accepted


async def _read_whole_body(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def test_aiohttp_body_limit_is_an_xml_too_large_problem(
    make_client: ClientFactory, store: InMemoryItemStore
) -> None:
    """A route that reads with request.read() hits client_max_size: the same 413 problem."""
    client = await make_client(store, extra_routes=(web.post("/echo", _read_whole_body),))
    response = await client.post("/echo", data=b"x" * (MAX_BODY_BYTES + 1))
    body = await problem(response, 413, "xml_too_large")
    assert body["limit"] == MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ((DATA / "attacks" / "not_wellformed.xml").read_bytes(), "xml_malformed"),
        ((DATA / "attacks" / "doctype_only.xml").read_bytes(), "xml_doctype_forbidden"),
        (b"", "xml_malformed"),
        (b'<?xml version="1.0"?><Other xmlns="urn:x"/>', "message_kind_unknown"),
    ],
    ids=["not-well-formed", "doctype", "empty", "other-root"],
)
async def test_unusable_batch_is_400(
    client: Client,
    store: InMemoryItemStore,
    accepted: dict[Any, Any],
    data: bytes,
    code: str,
) -> None:
    """A batch that cannot be read as a whole is a 400 problem with its stable code."""
    response = await push(client, data)
    await problem(response, 400, code)
    assert store.items == accepted


@pytest.mark.parametrize("path", ATTACKS, ids=lambda path: path.name)
async def test_attack_corpus_is_refused_without_leaking(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any], path: Path
) -> None:
    """Every attack file is refused as a whole with a 400 problem and leaks no file content."""
    response = await push(client, path.read_bytes())
    text = await response.text()
    assert "root:" not in text
    body = await problem(response, 400, json.loads(text)["code"])
    if path.name == "xinclude.xml":
        # Parsed as inert data, then refused by the envelope schema.
        assert body["code"] == "envelope_invalid"
    else:
        assert body["code"].startswith("xml_")
    assert store.items == accepted


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/json",
        "application/xml; charset=iso-8859-1",
        "application/x-www-form-urlencoded",
        None,
    ],
)
async def test_push_with_wrong_content_type_is_415(
    client: Client,
    store: InMemoryItemStore,
    accepted: dict[Any, Any],
    content_type: str | None,
) -> None:
    """Only XML in UTF-8 is read as a batch."""
    headers = AUTH_A | ({"Content-Type": content_type} if content_type else {})
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=headers)
    await problem(response, 415, "unsupported_media_type")
    assert store.items == accepted


async def test_text_xml_with_utf8_charset_is_accepted(client: Client) -> None:
    """text/xml with an explicit UTF-8 charset is a valid batch media type."""
    headers = AUTH_A | {"Content-Type": "text/xml; charset=UTF-8"}
    response = await client.post("/v1/batches", data=TWO_ITEMS.read_bytes(), headers=headers)
    assert response.status == 200


# --- items ----------------------------------------------------------------------------------


async def test_operator_reads_its_item_with_events(
    client: Client, store: InMemoryItemStore, accepted: dict[Any, Any]
) -> None:
    """GET /v1/items/{id} shows the caller's item and its history, oldest first."""
    response = await client.get("/v1/items/RR123456785DE", headers=AUTH_A)
    assert response.status == 200
    item = await response.json()
    stored = accepted[(OPERATOR_A, "RR123456785DE")]
    assert item == {
        "item_id": "RR123456785DE",
        "reference": stored.reference,
        "version": 1,
        "state": "ACCEPTED",
        "destination_country": "FR",
        "batch_id": "DE-2026-11-26-0001",
        "received_at": stored.received_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
        "decision": None,
        "findings": [],
        "events": [
            {
                "at": stored.received_at.isoformat(),
                "actor": f"operator:{OPERATOR_A}",
                "from": None,
                "to": ItemState.RECEIVED.value,
                "detail": "push batch DE-2026-11-26-0001",
            },
            {
                "at": stored.received_at.isoformat(),
                "actor": "connector",
                "from": ItemState.RECEIVED.value,
                "to": ItemState.ACCEPTED.value,
                "detail": "validated",
            },
        ],
        "notices": [],
    }


async def test_other_operators_item_is_not_found_like_a_missing_one(
    client: Client, accepted: dict[Any, Any]
) -> None:
    """B gets the same 404 for A's item as for an item that does not exist."""
    theirs = await problem(
        await client.get("/v1/items/RR123456785DE", headers=AUTH_B), 404, "not_found"
    )
    missing = await problem(
        await client.get("/v1/items/RR999999995DE", headers=AUTH_B), 404, "not_found"
    )
    theirs.pop("request_id")
    missing.pop("request_id")
    assert theirs == {**missing, "detail": missing["detail"].replace("999999995", "123456785")}
    assert OPERATOR_A not in json.dumps(theirs)


async def test_reading_an_item_needs_credentials(client: Client, accepted: dict[Any, Any]) -> None:
    """GET /v1/items/{id} without a token is a 401."""
    response = await client.get("/v1/items/RR123456785DE")
    await problem(response, 401, "not_authenticated")


# --- framework errors, request ids, internal errors -----------------------------------------


async def test_unknown_route_is_404_problem(client: Client) -> None:
    """aiohttp's own 404 comes out as problem+json with code not_found."""
    await problem(await client.get("/v1/nothing-here"), 404, "not_found")


async def test_wrong_method_is_405_problem_with_allow(client: Client) -> None:
    """A known route with the wrong method is a 405 problem that keeps the Allow header."""
    response = await client.get("/v1/batches", headers=AUTH_A)
    body = await problem(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    assert body["allowed"] == ["POST"]


async def test_request_id_is_echoed_when_valid_and_generated_otherwise(client: Client) -> None:
    """A well-formed X-Request-Id is echoed; a malformed or missing one is replaced."""
    echoed = await client.get("/healthz", headers={"X-Request-Id": "op-trace:42"})
    assert echoed.headers["X-Request-Id"] == "op-trace:42"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert replaced.headers["X-Request-Id"] != "bad id <script>"
    assert len(replaced.headers["X-Request-Id"]) == 32
    generated = await client.get("/healthz")
    assert len(generated.headers["X-Request-Id"]) == 32


class ExplodingStore(InMemoryItemStore):
    """A store whose item lookup fails with an unexpected, detailed exception."""

    async def get_item(self, operator_id: str, item_id: str) -> Any:
        raise RuntimeError("connection to /var/lib/secret.db failed with password hunter2")


async def test_unexpected_exception_is_500_without_internal_detail(
    make_client: ClientFactory,
) -> None:
    """An unexpected exception is a 500 internal_error that hides the cause and logs it."""
    store = ExplodingStore()
    await store.upsert_operators(operators())
    client = await make_client(store)
    pushed = await push(client, TWO_ITEMS.read_bytes())
    assert pushed.status == 200
    before = dict(store.items)
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await client.get("/v1/items/RR123456785DE", headers=AUTH_A)
    text = await response.text()
    body = await problem(response, 500, "internal_error")
    assert "secret" not in text
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    [failed] = [entry for entry in logs if entry["event"] == "request.failed"]
    assert failed["request_id"] == body["request_id"] == response.headers["X-Request-Id"]
    assert failed["exc_info"] is True
    assert failed["log_level"] == "error"
    assert store.items == before


async def test_credentials_never_reach_the_logs(client: Client) -> None:
    """Neither a good nor a wrong token, nor their digests, appear in any log entry."""
    wrong = "wrong-token-that-must-not-be-logged"
    with capture_logs(processors=[merge_contextvars]) as logs:
        await push(client, TWO_ITEMS.read_bytes())
        refused = await push(client, TWO_ITEMS.read_bytes(), {"Authorization": f"Bearer {wrong}"})
    assert refused.status == 401
    logged = repr(logs)
    for secret in (TOKEN_A, wrong, sha256_hex(TOKEN_A), sha256_hex(wrong)):
        assert secret not in logged
    assert {"event": "auth.refused", "reason": "unknown_token"}.items() <= next(
        entry for entry in logs if entry["event"] == "auth.refused"
    ).items()
    assert any(entry["event"] == "batch.pushed" for entry in logs)


# --- admin credentials ----------------------------------------------------------------------


async def _admin_probe(request: web.Request) -> web.Response:
    auth.require_admin(request, request.app[server.ADMIN_TOKEN_SHA256])
    return web.json_response({"admin": True})


ADMIN_PROBE = (web.get("/admin-probe", _admin_probe),)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 200),
        (AUTH_A, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({}, 401),
    ],
    ids=["admin", "operator-token", "wrong-token", "none"],
)
async def test_require_admin_accepts_only_the_admin_token(
    make_client: ClientFactory, store: InMemoryItemStore, headers: dict[str, str], status: int
) -> None:
    """require_admin lets the admin token through and refuses operator or missing tokens."""
    client = await make_client(store, extra_routes=ADMIN_PROBE)
    response = await client.get("/admin-probe", headers=headers)
    if status == 200:
        assert response.status == 200
    else:
        await problem(response, 401, "not_authenticated")


async def test_require_admin_refuses_everyone_without_a_configured_token(
    make_client: ClientFactory, store: InMemoryItemStore
) -> None:
    """With no admin token configured, no token at all passes require_admin."""
    client = await make_client(store, admin_token_sha256=None, extra_routes=ADMIN_PROBE)
    response = await client.get("/admin-probe", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    await problem(response, 401, "not_authenticated")


# --- health ---------------------------------------------------------------------------------


async def test_healthz_needs_no_credentials(client: Client) -> None:
    """GET /healthz answers ok without authentication."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_ok_when_the_store_answers(client: Client) -> None:
    """GET /readyz answers ok without authentication when the store works."""
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "schemas": "ok"},
    }


class DownStore(InMemoryItemStore):
    """A store that is unreachable for schedule queries."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def schedule_states(self) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [StoreUnavailable("database at 10.1.2.3:5432 refused"), OSError("socket 10.1.2.3 closed")],
    ids=["store-unavailable", "unexpected"],
)
async def test_readyz_is_503_when_the_store_fails(
    make_client: ClientFactory, error: Exception
) -> None:
    """GET /readyz is a 503 store_unavailable that reveals nothing about the store."""
    store = DownStore(error)
    await store.upsert_operators(operators())
    client = await make_client(store)
    pushed = await push(client, TWO_ITEMS.read_bytes())
    assert pushed.status == 200
    response = await client.get("/readyz")
    text = await response.text()
    await problem(response, 503, "store_unavailable")
    assert "10.1.2.3" not in text
    assert len(store.items) == 2


# --- TLS and client certificates ------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _client_context(ca: trustme.CA, leaf: trustme.LeafCert | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if leaf is not None:
        leaf.configure_cert(context)
    return context


def _der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


async def test_registered_client_certificate_authenticates_over_mtls(
    make_client: ClientFactory, ca: trustme.CA
) -> None:
    """Over real TLS, a client certificate with a registered fingerprint needs no token."""
    known = ca.issue_cert("de-post.client.example")
    unknown = ca.issue_cert("someone-else.client.example")
    store = InMemoryItemStore()
    await store.upsert_operators(operators(cert_a=_der(known)))
    client = await make_client(store, ssl_context=_server_context(ca))
    assert client.make_url("/").scheme == "https"

    response = await client.post(
        "/v1/batches",
        data=TWO_ITEMS.read_bytes(),
        headers=XML | JSON_ACK,
        ssl=_client_context(ca, known),
    )
    assert response.status == 200, await response.text()
    assert [i["status"] for i in (await response.json())["items"]] == ["accepted"] * 2

    item = await client.get("/v1/items/RR123456785DE", ssl=_client_context(ca, known))
    assert item.status == 200

    for leaf in (unknown, None):
        refused = await client.post(
            "/v1/batches",
            data=TWO_ITEMS.read_bytes(),
            headers=XML,
            ssl=_client_context(ca, leaf),
        )
        await problem(refused, 401, "not_authenticated")
    assert len(store.items) == 2


async def test_token_decides_when_both_token_and_certificate_are_sent(
    make_client: ClientFactory, ca: trustme.CA
) -> None:
    """A wrong bearer token is refused even when a registered certificate comes with it."""
    known = ca.issue_cert("de-post.client.example")
    store = InMemoryItemStore()
    await store.upsert_operators(operators(cert_a=_der(known)))
    client = await make_client(store, ssl_context=_server_context(ca))
    response = await client.post(
        "/v1/batches",
        data=TWO_ITEMS.read_bytes(),
        headers=XML | {"Authorization": "Bearer not-the-token"},
        ssl=_client_context(ca, known),
    )
    await problem(response, 401, "not_authenticated")
    assert store.items == {}
