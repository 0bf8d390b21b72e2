"""Customs responses: reading verified decisions, the rules the schema cannot check, the builder."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.adapters import keystore
from connector.core import decisions, signing
from connector.core.decisions import CustomsResponse, Decision
from connector.core.model import CustomsDecision, ItemState, ScreeningMethod, StoredItem
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import parse_xml
from connector.errors import (
    EnvelopeInvalid,
    InvalidMessage,
    MessageKindUnknown,
    ResponseMisdirected,
    ResponseRefused,
    ResponseStale,
    UnknownCode,
)

MESSAGES = Path(__file__).resolve().parents[2] / "data" / "messages"
NS = MessageKind.CUSTOMS_RESPONSE.namespace
T0 = datetime(2026, 11, 26, 10, 21, 47, tzinfo=UTC)
D = CustomsDecision


def _decision(code: CustomsDecision, n: int = 1, **extra: object) -> Decision:
    referral = f"REF-{n}" if code in decisions.INTERIM else None
    values: dict[str, object] = {"referral_reference": referral} | extra
    return Decision(f"EADREF{n:04d}", f"RR{n:08d}5CH", code, **values)  # type: ignore[arg-type]


def _response(*items: Decision, destination: str = "EU-ICS2") -> CustomsResponse:
    return CustomsResponse("RSP-1", destination, "DB-1", T0, tuple(items))


def _parse(data: bytes) -> CustomsResponse:
    return decisions.parse_customs_response(parse_xml(data))


def _valid(data: bytes) -> bool:
    return bool(default_registry().lxml(MessageKind.CUSTOMS_RESPONSE).validate(parse_xml(data)))


@cache
def _key() -> signing.SigningKey:
    private_key, certificate = keystore.generate_key("ec", "Customs EU-ICS2", 2)
    return signing.SigningKey(private_key, certificate)


def test_the_example_response_reads_into_values() -> None:
    """The example response gives its header and three decisions with every field."""
    response = _parse((MESSAGES / "customs-response.xml").read_bytes())
    assert (response.response_id, response.destination) == ("ICS2-RSP-20261126-000981", "EU-ICS2")
    assert response.declaration_batch_id == "DB-EU-ICS2-20261126-0042"
    assert response.issued_at == T0
    assert [d.code for d in response.decisions] == [D.RELEASE, D.REQUEST_INFO, D.REQUEST_SCREENING]
    screening = response.decisions[2]
    assert screening.referral_reference == "RFS-26DE-0000107"
    assert screening.screening_method is ScreeningMethod.XRY
    assert screening.interim
    assert not response.decisions[0].interim
    assert response.problems == ()
    assert list(response.indexed_decisions()) == list(enumerate(response.decisions))


@pytest.mark.parametrize("code", list(D))
def test_every_code_builds_valid_and_reads_back(code: CustomsDecision) -> None:
    """Each of the six codes survives build -> schema validation -> parse unchanged."""
    decision = _decision(
        code,
        reason="Because.",
        customs_reference="26DE3R0001",
        required_action="Do it.",
        screening_method=ScreeningMethod.ETD if code is D.REQUEST_SCREENING else None,
    )
    data = decisions.customs_response_xml(_response(decision))
    assert _valid(data)
    parsed = _parse(data)
    assert parsed.decisions == (decision,)
    assert parsed.issued_at == T0


def test_an_unknown_code_is_a_problem_of_that_decision_only() -> None:
    """A code outside the enumeration refuses its decision; the others of the response apply."""
    data = decisions.customs_response_xml(
        _response(_decision(D.RELEASE, 1), _decision(D.HOLD, 2), _decision(D.RELEASE, 3))
    )
    data = data.replace(b"<Code>HOLD</Code>", b"<Code>MAYBE_LATER</Code>")
    response = _parse(data)
    assert [d.item_reference for d in response.decisions] == ["EADREF0001", "EADREF0003"]
    assert [index for index, _ in response.indexed_decisions()] == [0, 2]
    (problem,) = response.problems
    assert (problem.index, problem.code, problem.item_reference) == (
        1,
        "schema_invalid",
        "EADREF0002",
    )
    assert "MAYBE_LATER" in problem.message
    assert "Code" in problem.message
    assert problem.as_dict()["path"] == "/CustomsResponse/Decisions/Decision[2]"


def test_a_code_is_never_mapped() -> None:
    """The decision vocabulary refuses an unknown value with a domain error."""
    with pytest.raises(UnknownCode):
        D("ASSESSMENT_COMPLETE")


@pytest.mark.parametrize("code", [D.REQUEST_INFO, D.REQUEST_SCREENING])
def test_a_referral_without_its_reference_is_a_problem(code: CustomsDecision) -> None:
    """REQUEST_INFO and REQUEST_SCREENING need a ReferralReference; a RELEASE beside goes on."""
    data = decisions.customs_response_xml(
        _response(_decision(code, 1, referral_reference=None), _decision(D.RELEASE, 2))
    )
    assert _valid(data)  # the schema cannot say it
    response = _parse(data)
    assert [d.code for d in response.decisions] == [D.RELEASE]
    (problem,) = response.problems
    assert (problem.index, problem.code) == (0, "referral_reference_missing")
    assert code.value in problem.message


def test_an_item_decided_twice_in_one_response_gets_neither() -> None:
    """Two decisions for one item in one response are both refused; other items go on."""
    twice = [_decision(D.RELEASE, 1), _decision(D.HOLD, 2), _decision(D.DO_NOT_LOAD, 1)]
    response = _parse(decisions.customs_response_xml(_response(*twice)))
    assert [d.item_reference for d in response.decisions] == ["EADREF0002"]
    assert [(p.index, p.code) for p in response.problems] == [
        (0, "decision_duplicate"),
        (2, "decision_duplicate"),
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<ResponseId>RSP-1</ResponseId>", b""),
        (b"<Destination>EU-ICS2</Destination>", b"<Destination>EU ICS2</Destination>"),
        (b"<IssuedAt>2026-11-26T10:21:47.000Z</IssuedAt>", b"<IssuedAt>yesterday</IssuedAt>"),
        (b"<Decisions>", b"<Extra/><Decisions>"),
    ],
    ids=["no-id", "bad-destination", "bad-time", "foreign-element"],
)
def test_a_fault_outside_the_decisions_refuses_the_whole_response(old: bytes, new: bytes) -> None:
    """Envelope faults raise EnvelopeInvalid: no decision of such a response is used."""
    data = decisions.customs_response_xml(_response(_decision(D.RELEASE)))
    assert old in data
    with pytest.raises(EnvelopeInvalid, match="customs response does not conform"):
        _parse(data.replace(old, new))


@pytest.mark.parametrize(
    "issued", ["2026-11-26T10:21:47", "2026-11-26T24:00:00Z"], ids=["naive", "hour-24"]
)
def test_an_issue_time_without_zone_or_unrepresentable_is_refused(issued: str) -> None:
    """A schema-valid IssuedAt the freshness check cannot use refuses the response."""
    data = decisions.customs_response_xml(_response(_decision(D.RELEASE)))
    data = data.replace(b"2026-11-26T10:21:47.000Z", issued.encode())
    with pytest.raises(EnvelopeInvalid, match="IssuedAt"):
        _parse(data)


def test_another_message_kind_is_refused() -> None:
    """An item notice handed to the response reader is refused by its root."""
    with pytest.raises(MessageKindUnknown, match="item-notice"):
        _parse((MESSAGES / "item-notice.xml").read_bytes())


@pytest.mark.parametrize(
    ("offset", "fresh"),
    [
        (timedelta(0), True),
        (timedelta(minutes=10), True),
        (timedelta(minutes=-10), True),
        (timedelta(minutes=10, seconds=1), False),
        (timedelta(minutes=-11), False),
        (timedelta(days=30), False),
    ],
)
def test_freshness_window(offset: timedelta, fresh: bool) -> None:
    """A response is accepted only if issued within the window either side of now."""
    response = _response(_decision(D.RELEASE))
    now = T0 + offset
    if fresh:
        decisions.check_freshness(response, now, timedelta(minutes=10))
        return
    with pytest.raises(ResponseStale) as info:
        decisions.check_freshness(response, now, timedelta(minutes=10))
    assert info.value.code == "response_stale"
    assert isinstance(info.value, ResponseRefused)
    assert info.value.context["window_s"] == 600


def test_freshness_needs_an_aware_now() -> None:
    """Comparing with a naive clock is a programming error, not a stale response."""
    with pytest.raises(ValueError, match="timezone-aware"):
        decisions.check_freshness(
            _response(_decision(D.RELEASE)), datetime(2026, 1, 1), timedelta(1)
        )


def test_a_response_naming_another_destination_is_refused() -> None:
    """The Destination inside must be the destination the response came from."""
    response = _response(_decision(D.RELEASE), destination="US-CBP")
    decisions.check_destination(response, "US-CBP")
    with pytest.raises(ResponseMisdirected) as info:
        decisions.check_destination(response, "EU-ICS2")
    assert info.value.code == "response_misdirected"
    assert info.value.context == {"expected": "EU-ICS2", "found": "US-CBP"}


def _stored(item_id: str = "RR000000015CH", country: str = "DE") -> StoredItem:
    return StoredItem(
        "EADREF0001", "CH-POST", item_id, 1, ItemState.FORWARDED, country, "B1", "d", T0, T0, b""
    )


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (_stored(), None),
        (None, "item_unknown"),
        (_stored(item_id="RR999999995CH"), "item_mismatch"),
        (_stored(country="US"), "item_other_destination"),
    ],
    ids=["fits", "unknown", "other-item-id", "other-destination"],
)
def test_a_decision_must_name_a_known_item_of_this_destination(
    item: StoredItem | None, code: str | None
) -> None:
    """Decisions for unknown items, mismatched ids or another destination's items are problems."""
    decision = _decision(D.RELEASE)
    assert decision.item_id == "RR000000015CH"
    problem = decisions.check_item(4, decision, item, frozenset({"DE", "FR"}))
    assert (problem.code if problem else None) == code
    if problem is not None:
        assert problem.index == 4
        assert problem.item_reference == "EADREF0001"


