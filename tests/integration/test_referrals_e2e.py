"""Referrals end to end on loopback, and decisions by polling.

Push, forward (HTTPS with mTLS) to the mock Customs, which refers two items (a request for
information and a request for screening); the operator reads the referral references from its
signed notices and answers with ``POST /v1/answers``; the answer stage signs each answer and
sends it to the mock's answers route, which verifies it and re-decides the item RELEASE; the
connector applies that final decision with a second notice. Then the same round trip with the
decisions polled from the mock's response feed instead of posted to the callback route.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.adapters.customs_client import CustomsEndpoint, HttpCustomsGateway
from connector.adapters.sources import HttpSource
from connector.core import notices, referrals, signing
from connector.core.model import (
    CustomsDecision,
    DocumentType,
    ItemState,
    ScreeningMethod,
    ScreeningOutcome,
)
from connector.core.referrals import Document, ReferralAnswer, Screening
from connector.core.retry import RetryPolicy
from connector.core.xmlsafe import parse_xml
from connector.flow.answer import AnswerForwardService, answer_bytes
from connector.flow.customs_poll import CustomsPoll, cursor_id
from connector.flow.decide import DecideService, Destination
from connector.peers.tls import LoopbackPki
from connector.ports import CustomsGateway
from connector.sample_data import DESTINATION_WEIGHT
from tests.integration.test_decisions_e2e import OTHER, Loop
from tests.integration.test_decisions_e2e import loop as loop
from tests.integration.test_forwarding_e2e import DESTINATION, OPERATOR, Rig
from tests.integration.test_forwarding_e2e import rig as rig

D = CustomsDecision
ANSWERED_AT = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Referrals:
    """The loop with the answer stage (over the mock's answers route) and a poll of its feed."""

    loop: Loop
    service: AnswerForwardService
    poll: CustomsPoll

    @property
    def rig(self) -> Rig:
        return self.loop.rig

    async def answer(self, body: bytes, operator: str = OPERATOR) -> tuple[int, dict[str, Any]]:
        headers = {**self.loop.headers(operator), "Content-Type": "application/xml"}
        async with self.loop.http.post(
            f"{self.loop.url}/v1/answers", data=body, headers=headers
        ) as response:
            payload: dict[str, Any] = await response.json(content_type=None)
            return response.status, payload

    async def referral_of(self, reference: str) -> str:
        """The referral reference, as the operator reads it from its latest signed notice."""
        stored = (await self.rig.store.item_notices(reference))[-1]
        notice = notices.parse_item_notice(parse_xml(stored.signed_xml))
        assert notice.referral_reference is not None
        return notice.referral_reference

    async def item_id(self, reference: str) -> str:
        [target] = (await self.rig.store.decision_targets([reference])).values()
        return target.item.item_id


def answer_service(rig: Rig, gateway: CustomsGateway) -> AnswerForwardService:
    ring = rig.ring
    return AnswerForwardService(
        rig.store,
        gateway,
        rig.clock,
        "replica-1",
        lambda: ring.active,
        lambda claim: rig.router.customs_for(claim.destination_country, claim.operator_id),
        RetryPolicy(max_attempts=3, base_delay_s=5, max_delay_s=60, jitter=0),
        heartbeat_s=0,
        rng=random.Random(3),
    )


@pytest.fixture
async def referrals_rig(loop: Loop, tmp_path: Path) -> AsyncIterator[Referrals]:
    rig = loop.rig
    pki = LoopbackPki.load(tmp_path / "pki")
    client = pki.issue_client("connector-answers")
    endpoint = CustomsEndpoint(
        destination=DESTINATION,
        url=rig.customs.answers_url,
        ca_file=pki.ca_file,
        client_cert_file=client.cert_file,
        client_key_file=client.key_file,
        customs_certificates=(rig.customs.certificate,),
        fast_retries=0,
        total_timeout_s=2.0,
    )
    gateway = HttpCustomsGateway({DESTINATION: endpoint}, rig.clock)
    context = pki.client_context(client)
    feed = HttpSource(
        rig.customs.feed_url,
        retries=0,
        session_factory=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)),
    )
    ring = rig.ring
    decide = DecideService(
        rig.store,
        rig.clock,
        [Destination(DESTINATION, (rig.customs.certificate,), frozenset(DESTINATION_WEIGHT))],
        lambda: ring.active,
    )
    poll = CustomsPoll(DESTINATION, feed, decide.receive, rig.store, rig.clock)
    try:
        yield Referrals(loop, answer_service(rig, gateway), poll)
    finally:
        await feed.close()
        await gateway.close()


