"""The decide stage over the in-memory store, a frozen clock and real keys on both sides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.adapters import keystore
from connector.core import decisions, notices, signing
from connector.core.decisions import CustomsResponse, Decision
from connector.core.model import CustomsDecision, IncomingItem, Intake, ItemState
from connector.core.references import digest, item_reference
from connector.errors import (
    CertificateUntrusted,
    NotFound,
    ResponseMisdirected,
    ResponseReplayed,
    ResponseStale,
    SignatureInvalid,
    XmlMalformed,
)
from connector.flow.decide import DecideService, Destination
from connector.ports import CustomsReceipt
from connector.testing import FrozenClock, InMemoryItemStore

D = CustomsDecision
OPERATOR = "OP1"
DESTINATION = "EU-ICS2"


def _key(name: str) -> signing.SigningKey:
    private_key, certificate = keystore.generate_key("ec", name, 2)
    return signing.SigningKey(private_key, certificate)


CUSTOMS = _key("Customs EU-ICS2")
CONNECTOR = _key("EADC-TEST")
INTRUDER = _key("Not Customs")


def ident(number: int, country: str = "DE") -> str:
    return f"RR{number:09d}{country}"


def ref(number: int, country: str = "DE") -> str:
    return item_reference(OPERATOR, ident(number, country))


class Rig:
    def __init__(self) -> None:
        self.clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
        self.store = InMemoryItemStore()
        self.sequence = 0
        self.signed = 0

        def key() -> signing.SigningKey:
            self.signed += 1
            return CONNECTOR

        self.service = DecideService(
            self.store,
            self.clock,
            [Destination(DESTINATION, (CUSTOMS.certificate,), frozenset({"DE", "FR"}))],
            key,
        )

    async def forwarded(self, *numbers: int, country: str = "DE") -> None:
        items = []
        for number in numbers:
            xml = f"<Item><ItemId>{ident(number, country)}</ItemId></Item>".encode()
            items.append(IncomingItem(number, ident(number, country), country, digest(xml), xml))
        now = self.clock.now()
        batch = f"B{country}{numbers[0]}"
        await self.store.record_intake(
            Intake(
                OPERATOR, batch, now, digest(batch.encode()), len(items), tuple(items), (), "push"
            )
        )
        claims = await self.store.claim_for_forwarding("w", 100, 60, now)
        receipt = CustomsReceipt(DESTINATION, "DB1", now, b"<r/>")
        await self.store.record_forwarded(claims, "w", "DB1", b"<s/>", receipt, now)

    def body(
        self,
        *items: tuple[int, CustomsDecision] | Decision,
        destination: str = DESTINATION,
        issued_at: datetime | None = None,
        key: signing.SigningKey = CUSTOMS,
        response_id: str | None = None,
    ) -> bytes:
        self.sequence += 1
        listed = [
            entry
            if isinstance(entry, Decision)
            else Decision(
                ref(entry[0]),
                ident(entry[0]),
                entry[1],
                reason=f"because {entry[1].value}",
                customs_reference=f"MRN{entry[0]}",
                referral_reference=f"RF{entry[0]}" if entry[1] in decisions.INTERIM else None,
            )
            for entry in items
        ]
        response = CustomsResponse(
            response_id=response_id or f"RSP-{self.sequence}",
            destination=destination,
            declaration_batch_id=None,
            issued_at=issued_at or self.clock.now(),
            decisions=tuple(listed),
        )
        return signing.sign(decisions.customs_response_xml(response), key)

    async def state(self, number: int, country: str = "DE") -> tuple[ItemState, D | None]:
        item = await self.store.get_item(OPERATOR, ident(number, country))
        assert item is not None
        return item.state, item.decision


@pytest.fixture
async def rig() -> Rig:
    return Rig()


async def test_all_six_codes_apply_with_one_verifiable_notice_each(rig: Rig) -> None:
    codes = list(D)
    await rig.forwarded(*range(len(codes)))
    outcome = await rig.service.receive(
        DESTINATION, rig.body(*((n, code) for n, code in enumerate(codes)))
    )
    assert (outcome.decisions, len(outcome.applied), outcome.repeated) == (6, 6, 0)
    assert outcome.problems == ()
    for number, code in enumerate(codes):
        assert await rig.state(number) == (ItemState.DECIDED, code)
        [stored] = await rig.store.item_notices(ref(number))
        verified = signing.verify(stored.signed_xml, signing.VerifyPolicy((CONNECTOR.certificate,)))
        notice = notices.parse_item_notice(verified.signed_xml)
        assert (notice.item_id, notice.decision, notice.operator_id) == (
            ident(number),
            code,
            OPERATOR,
        )
        assert notice.reason == f"because {code.value}"
        assert notice.customs_reference == f"MRN{number}"
        assert notice.notice_id == stored.notice.notice_id
    assert outcome.as_dict()["applied"] == 6


async def test_a_response_signed_by_an_unpinned_key_is_refused(rig: Rig) -> None:
    await rig.forwarded(1)
    with pytest.raises(CertificateUntrusted):
        await rig.service.receive(DESTINATION, rig.body((1, D.RELEASE), key=INTRUDER))
    assert await rig.state(1) == (ItemState.FORWARDED, None)
    assert rig.store.notices == []
    assert rig.store.responses == {}


async def test_a_response_changed_after_signing_is_refused(rig: Rig) -> None:
    await rig.forwarded(1)
    body = rig.body((1, D.HOLD)).replace(b"<Code>HOLD<", b"<Code>RELEASE<")
    with pytest.raises(SignatureInvalid):
        await rig.service.receive(DESTINATION, body)
    assert await rig.state(1) == (ItemState.FORWARDED, None)


async def test_an_unsigned_or_malformed_response_is_refused(rig: Rig) -> None:
    await rig.forwarded(1)
    response = CustomsResponse(
        "RSP-X", DESTINATION, None, rig.clock.now(), (Decision(ref(1), ident(1), D.RELEASE),)
    )
    with pytest.raises(SignatureInvalid):
        await rig.service.receive(DESTINATION, decisions.customs_response_xml(response))
    with pytest.raises(XmlMalformed):
        await rig.service.receive(DESTINATION, b"<CustomsResponse")
    assert rig.store.notices == []


async def test_a_replayed_response_is_refused_and_changes_nothing(rig: Rig) -> None:
    await rig.forwarded(1, 2)
    body = rig.body((1, D.HOLD), (2, D.RELEASE))
    assert len((await rig.service.receive(DESTINATION, body)).applied) == 2
    with pytest.raises(ResponseReplayed):
        await rig.service.receive(DESTINATION, body)
    # The same id with other content (signed by Customs) is a replay too.
    again = rig.body((1, D.RELEASE), response_id="RSP-1")
    with pytest.raises(ResponseReplayed):
        await rig.service.receive(DESTINATION, again)
    assert await rig.state(1) == (ItemState.DECIDED, D.HOLD)
    assert len(rig.store.notices) == 2


@pytest.mark.parametrize("minutes", [-11, 11])
async def test_a_response_issued_outside_the_window_is_stale(rig: Rig, minutes: int) -> None:
    await rig.forwarded(1)
    issued = rig.clock.now() + timedelta(minutes=minutes)
    with pytest.raises(ResponseStale):
        await rig.service.receive(DESTINATION, rig.body((1, D.RELEASE), issued_at=issued))
    assert await rig.state(1) == (ItemState.FORWARDED, None)
    assert rig.store.responses == {}


async def test_the_freshness_window_is_configurable() -> None:
    rig = Rig()
    rig.service = DecideService(
        rig.store,
        rig.clock,
        [Destination(DESTINATION, (CUSTOMS.certificate,), frozenset({"DE"}))],
        lambda: CONNECTOR,
        window=timedelta(minutes=1),
    )
    await rig.forwarded(1)
    issued = rig.clock.now() - timedelta(minutes=2)
    with pytest.raises(ResponseStale):
        await rig.service.receive(DESTINATION, rig.body((1, D.RELEASE), issued_at=issued))


async def test_a_response_naming_another_destination_is_refused(rig: Rig) -> None:
    await rig.forwarded(1)
    with pytest.raises(ResponseMisdirected):
        await rig.service.receive(DESTINATION, rig.body((1, D.RELEASE), destination="UK-CDS"))
    with pytest.raises(NotFound):
        await rig.service.receive("UK-CDS", rig.body((1, D.RELEASE), destination="UK-CDS"))
    assert await rig.state(1) == (ItemState.FORWARDED, None)


async def test_faulty_decisions_are_problems_and_the_good_ones_apply(rig: Rig) -> None:
    await rig.forwarded(1, 2)
    await rig.forwarded(3, country="US")
    body = rig.body(
        (1, D.RELEASE),
        Decision(ref(9), ident(9), D.RELEASE),  # no such item
        Decision(ref(2), ident(8), D.HOLD),  # reference and item id disagree
        Decision(ref(3, "US"), ident(3, "US"), D.HOLD),  # this destination does not cover US
    )
    outcome = await rig.service.receive(DESTINATION, body)
    assert [n.item_id for n in outcome.applied] == [ident(1)]
    assert [(p.index, p.code) for p in outcome.problems] == [
        (1, "item_unknown"),
        (2, "item_mismatch"),
        (3, "item_other_destination"),
    ]
    assert await rig.state(2) == (ItemState.FORWARDED, None)
    assert await rig.state(3, "US") == (ItemState.FORWARDED, None)


async def test_a_repeat_is_counted_without_a_notice_and_an_illegal_one_is_a_problem(
    rig: Rig,
) -> None:
    await rig.forwarded(1, 2)
    await rig.service.receive(DESTINATION, rig.body((1, D.HOLD), (2, D.DO_NOT_LOAD)))
    outcome = await rig.service.receive(DESTINATION, rig.body((1, D.HOLD), (2, D.RELEASE)))
    assert (len(outcome.applied), outcome.repeated) == (0, 1)
    assert [(p.item_reference, p.code) for p in outcome.problems] == [
        (ref(2), "illegal_transition")
    ]
    assert len(rig.store.notices) == 2
    later = await rig.service.receive(DESTINATION, rig.body((1, D.RELEASE)))
    assert [n.decision for n in later.applied] == [D.RELEASE]
    feed = await rig.store.notices_after(OPERATOR, 0, 10)
    assert [n.notice.decision for n in feed] == [D.HOLD, D.DO_NOT_LOAD, D.RELEASE]


async def test_a_decision_against_the_schema_is_a_problem_of_its_own(rig: Rig) -> None:
    await rig.forwarded(1, 2)
    body = rig.body((1, D.RELEASE), Decision(ref(2), "not an item id", D.RELEASE))
    outcome = await rig.service.receive(DESTINATION, body)
    assert [n.item_id for n in outcome.applied] == [ident(1)]
    assert [(p.index, p.code) for p in outcome.problems] == [(1, "schema_invalid")]
    assert await rig.state(2) == (ItemState.FORWARDED, None)