def test_the_builder_collapses_and_cuts_texts() -> None:
    """Free texts become valid ShortText: white space collapsed, at most 350 characters."""
    long_reason = "word " * 200
    decision = _decision(D.HOLD, reason=long_reason, required_action="  present\n the item  ")
    data = decisions.customs_response_xml(_response(decision))
    assert _valid(data)
    (parsed,) = _parse(data).decisions
    assert parsed.reason is not None
    assert len(parsed.reason) <= 350
    assert parsed.required_action == "present the item"
    blank = decisions.customs_response_xml(_response(_decision(D.HOLD, reason="  \n ")))
    assert _parse(blank).decisions[0].reason is None


def test_the_builder_refuses_what_the_schema_would() -> None:
    """No decisions, too many, or a naive issue time cannot be built."""
    with pytest.raises(InvalidMessage, match="1 to 10,000"):
        decisions.customs_response_xml(_response())
    many = _response(*[_decision(D.RELEASE, n) for n in range(10_001)])
    with pytest.raises(InvalidMessage, match="10,001"):
        decisions.customs_response_xml(many)
    naive = replace(_response(_decision(D.RELEASE)), issued_at=datetime(2026, 11, 26))
    with pytest.raises(InvalidMessage, match="timezone-aware"):
        decisions.customs_response_xml(naive)