def information(item_id: str, referral: str, answer_id: str = "A-RFI-1") -> bytes:
    return answer_bytes(
        ReferralAnswer(
            answer_id=answer_id,
            operator_id=OPERATOR,
            item_id=item_id,
            referral_reference=referral,
            answered_at=_now(),
            text="Two hand-made stoneware mugs, a birthday present.",
            documents=(Document(DocumentType.INVOICE, "INV-2026-4711", "Shop receipt"),),
        )
    )


def screening(item_id: str, referral: str, answer_id: str = "A-RFS-1") -> bytes:
    return answer_bytes(
        ReferralAnswer(
            answer_id=answer_id,
            operator_id=OPERATOR,
            item_id=item_id,
            referral_reference=referral,
            answered_at=_now(),
            screening=Screening(ScreeningMethod.XRY, ScreeningOutcome.CLEAR, _now()),
        )
    )


def _now() -> datetime:
    """When the operator answered: one fixed time, so a re-sent answer is the same answer."""
    return ANSWERED_AT


async def test_referrals_are_answered_forwarded_signed_and_finally_decided(
    referrals_rig: Referrals,
) -> None:
    ctx, customs = referrals_rig, referrals_rig.rig.customs
    rfi, rfs, plain = await ctx.loop.forward(3, seed=21)
    customs.decide_as.update({rfi: D.REQUEST_INFO, rfs: D.REQUEST_SCREENING})
    status, answer = await customs.send_decisions(ctx.loop.url)
    assert (status, answer["applied"]) == (200, 3)

    rfi_item, rfs_item = await ctx.item_id(rfi), await ctx.item_id(rfs)
    rfi_referral = await ctx.referral_of(rfi)
    status, first = await ctx.answer(information(rfi_item, rfi_referral))
    assert status == 200, first
    assert (first["answer_id"], first["item_id"], first["state"], first["referral"]) == (
        "A-RFI-1",
        rfi_item,
        "FORWARDING",
        "REQUEST_INFO",
    )
    status, second = await ctx.answer(screening(rfs_item, await ctx.referral_of(rfs)))
    assert (status, second["referral"]) == (200, "REQUEST_SCREENING")
    assert await ctx.loop.state(rfi) == (ItemState.FORWARDING, D.REQUEST_INFO)

    outcome = await ctx.service.run_once()
    assert (outcome.claimed, outcome.sent, outcome.retried, outcome.dead) == (2, 2, 0, 0)
    assert await ctx.loop.state(rfi) == (ItemState.FORWARDED, D.REQUEST_INFO)
    assert await ctx.loop.state(rfs) == (ItemState.FORWARDED, D.REQUEST_SCREENING)

    # The mock verified each answer against the connector's certificate and has its content.
    signer = signing.fingerprint(ctx.rig.ring.active.certificate)
    got_rfi = customs.answers[(OPERATOR, "A-RFI-1")]
    got_rfs = customs.answers[(OPERATOR, "A-RFS-1")]
    assert {got_rfi.signer_fingerprint, got_rfs.signer_fingerprint} == {signer}
    assert got_rfi.item_reference == rfi
    assert got_rfi.answer.text == "Two hand-made stoneware mugs, a birthday present."
    assert got_rfi.answer.documents == (
        Document(DocumentType.INVOICE, "INV-2026-4711", "Shop receipt"),
    )
    assert got_rfs.answer.screening is not None
    assert got_rfs.answer.screening.outcome is ScreeningOutcome.CLEAR
    policy = signing.VerifyPolicy((ctx.rig.ring.active.certificate,))
    resent = referrals.parse_referral_answer(signing.verify(got_rfi.signed_xml, policy).signed_xml)
    assert resent.referral_reference == rfi_referral

    # The mock re-decides exactly the answered items, finally: RELEASE.
    status, answer = await customs.send_decisions(ctx.loop.url)
    assert (status, answer["decisions"], answer["applied"]) == (200, 2, 2)
    for reference, interim in ((rfi, D.REQUEST_INFO), (rfs, D.REQUEST_SCREENING)):
        assert await ctx.loop.state(reference) == (ItemState.DECIDED, D.RELEASE)
        stored = await ctx.rig.store.item_notices(reference)
        assert [n.notice.decision for n in stored] == [interim, D.RELEASE]
        [kept] = await ctx.rig.store.answers_of(reference)
        assert (kept.status, kept.destination) == ("done", DESTINATION)
    assert [n.notice.decision for n in await ctx.rig.store.item_notices(plain)] == [D.RELEASE]
    feed = await ctx.loop.feed()
    assert [e["decision"] for e in feed["notices"]].count("RELEASE") == 3
    # The same answer again after the final decision: the same result, nothing new; a new
    # answer to the referral no longer pending is not found.
    assert await ctx.answer(information(rfi_item, rfi_referral)) == (200, first)
    status, _ = await ctx.answer(information(rfi_item, rfi_referral, answer_id="A-RFI-2"))
    assert status == 404
    assert (await ctx.service.run_once()).claimed == 0


