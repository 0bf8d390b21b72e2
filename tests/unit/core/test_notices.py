"""Item notices: one per decision, valid against their schema, signed, ordered for delivery."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from connector.adapters import keystore
from connector.core import notices, signing
from connector.core.decisions import INTERIM, CustomsResponse, Decision
from connector.core.model import CustomsDecision, ScreeningMethod
from connector.core.notices import ItemNotice
from connector.core.schemas import MessageKind, default_registry
from connector.core.xmlsafe import parse_xml
from connector.errors import (
    EnvelopeInvalid,
    InvalidMessage,
    MessageKindUnknown,
    SignatureInvalid,
)

MESSAGES = Path(__file__).resolve().parents[2] / "data" / "messages"
T0 = datetime(2026, 11, 26, 10, 21, 47, 250000, tzinfo=UTC)
D = CustomsDecision
IDENTIFIER = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


def _decision(code: CustomsDecision, ref: str = "EADREF0001") -> Decision:
    return Decision(
        item_reference=ref,
        item_id="RR123456785CH",
        code=code,
        reason="Assessment done.",
        customs_reference="26DE3R0001",
        required_action="Act." if code is not D.RELEASE else None,
        referral_reference="RFX-1" if code in INTERIM else None,
        screening_method=ScreeningMethod.EDD if code is D.REQUEST_SCREENING else None,
    )


def _notice(
    code: CustomsDecision, ref: str = "EADREF0001", sequence: int | None = None
) -> ItemNotice:
    response = CustomsResponse("RSP-1", "EU-ICS2", None, T0, (_decision(code, ref),))
    return replace(
        notices.notice_for(response, response.decisions[0], "CH-POST"), sequence=sequence
    )


def _valid(root: etree._Element) -> bool:
    return bool(default_registry().lxml(MessageKind.ITEM_NOTICE).validate(root))


@cache
def _key() -> signing.SigningKey:
    private_key, certificate = keystore.generate_key("rsa", "EAD connector", 2)
    return signing.SigningKey(private_key, certificate)


@pytest.mark.parametrize("code", list(D))
def test_a_notice_per_code_is_valid_and_reads_back(code: CustomsDecision) -> None:
    """Each decision's notice validates against item-notice-1.xsd and parses to the same value."""
    notice = _notice(code)
    root = notices.item_notice_xml(notice)
    assert _valid(root)
    assert notices.parse_item_notice(root) == notice
    assert root.findtext(f"{{{MessageKind.ITEM_NOTICE.namespace}}}Final") == (
        "false" if code in INTERIM else "true"
    )


def test_notice_for_carries_the_decision_and_the_response_time() -> None:
    """The notice takes the decision's fields, the operator, and Customs' issue time."""
    notice = _notice(D.REQUEST_SCREENING)
    assert (notice.operator_id, notice.item_id, notice.item_reference) == (
        "CH-POST",
        "RR123456785CH",
        "EADREF0001",
    )
    assert notice.decision is D.REQUEST_SCREENING
    assert notice.referral_reference == "RFX-1"
    assert notice.screening_method is ScreeningMethod.EDD
    assert notice.issued_at == T0
    assert not notice.final


def test_notice_ids_are_stable_identifiers() -> None:
    """The same decision always gets the same id; another response or item another one."""
    first = notices.new_notice_id("EU-ICS2", "RSP-1", "EADREF0001")
    assert first == notices.new_notice_id("EU-ICS2", "RSP-1", "EADREF0001")
    assert IDENTIFIER.fullmatch(first)
    others = {
        notices.new_notice_id("EU-ICS2", "RSP-2", "EADREF0001"),
        notices.new_notice_id("EU-ICS2", "RSP-1", "EADREF0002"),
        notices.new_notice_id("US-CBP", "RSP-1", "EADREF0001"),
    }
    assert first not in others
    assert len(others) == 3
    assert _notice(D.HOLD).notice_id == first


def test_the_json_feed_entry_has_exactly_the_contract_keys() -> None:
    """notice_as_dict gives DESIGN.md's seven keys, with the signed document as text."""
    notice = _notice(D.HOLD)
    signed = signing.sign(notices.item_notice_xml(notice), _key())
    entry = notices.notice_as_dict(notice, signed)
    assert set(entry) == {
        "notice_id",
        "item_id",
        "decision",
        "reason",
        "customs_reference",
        "issued_at",
        "signed_xml",
    }
    assert entry["decision"] == "HOLD"
    assert entry["issued_at"] == "2026-11-26T10:21:47.250Z"
    assert isinstance(entry["signed_xml"], str)
    assert entry["signed_xml"].startswith("<?xml")


