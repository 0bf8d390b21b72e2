"""Referral answers taken and forwarded, and Customs polled, over the in-memory store and
fakes: the answer's checks, its signing and sending, retries, dead letters; the poll cursor."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import pytest

from connector.adapters import keystore
from connector.core import referrals, signing
from connector.core.model import CustomsDecision, ItemState, ScreeningMethod, ScreeningOutcome
from connector.core.notices import ItemNotice
from connector.core.referrals import ReferralAnswer, Screening
from connector.core.retry import RetryPolicy
from connector.core.xmlsafe import parse_xml
from connector.errors import (
    CustomsRefused,
    CustomsUnavailable,
    EnvelopeInvalid,
    Forbidden,
    NotFound,
    ReferralMismatch,
    ResponseReplayed,
    SignatureInvalid,
    SourceUnavailable,
    StoreUnavailable,
    XmlDoctypeForbidden,
)
from connector.flow.answer import AnswerForwardService, AnswerService, answer_bytes
from connector.flow.customs_poll import CustomsPoll, cursor_id
from connector.flow.decide import DecideOutcome
from connector.ports import (
    AnswerClaim,
    CustomsReceipt,
    DecisionToApply,
    FetchedBatch,
    ReceivedResponse,
)
from connector.testing import FrozenClock, InMemoryItemStore
from tests.integration.conftest import make_intake

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
D = CustomsDecision
OPERATOR, DESTINATION = "OP1", "EU-ICS2"
ITEM = "RR000000000DE"


@cache
def _key() -> signing.SigningKey:
    private_key, certificate = keystore.generate_key("ec", "EAD connector", 2)
    return signing.SigningKey(private_key, certificate)


def answer_xml(
    *,
    referral: str = "RF-1",
    operator: str = OPERATOR,
    item: str = ITEM,
    answer_id: str = "A-1",
    text: str = "Two stoneware mugs, invoice attached.",
) -> bytes:
    answer = ReferralAnswer(
        answer_id=answer_id,
        operator_id=operator,
        item_id=item,
        referral_reference=referral,
        answered_at=T0,
        text=text,
    )
    return answer_bytes(answer)


async def referred(store: InMemoryItemStore, code: CustomsDecision = D.REQUEST_INFO) -> str:
    """One item of OP1 forwarded and referred with ``code`` (RF-1); its reference."""
    await store.record_intake(make_intake(1, operator_id=OPERATOR))
    claims = await store.claim_for_forwarding("w", 10, 60, T0)
    receipt = CustomsReceipt(DESTINATION, "DB1", T0, b"<r/>")
    await store.record_forwarded(claims, "w", "DB1", b"<s/>", receipt, T0)
    reference = claims[0].reference
    notice = ItemNotice(
        notice_id="N-1",
        operator_id=OPERATOR,
        item_id=ITEM,
        item_reference=reference,
        decision=code,
        issued_at=T0,
        referral_reference="RF-1",
    )
    response = ReceivedResponse(DESTINATION, "R1", T0, T0, b"<s/>", 1)
    applied = await store.apply_response(response, [DecisionToApply(0, notice, b"<n/>")])
    assert len(applied.applied) == 1
    return reference


@dataclass
class Wakes:
    count: int = 0

    def __call__(self) -> None:
        self.count += 1


# --- taking answers -----------------------------------------------------------------------


async def test_an_answer_is_stored_queued_and_wakes_the_forwarding() -> None:
    store, wakes = InMemoryItemStore(), Wakes()
    reference = await referred(store)
    service = AnswerService(store, FrozenClock(T0), on_recorded=wakes)
    recorded = await service.receive(OPERATOR, answer_xml())
    assert (recorded.reference, recorded.kind, recorded.duplicate) == (
        reference,
        D.REQUEST_INFO,
        False,
    )
    assert recorded.as_dict()["state"] == "FORWARDING"
    again = await service.receive(OPERATOR, answer_xml())
    assert again.duplicate
    assert again.as_dict() == recorded.as_dict()
    assert wakes.count == 1  # the repeat changes nothing and wakes nobody
    assert len([job for job in store.jobs.values() if job.kind == "answer"]) == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (answer_xml(operator="OP2"), Forbidden),
        (answer_xml(referral="RF-9"), ReferralMismatch),
        (answer_xml(item="RR000000001DE"), NotFound),
        (answer_xml().replace(b"FreeText>", b"Nonsense>"), EnvelopeInvalid),
        (b"<!DOCTYPE x [<!ENTITY e 'x'>]><ReferralAnswer/>", XmlDoctypeForbidden),
        (
            b'<ReferralAnswer xmlns="urn:ead-connector:referral-answer:1"><AnswerId>A'
            b"</AnswerId></ReferralAnswer>",
            EnvelopeInvalid,
        ),
    ],
)
async def test_refused_answers_change_nothing(body: bytes, error: type[Exception]) -> None:
    store = InMemoryItemStore()
    reference = await referred(store)
    with pytest.raises(error):
        await AnswerService(store, FrozenClock(T0)).receive(OPERATOR, body)
    assert store._by_reference(reference).state is ItemState.DECIDED
    assert store.answers == {}


async def test_a_screening_result_does_not_answer_a_request_for_information() -> None:
    store = InMemoryItemStore()
    await referred(store)
    answer = referrals.parse_referral_answer(parse_xml(answer_xml()))
    body = answer_bytes(
        ReferralAnswer(
            answer_id="A-2",
            operator_id=OPERATOR,
            item_id=ITEM,
            referral_reference="RF-1",
            answered_at=answer.answered_at,
            screening=Screening(ScreeningMethod.XRY, ScreeningOutcome.CLEAR, T0),
        )
    )
    with pytest.raises(ReferralMismatch):
        await AnswerService(store, FrozenClock(T0)).receive(OPERATOR, body)


# --- forwarding answers -------------------------------------------------------------------


@dataclass
class FakeGateway:
    clock: FrozenClock
    fail: list[Exception] = field(default_factory=list)
    sends: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def send(self, destination: str, batch_id: str, signed_xml: bytes) -> CustomsReceipt:
        if self.fail:
            raise self.fail.pop(0)
        self.sends.append((destination, batch_id, signed_xml))
        return CustomsReceipt(destination, batch_id, self.clock.now(), b"<receipt/>")


def forwarder(
    store: InMemoryItemStore,
    gateway: FakeGateway,
    *,
    route: str | None = DESTINATION,
    max_attempts: int = 3,
) -> AnswerForwardService:
    return AnswerForwardService(
        store,
        gateway,
        gateway.clock,
        "w",
        _key,
        lambda claim: route,
        RetryPolicy(max_attempts=max_attempts, base_delay_s=10, max_delay_s=60, jitter=0),
        heartbeat_s=0,
        rng=random.Random(1),
    )


async def test_an_answer_is_signed_sent_and_the_item_forwarded() -> None:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    reference = await referred(store)
    await AnswerService(store, clock).receive(OPERATOR, answer_xml())
    gateway = FakeGateway(clock)
    outcome = await forwarder(store, gateway).run_once()
    assert (outcome.claimed, outcome.sent, outcome.retried, outcome.dead) == (1, 1, 0, 0)
    [(destination, answer_id, signed)] = gateway.sends
    assert (destination, answer_id) == (DESTINATION, "A-1")
    verified = signing.verify(signed, signing.VerifyPolicy((_key().certificate,)))
    sent = referrals.parse_referral_answer(verified.signed_xml)
    assert (sent.answer_id, sent.referral_reference, sent.text) == (
        "A-1",
        "RF-1",
        "Two stoneware mugs, invoice attached.",
    )
    assert store._by_reference(reference).state is ItemState.FORWARDED
    [stored] = await store.answers_of(reference)
    assert (stored.status, stored.destination) == ("done", DESTINATION)
    assert (await forwarder(store, gateway).run_once()).claimed == 0


async def test_unavailable_customs_is_retried_then_dead_and_refused_is_dead_at_once() -> None:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    reference = await referred(store)
    await AnswerService(store, clock).receive(OPERATOR, answer_xml())
    gateway = FakeGateway(clock, fail=[CustomsUnavailable("down"), SignatureInvalid("bad")])
    service = forwarder(store, gateway, max_attempts=2)
    assert (await service.run_once()).retried == 1
    assert store._by_reference(reference).state is ItemState.FORWARDING
    assert (await service.run_once()).claimed == 0  # not due before the backoff
    clock.advance(60)
    assert (await service.run_once()).dead == 1
    assert store._by_reference(reference).state is ItemState.DEAD
    assert [item.reference for item in await store.dead_letters()] == [reference]
    await store.replay(reference, clock.now())
    gateway.fail = [CustomsRefused("no")]
    assert (await service.run_once()).dead == 1
    gateway.fail = []
    await store.replay(reference, clock.now())
    assert (await service.run_once()).sent == 1
    assert store._by_reference(reference).state is ItemState.FORWARDED


async def test_an_answer_without_a_route_waits() -> None:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    reference = await referred(store)
    await AnswerService(store, clock).receive(OPERATOR, answer_xml())
    gateway = FakeGateway(clock)
    outcome = await forwarder(store, gateway, route=None).run_once()
    assert (outcome.retried, gateway.sends) == (1, [])
    [stored] = await store.answers_of(reference)
    assert stored.last_error == "no_route"


class BrokenStore(InMemoryItemStore):
    async def claim_answers(self, *args: object, **kwargs: object) -> tuple[AnswerClaim, ...]:
        raise StoreUnavailable("the database is down")


async def test_a_store_failure_ends_the_run_with_an_error() -> None:
    outcome = await forwarder(BrokenStore(), FakeGateway(FrozenClock(T0))).run_once()
    assert outcome.error is not None


# --- polling Customs ----------------------------------------------------------------------


@dataclass
class FakeFeed:
    """Responses by position; the cursor of response N is str(N + 1)."""

    bodies: list[bytes]
    down: bool = False
    finished: list[tuple[str, bool]] = field(default_factory=list)

    async def fetch(self, cursor: str | None) -> FetchedBatch | None:
        if self.down:
            raise SourceUnavailable("feed down")
        position = int(cursor or 0)
        if position >= len(self.bodies):
            return None
        return FetchedBatch(self.bodies[position], str(position + 1), "feed")

    async def done(
        self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
    ) -> None:
        self.finished.append((batch.cursor, ok))


@dataclass
class FakeDecide:
    """Applies ``ok`` bodies, refuses ``replay`` ones; ``unavailable`` fails like the store."""

    received: list[bytes] = field(default_factory=list)

    async def __call__(self, destination: str, body: bytes) -> DecideOutcome:
        self.received.append(body)
        if body == b"replay":
            raise ResponseReplayed("seen before")
        if body == b"unavailable":
            raise StoreUnavailable("down")
        return DecideOutcome(destination, body.decode(), 1)


async def test_a_poll_hands_each_response_on_and_keeps_the_cursor() -> None:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    feed, decide = FakeFeed([b"R1", b"replay", b"R3"]), FakeDecide()
    poll = CustomsPoll(DESTINATION, feed, decide, store, clock)
    outcome = await poll.run_once()
    assert (outcome.fetched, outcome.refused, outcome.error) == (3, 1, None)
    assert outcome.busy
    assert decide.received == [b"R1", b"replay", b"R3"]
    assert feed.finished == [("1", True), ("2", False), ("3", True)]
    assert await store.get_cursor(cursor_id(DESTINATION)) == "3"
    again = await poll.run_once()
    assert (again.fetched, again.busy) == (0, False)
    feed.bodies.append(b"R4")
    assert (await poll.run_once()).fetched == 1
    assert decide.received[-1] == b"R4"


async def test_a_poll_stops_where_the_store_failed_and_notes_a_feed_failure() -> None:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    feed, decide = FakeFeed([b"R1", b"unavailable", b"R3"]), FakeDecide()
    poll = CustomsPoll(DESTINATION, feed, decide, store, clock)
    outcome = await poll.run_once()
    assert (outcome.fetched, outcome.error is not None) == (2, True)
    assert await store.get_cursor(cursor_id(DESTINATION)) == "1"  # read again next time
    feed.down = True
    down = await poll.run_once()
    assert down.error is not None
    assert store.pull_errors[cursor_id(DESTINATION)][0].startswith("feed down")
    assert await store.get_cursor(cursor_id(DESTINATION)) == "1"


async def test_a_poll_reads_at_most_its_share_per_run() -> None:
    store, clock = InMemoryItemStore(), FrozenClock(T0)
    feed = FakeFeed([f"R{n}".encode() for n in range(5)])
    poll = CustomsPoll(DESTINATION, feed, FakeDecide(), store, clock, max_per_run=2)
    assert (await poll.run_once()).fetched == 2
    assert (await poll.run_once()).fetched == 2
    assert await store.get_cursor(cursor_id(DESTINATION)) == "4"