def test_a_signed_response_verifies_and_reads_from_the_verified_tree() -> None:
    """Customs signs the built response; the verified tree reads back the same decisions."""
    key = _key()
    response = _response(*[_decision(code, n) for n, code in enumerate(D, start=1)])
    signed = signing.sign(decisions.customs_response_xml(response), key)
    assert _valid(signed)  # the enveloped signature is admitted by the schema
    verified = signing.verify(signed, signing.VerifyPolicy((key.certificate,)))
    parsed = decisions.parse_customs_response(verified.signed_xml)
    assert parsed.decisions == response.decisions
    assert etree.QName(verified.signed_xml).namespace == NS


def test_a_response_with_too_many_decisions_is_refused_whole() -> None:
    """Beyond the schema's 10,000 decisions the response is refused, not cut short."""
    one = decisions.customs_response_xml(_response(_decision(D.RELEASE)))
    start, end = one.index(b"<Decision>"), one.index(b"</Decisions>")
    data = one[:start] + one[start:end] * 10_001 + one[end:]
    with pytest.raises(EnvelopeInvalid, match="10,001 decisions"):
        _parse(data)


_FIELDS = ("ItemReference", "ItemId", "Code", "Reason", "ScreeningMethod")
_CHILD_NAMESPACES = (None, "urn:ead-connector:customs-response:1", "urn:ead-connector:test:1")


@settings(max_examples=200, deadline=None)
@given(
    namespace=st.sampled_from(_CHILD_NAMESPACES[1:]),  # a Decision is always namespaced
    children=st.lists(
        st.tuples(
            st.sampled_from(_CHILD_NAMESPACES),
            st.sampled_from(_FIELDS),
            st.none() | st.text(alphabet=" \t\nab\u00a0c", max_size=8),
        ),
        max_size=8,
    ),
    comment=st.booleans(),
)
def test_child_texts_reads_what_text_reads(
    namespace: str, children: list[tuple[str | None, str, str | None]], comment: bool
) -> None:
    """The one-pass reader of a decision's fields gives, for every field, what a path
    search for it gives: the first child of that name in the node's namespace, its white
    space collapsed (xs:token)."""
    node = etree.Element(f"{{{namespace}}}Decision")
    if comment:
        node.append(etree.Comment("not a field"))
    for child_namespace, name, text in children:
        child = etree.SubElement(node, f"{{{child_namespace}}}{name}" if child_namespace else name)
        child.text = text
    texts = decisions._child_texts(node)
    for name in _FIELDS:
        found = node.findtext(f"{{{namespace}}}{name}")
        expected = re.sub(r"\s+", " ", found).strip() if found is not None else None
        assert texts.get(name) == expected, name
