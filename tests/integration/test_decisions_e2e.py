"""The return path end to end on loopback: push, forward (HTTPS with mTLS) to the mock
Customs, which decides and calls the connector back with a signed response; the connector
verifies it, applies every decision with one signed notice, and serves the notices feed.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from lxml import etree

from connector.adapters import keystore
from connector.adapters.web.auth import sha256_hex
from connector.adapters.web.customs import DECIDE
from connector.adapters.web.notices import FEED_NAMESPACE
from connector.adapters.web.server import build_web_app
from connector.core import notices, signing
from connector.core.model import CustomsDecision, ItemState
from connector.core.xmlsafe import parse_xml
from connector.flow.decide import DecideService, Destination
from connector.ports import OperatorRecord
from connector.sample import generate_batch
from connector.sample_data import DESTINATION_WEIGHT
from tests.integration.test_forwarding_e2e import DESTINATION, OPERATOR, Rig
from tests.integration.test_forwarding_e2e import rig as rig

D = CustomsDecision
OTHER = "FR-POST"
TOKENS = {OPERATOR: "token-of-de-post-0123456789", OTHER: "token-of-fr-post-0123456789"}
XMLSEC1 = shutil.which("xmlsec1")


@dataclass
class Loop:
    """The rig with the connector's HTTP API in front of its store."""

    rig: Rig
    url: str
    http: aiohttp.ClientSession

    async def forward(self, items: int, seed: int, operator: str = OPERATOR) -> list[str]:
        """Push a generated batch for ``operator`` and forward it; the references."""
        batch = generate_batch(items, seed=seed, operator_id=operator)
        ack = await self.rig.accept.accept_batch(operator, batch.xml)
        references = [item.reference for item in ack.items if item.reference is not None]
        assert (await self.rig.drain(self.rig.service())).sent == len(references)
        return references

    def headers(self, operator: str = OPERATOR, accept: str = "application/json") -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[operator]}", "Accept": accept}

    async def feed(
        self, operator: str = OPERATOR, after: str | int = 0, limit: int = 1000
    ) -> dict[str, Any]:
        async with self.http.get(
            f"{self.url}/v1/notices",
            params={"after": str(after), "limit": str(limit)},
            headers=self.headers(operator),
        ) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def post(self, body: bytes, destination: str = DESTINATION) -> tuple[int, Any]:
        async with self.http.post(
            f"{self.url}/v1/customs/{destination}/responses",
            data=body,
            headers={"Content-Type": "application/xml"},
        ) as response:
            return response.status, await response.json(content_type=None)

    async def state(self, reference: str) -> tuple[ItemState, CustomsDecision | None]:
        [item] = list((await self.rig.store.decision_targets([reference])).values())
        return item.item.state, item.item.decision