async def test_a_wrong_reference_or_kind_is_409_and_changes_nothing(
    referrals_rig: Referrals,
) -> None:
    ctx, customs = referrals_rig, referrals_rig.rig.customs
    [rfi] = await ctx.loop.forward(1, seed=22)
    customs.decide_as[rfi] = D.REQUEST_INFO
    assert (await customs.send_decisions(ctx.loop.url))[0] == 200
    item_id = await ctx.item_id(rfi)
    status, problem = await ctx.answer(information(item_id, "RF-NOT-THIS-ONE"))
    assert (status, problem["code"]) == (409, "referral_mismatch")
    status, problem = await ctx.answer(screening(item_id, await ctx.referral_of(rfi)))
    assert (status, problem["code"]) == (409, "referral_mismatch")
    assert await ctx.loop.state(rfi) == (ItemState.DECIDED, D.REQUEST_INFO)
    assert await ctx.rig.store.answers_of(rfi) == ()
    assert (await ctx.service.run_once()).claimed == 0
    assert customs.answers == {}


async def test_another_operators_item_is_not_found_or_forbidden_and_shows_nothing(
    referrals_rig: Referrals,
) -> None:
    ctx, customs = referrals_rig, referrals_rig.rig.customs
    [rfi] = await ctx.loop.forward(1, seed=23)
    customs.decide_as[rfi] = D.REQUEST_INFO
    assert (await customs.send_decisions(ctx.loop.url))[0] == 200
    item_id, referral = await ctx.item_id(rfi), await ctx.referral_of(rfi)
    theirs = answer_bytes(
        ReferralAnswer(
            answer_id="A-X",
            operator_id=OTHER,
            item_id=item_id,
            referral_reference=referral,
            answered_at=_now(),
            text="Not my item.",
        )
    )
    status, problem = await ctx.answer(theirs, operator=OTHER)
    assert (status, problem["code"]) == (404, "not_found")
    status, problem = await ctx.answer(information(item_id, referral), operator=OTHER)
    assert (status, problem["code"]) == (403, "forbidden")
    for body in (problem, (await ctx.answer(theirs, operator=OTHER))[1]):
        assert rfi not in str(body)
        assert "REQUEST_INFO" not in str(body)
    assert await ctx.loop.state(rfi) == (ItemState.DECIDED, D.REQUEST_INFO)
    assert (await ctx.service.run_once()).claimed == 0
    async with ctx.loop.http.post(
        f"{ctx.loop.url}/v1/answers",
        data=information(item_id, referral),
        headers={"Content-Type": "application/xml"},
    ) as response:
        assert response.status == 401