def test_a_signed_notice_verifies_and_reads_back() -> None:
    """The connector's signature over a notice verifies with its certificate pinned."""
    notice = _notice(D.DO_NOT_LOAD)
    signed = signing.sign(notices.item_notice_xml(notice), _key())
    assert _valid(parse_xml(signed))
    verified = signing.verify(signed, signing.VerifyPolicy((_key().certificate,)))
    assert notices.parse_item_notice(verified.signed_xml) == notice


def test_a_tampered_notice_does_not_verify() -> None:
    """Changing the decision of a signed notice breaks its signature."""
    signed = signing.sign(notices.item_notice_xml(_notice(D.DO_NOT_LOAD)), _key())
    forged = signed.replace(b"DO_NOT_LOAD", b"RELEASE")
    with pytest.raises(SignatureInvalid):
        signing.verify(forged, signing.VerifyPolicy((_key().certificate,)))


def test_the_example_notice_parses() -> None:
    """The example notice in tests/data reads into a value."""
    notice = notices.parse_item_notice(parse_xml((MESSAGES / "item-notice.xml").read_bytes()))
    assert notice.decision is D.REQUEST_INFO
    assert notice.referral_reference == "RFI-26DE-0000318"


def test_a_referral_notice_needs_its_reference() -> None:
    """An interim notice without the reference the answer must quote cannot be built."""
    with pytest.raises(InvalidMessage, match="referral reference"):
        notices.item_notice_xml(replace(_notice(D.REQUEST_INFO), referral_reference=None))
    with pytest.raises(InvalidMessage, match="timezone-aware"):
        notices.item_notice_xml(replace(_notice(D.HOLD), issued_at=datetime(2026, 1, 1)))


def test_parse_refuses_a_final_flag_that_contradicts_the_decision() -> None:
    """Final must be false exactly for the interim decisions."""
    root = notices.item_notice_xml(_notice(D.RELEASE))
    root.find(f"{{{MessageKind.ITEM_NOTICE.namespace}}}Final").text = "false"  # type: ignore[union-attr]
    with pytest.raises(EnvelopeInvalid, match="Final"):
        notices.parse_item_notice(root)


def test_parse_refuses_invalid_and_foreign_documents() -> None:
    """A schema fault is explained; another message kind is refused by its root."""
    root = notices.item_notice_xml(_notice(D.RELEASE))
    root.find(f"{{{MessageKind.ITEM_NOTICE.namespace}}}Decision").text = "OK"  # type: ignore[union-attr]
    with pytest.raises(EnvelopeInvalid, match="Decision"):
        notices.parse_item_notice(root)
    with pytest.raises(MessageKindUnknown):
        notices.parse_item_notice(parse_xml((MESSAGES / "referral-answer.xml").read_bytes()))


def test_do_not_load_is_delivered_first() -> None:
    """Priority puts DO_NOT_LOAD before any other pending notice, RELEASE last."""
    assert min(D, key=notices.PRIORITY.__getitem__) is D.DO_NOT_LOAD
    assert max(D, key=notices.PRIORITY.__getitem__) is D.RELEASE
    pending = [
        _notice(D.RELEASE, "A", 1),
        _notice(D.HOLD, "B", 2),
        _notice(D.DO_NOT_LOAD, "C", 3),
        _notice(D.REQUEST_INFO, "D", 4),
    ]
    ordered = notices.delivery_order(pending)
    assert [n.item_reference for n in ordered] == ["C", "B", "D", "A"]


def test_an_urgent_notice_takes_its_items_older_notices_along() -> None:
    """A DO_NOT_LOAD after a RELEASE of the same item goes first, but after that RELEASE."""
    pending = [
        _notice(D.HOLD, "B", 1),
        _notice(D.RELEASE, "A", 2),
        _notice(D.DO_NOT_LOAD, "A", 3),
    ]
    ordered = notices.delivery_order(pending)
    assert [(n.item_reference, n.decision) for n in ordered] == [
        ("A", D.RELEASE),
        ("A", D.DO_NOT_LOAD),
        ("B", D.HOLD),
    ]


@given(st.lists(st.tuples(st.sampled_from("ABC"), st.sampled_from(list(D))), max_size=12))
def test_delivery_order_keeps_each_items_notices_in_sequence(
    entries: list[tuple[str, CustomsDecision]],
) -> None:
    """Every notice is delivered once, no item's notices overtake, the most urgent item leads."""
    pending = [_notice(code, ref, n) for n, (ref, code) in enumerate(entries)]
    ordered = notices.delivery_order(reversed(pending))
    assert sorted(n.sequence or 0 for n in ordered) == list(range(len(pending)))
    for ref in "ABC":
        sequences = [n.sequence for n in ordered if n.item_reference == ref]
        assert sequences == sorted(sequences)  # type: ignore[type-var]
    if ordered:
        urgent = min(n.priority for n in pending)
        first = ordered[0].item_reference
        assert any(n.item_reference == first and n.priority == urgent for n in pending)