@pytest.fixture
async def loop(rig: Rig) -> AsyncIterator[Loop]:
    await rig.store.upsert_operators(
        tuple(
            OperatorRecord(operator, operator, token_sha256=sha256_hex(token.encode()))
            for operator, token in TOKENS.items()
        )
    )
    app = build_web_app(
        store=rig.store, accept=rig.accept, clock=rig.clock, max_body_bytes=4 * 1024 * 1024
    )
    ring = rig.ring
    app[DECIDE] = DecideService(
        rig.store,
        rig.clock,
        [Destination(DESTINATION, (rig.customs.certificate,), frozenset(DESTINATION_WEIGHT))],
        lambda: ring.active,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Loop(rig, str(server.make_url("")).rstrip("/"), http)
    finally:
        await server.close()


def _verify_with_xmlsec1(signed: bytes, certificate_pem: Path, tmp_path: Path) -> None:
    if XMLSEC1 is None:
        return
    document = tmp_path / "notice.xml"
    document.write_bytes(signed)
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--enabled-reference-uris",
            "empty",
            "--trusted-pem",
            str(certificate_pem),
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


async def test_every_code_comes_back_as_one_signed_notice_per_item(
    loop: Loop, tmp_path: Path
) -> None:
    references = await loop.forward(12, seed=11)
    codes = list(D)
    forced = dict(zip(references, codes, strict=False))
    loop.rig.customs.decide_as.update(forced)
    status, answer = await loop.rig.customs.send_decisions(loop.url)
    assert status == 200, answer
    assert (answer["decisions"], answer["applied"], answer["problems"]) == (12, 12, [])
    for reference in references:
        expected = forced.get(reference, D.RELEASE)  # the sample items carry no risk
        assert await loop.state(reference) == (ItemState.DECIDED, expected)

    certificate = loop.rig.ring.active.certificate
    pem = tmp_path / "connector.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    policy = signing.VerifyPolicy((certificate,))
    feed = await loop.feed()
    assert len(feed["notices"]) == 12
    assert {entry["notice_id"] for entry in feed["notices"]} == {
        stored.notice.notice_id
        for reference in references
        for stored in await loop.rig.store.item_notices(reference)
    }
    for reference in references:
        assert len(await loop.rig.store.item_notices(reference)) == 1
    by_item = {entry["item_id"]: entry for entry in feed["notices"]}
    for entry in feed["notices"]:
        signed = entry["signed_xml"].encode()
        notice = notices.parse_item_notice(signing.verify(signed, policy).signed_xml)
        assert (notice.notice_id, notice.item_id, notice.decision.value) == (
            entry["notice_id"],
            entry["item_id"],
            entry["decision"],
        )
        assert notice.operator_id == OPERATOR
        if not notice.final:
            assert notice.referral_reference is not None
        _verify_with_xmlsec1(signed, pem, tmp_path)
    assert {by_item[item]["decision"] for item in by_item} == {code.value for code in codes}
    # DO_NOT_LOAD, REJECTED are final; a later decision on them is refused, not applied.
    stop = next(ref for ref, code in forced.items() if code is D.DO_NOT_LOAD)
    status, answer = await loop.rig.customs.send_decisions(loop.url, {stop: D.RELEASE})
    assert status == 200
    assert (answer["applied"], [p["code"] for p in answer["problems"]]) == (
        0,
        ["illegal_transition"],
    )
    assert len((await loop.feed())["notices"]) == 12


async def test_hold_then_release_is_a_second_notice_after_the_first(loop: Loop) -> None:
    [held, other] = await loop.forward(2, seed=12)
    loop.rig.customs.decide_as[held] = D.HOLD
    assert (await loop.rig.customs.send_decisions(loop.url))[0] == 200
    first = await loop.feed()
    assert [entry["decision"] for entry in first["notices"]] == ["HOLD", "RELEASE"]
    status, answer = await loop.rig.customs.send_decisions(loop.url, {held: D.RELEASE})
    assert (status, answer["applied"]) == (200, 1)
    later = await loop.feed(after=first["next_cursor"])
    assert [entry["decision"] for entry in later["notices"]] == ["RELEASE"]
    assert int(later["next_cursor"]) > int(first["next_cursor"])
    everything = await loop.feed()
    held_id = later["notices"][0]["item_id"]
    assert [e["decision"] for e in everything["notices"] if e["item_id"] == held_id] == [
        "HOLD",
        "RELEASE",
    ]
    async with loop.http.get(f"{loop.url}/v1/items/{held_id}", headers=loop.headers()) as response:
        view = await response.json()
    assert [n["decision"] for n in view["notices"]] == ["HOLD", "RELEASE"]
    assert {n["delivery"] for n in view["notices"]} == {"pending"}
    assert await loop.state(other) == (ItemState.DECIDED, D.RELEASE)


async def test_forged_replayed_stale_and_misdirected_responses_change_nothing(
    loop: Loop,
) -> None:
    [reference] = await loop.forward(1, seed=13)
    customs = loop.rig.customs
    decision = customs.decision_for(reference, D.DO_NOT_LOAD)
    intruder_key, intruder_cert = keystore.generate_key("ec", "Not Customs", 2)
    forged = customs.customs_response(
        [decision], key=signing.SigningKey(intruder_key, intruder_cert)
    )
    tampered = customs.customs_response([customs.decision_for(reference, D.HOLD)]).replace(
        b"<Code>HOLD<", b"<Code>RELEASE<"
    )
    stale = customs.customs_response(
        [decision], issued_at=loop.rig.clock.now() - timedelta(hours=1)
    )
    misdirected = customs.customs_response([decision], destination="UK-CDS")
    refused = [
        (await loop.post(forged), "certificate_untrusted"),
        (await loop.post(tampered), "signature_invalid"),
        (await loop.post(stale), "response_stale"),
        (await loop.post(misdirected), "response_misdirected"),
        (await loop.post(b"<CustomsResponse/>"), "signature_invalid"),
        (await loop.post(misdirected, "UK-CDS"), "not_found"),
    ]
    for (status, body), code in refused:
        assert body["code"] == code, body
        assert status in (400, 404)
    assert await loop.state(reference) == (ItemState.FORWARDED, None)
    assert (await loop.feed())["notices"] == []

    good = customs.customs_response([decision])
    status, answer = await loop.post(good)
    assert (status, answer["applied"]) == (200, 1)
    status, body = await loop.post(good)
    assert (status, body["code"]) == (409, "response_replayed")
    assert len((await loop.feed())["notices"]) == 1


async def test_each_operator_sees_only_its_own_notices_and_the_feed_resumes(loop: Loop) -> None:
    mine = await loop.forward(7, seed=14)
    theirs = await loop.forward(3, seed=15, operator=OTHER)
    status, answer = await loop.rig.customs.send_decisions(loop.url)
    assert (status, answer["applied"]) == (200, 10)
    other_feed = await loop.feed(OTHER)
    assert len(other_feed["notices"]) == len(theirs)
    targets = await loop.rig.store.decision_targets(mine)
    my_ids = {target.item.item_id for target in targets.values()}
    assert not {entry["item_id"] for entry in other_feed["notices"]} & my_ids

    pages: list[dict[str, Any]] = []
    cursor: str | int = 0
    while True:
        page = await loop.feed(after=cursor, limit=3)
        if not page["notices"]:
            assert page["next_cursor"] == str(cursor)
            break
        pages.extend(page["notices"])
        cursor = page["next_cursor"]
    assert [entry["item_id"] for entry in pages] == [
        entry["item_id"] for entry in (await loop.feed())["notices"]
    ]
    assert {entry["item_id"] for entry in pages} == my_ids
    sequences = [entry["sequence"] for entry in pages]
    assert sequences == sorted(sequences)

    # The other operator's item is not found for me, and its notices are not in my view.
    their_item = other_feed["notices"][0]["item_id"]
    async with loop.http.get(f"{loop.url}/v1/items/{their_item}", headers=loop.headers()) as r:
        assert r.status == 404
    async with loop.http.get(f"{loop.url}/v1/notices") as r:
        assert r.status == 401


async def test_the_xml_feed_carries_each_signed_notice_intact(loop: Loop) -> None:
    await loop.forward(3, seed=16)
    assert (await loop.rig.customs.send_decisions(loop.url))[0] == 200
    async with loop.http.get(
        f"{loop.url}/v1/notices", headers=loop.headers(accept="application/xml")
    ) as response:
        assert response.content_type == "application/xml"
        root = parse_xml(await response.read())
    assert root.tag == f"{{{FEED_NAMESPACE}}}NoticeFeed"
    entries = root.findall(f"{{{FEED_NAMESPACE}}}Notices/{{{FEED_NAMESPACE}}}SignedNotice")
    assert len(entries) == 3
    policy = signing.VerifyPolicy((loop.rig.ring.active.certificate,))
    for entry in entries:
        signed = base64.b64decode(entry.text or "")
        notice = notices.parse_item_notice(signing.verify(signed, policy).signed_xml)
        assert notice.notice_id == entry.get("noticeId")
    assert root.findtext(f"{{{FEED_NAMESPACE}}}NextCursor") == entries[-1].get("sequence")
    async with loop.http.get(
        f"{loop.url}/v1/notices", params={"after": "x"}, headers=loop.headers()
    ) as response:
        assert response.status == 400
    assert etree.QName(root).localname == "NoticeFeed"