async def test_an_item_not_awaiting_an_answer_is_not_found(referrals_rig: Referrals) -> None:
    ctx, customs = referrals_rig, referrals_rig.rig.customs
    released, undecided = await ctx.loop.forward(2, seed=24)
    assert (await customs.send_decisions(ctx.loop.url, {released: D.RELEASE}))[0] == 200
    for reference in (released, undecided):
        body = information(await ctx.item_id(reference), "RF-MOCK-00000001")
        status, problem = await ctx.answer(body)
        assert (status, problem["code"]) == (404, "not_found")
    assert await ctx.loop.state(released) == (ItemState.DECIDED, D.RELEASE)
    assert await ctx.loop.state(undecided) == (ItemState.FORWARDED, None)


async def test_the_same_answer_twice_is_forwarded_once_to_the_declarations_url(
    referrals_rig: Referrals,
) -> None:
    """Without an ``answers_url`` the answer goes to the declarations URL (the rig's gateway);
    Customs tells it from a batch by its root."""
    ctx, customs = referrals_rig, referrals_rig.rig.customs
    [rfi] = await ctx.loop.forward(1, seed=25)
    customs.decide_as[rfi] = D.REQUEST_INFO
    assert (await customs.send_decisions(ctx.loop.url))[0] == 200
    body = information(await ctx.item_id(rfi), await ctx.referral_of(rfi))
    first, second = await ctx.answer(body), await ctx.answer(body)
    assert first == second
    assert first[0] == 200
    service = answer_service(ctx.rig, ctx.rig.gateway)
    assert (await service.run_once()).sent == 1
    assert (await service.run_once()).claimed == 0
    assert customs.answer_requests == 1
    assert len(customs.answers) == 1
    assert await ctx.answer(body) == first  # still the same result once forwarded
    assert (await service.run_once()).claimed == 0


async def test_polling_delivers_decisions_and_a_replayed_response_is_refused(
    referrals_rig: Referrals,
) -> None:
    ctx, customs = referrals_rig, referrals_rig.rig.customs
    rfi, plain = await ctx.loop.forward(2, seed=26)
    customs.decide_as[rfi] = D.REQUEST_INFO
    assert customs.queue_decisions() == 2
    outcome = await ctx.poll.run_once()
    assert (outcome.fetched, outcome.applied, outcome.refused, outcome.error) == (1, 2, 0, None)
    assert await ctx.loop.state(plain) == (ItemState.DECIDED, D.RELEASE)
    assert await ctx.loop.state(rfi) == (ItemState.DECIDED, D.REQUEST_INFO)
    assert await ctx.rig.store.get_cursor(cursor_id(DESTINATION)) == "1"
    assert (await ctx.poll.run_once()).fetched == 0  # 204: nothing new

    status, _ = await ctx.answer(information(await ctx.item_id(rfi), await ctx.referral_of(rfi)))
    assert status == 200
    assert (await ctx.service.run_once()).sent == 1
    assert customs.queue_decisions() == 1
    assert (await ctx.poll.run_once()).applied == 1
    assert await ctx.loop.state(rfi) == (ItemState.DECIDED, D.RELEASE)
    before = len((await ctx.loop.feed())["notices"])
    assert before == 3

    # The feed serves the first response again: refused as a replay, nothing changes.
    customs.feed.append(customs.feed[0])
    replayed = await ctx.poll.run_once()
    assert (replayed.fetched, replayed.applied, replayed.refused) == (1, 0, 1)
    assert await ctx.rig.store.get_cursor(cursor_id(DESTINATION)) == "3"
    assert len((await ctx.loop.feed())["notices"]) == before
    assert await ctx.loop.state(rfi) == (ItemState.DECIDED, D.RELEASE)
    # The same bytes posted to the callback route are refused the same way.
    status, problem = await ctx.loop.post(customs.feed[0])
    assert (status, problem["code"]) == (409, "response_replayed")
