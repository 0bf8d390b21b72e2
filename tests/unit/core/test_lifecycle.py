"""The item state machine: the transitions of DESIGN.md section 3, nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.lifecycle import (
    ALLOWED,
    DECIDABLE_STATES,
    FINAL_STATES,
    REDECISIONS,
    Verdict,
    answer_forwarding,
    awaiting_answer,
    can_amend,
    check_amendable,
    decided,
    judge_decision,
    notified,
    transition,
)
from connector.core.model import CustomsDecision, StoredItem
from connector.core.model import ItemState as S
from connector.errors import IllegalTransition, NotFound

HAPPY_PATH = [S.RECEIVED, S.ACCEPTED, S.FORWARDING, S.FORWARDED, S.DECIDED, S.NOTIFIED]


def test_happy_path_is_allowed() -> None:
    state = transition(None, S.RECEIVED)
    for target in HAPPY_PATH[1:]:
        state = transition(state, target)
    assert state is S.NOTIFIED


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.RECEIVED, S.REJECTED),
        (S.FORWARDING, S.DEAD),
        (S.DEAD, S.FORWARDING),
        (S.DECIDED, S.FORWARDING),  # referral answered: forwarded again
        (S.NOTIFIED, S.DECIDED),  # a later decision
        (S.ACCEPTED, S.AMENDED),
        (S.FORWARDED, S.CANCELLED),
        (S.AMENDED, S.FORWARDING),
        (S.NOTIFIED, S.FORWARDING),  # referral answered after its notice
        (S.FORWARDING, S.DECIDED),  # Customs decided before the send was recorded
        (S.DEAD, S.DECIDED),  # Customs had the declaration after all
    ],
)
def test_design_transitions_are_allowed(current: S, target: S) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.REJECTED, S.ACCEPTED),
        (S.CANCELLED, S.FORWARDING),
        (S.ACCEPTED, S.DECIDED),
        (S.DECIDED, S.AMENDED),
        (S.NOTIFIED, S.CANCELLED),
        (S.RECEIVED, S.FORWARDED),
    ],
)
def test_other_transitions_raise(current: S, target: S) -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(current, target)
    assert info.value.code == "illegal_transition"
    assert current.value in info.value.message
    assert target.value in info.value.message


def test_new_item_starts_only_at_intake() -> None:
    with pytest.raises(IllegalTransition):
        transition(None, S.FORWARDED)


def test_every_state_has_its_rules_and_finals_are_final() -> None:
    assert set(ALLOWED) == set(S)
    assert {S.REJECTED, S.CANCELLED} == FINAL_STATES


def test_only_undecided_items_can_be_amended() -> None:
    amendable = {state for state in S if can_amend(state)}
    assert amendable == {S.ACCEPTED, S.FORWARDED, S.AMENDED}


def _item(state: S, version: int = 2) -> StoredItem:
    at = datetime(2026, 11, 26, tzinfo=UTC)
    return StoredItem("EADREF", "OP", "RR123456785DE", version, state, "DE", "B1", "d", at, at, b"")


def test_check_amendable_says_which_version_is_needed() -> None:
    item = _item(S.FORWARDED)
    assert check_amendable(item, "OP", item.item_id, version=3, replacing=True) is item
    assert check_amendable(item, "OP", item.item_id, version=2, replacing=False) is item
    with pytest.raises(IllegalTransition, match="a replacement must carry version 3, not 2"):
        check_amendable(item, "OP", item.item_id, version=2, replacing=True)
    with pytest.raises(IllegalTransition, match="a cancellation must name version 2, not 3"):
        check_amendable(item, "OP", item.item_id, version=3, replacing=False)


def test_check_amendable_refuses_decided_and_unknown_items() -> None:
    with pytest.raises(IllegalTransition, match="DECIDED"):
        check_amendable(_item(S.DECIDED), "OP", "RR123456785DE", version=3, replacing=True)
    with pytest.raises(NotFound):
        check_amendable(None, "OP", "RR123456785DE", version=1, replacing=False)


# --- the return path: decisions, notices, referral answers ----------------------------------

D = CustomsDecision
AT = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def _decided(item: StoredItem, code: D, referral: str | None = None) -> StoredItem:
    pending = "RFI-1" if item.decision in (D.REQUEST_INFO, D.REQUEST_SCREENING) else None
    outcome = decided(
        item, code, "customs:EU-ICS2", AT, referral_reference=referral, pending_referral=pending
    )
    assert outcome.applied
    assert outcome.event is not None
    assert outcome.event.to_state is S.DECIDED
    return outcome.item


def test_referral_round_trip_reaches_a_final_decision() -> None:
    """FORWARDED -> DECIDED(RFI) -> NOTIFIED -> answer -> FORWARDING -> FORWARDED -> DECIDED ->
    NOTIFIED, each step with its event."""
    item = _item(S.FORWARDED)
    item = _decided(item, D.REQUEST_INFO, "RFI-1")
    assert (item.state, item.decision) == (S.DECIDED, D.REQUEST_INFO)
    assert awaiting_answer(item)
    item, event = notified(item, "connector", AT, "notice NTC1")
    assert (event.from_state, event.to_state, item.state) == (S.DECIDED, S.NOTIFIED, S.NOTIFIED)
    assert awaiting_answer(item)
    item, event = answer_forwarding(item, "CH-POST", AT, "answer A1")
    assert (event.from_state, event.to_state) == (S.NOTIFIED, S.FORWARDING)
    assert not awaiting_answer(item)
    item = replace(item, state=transition(item.state, S.FORWARDED))
    item = _decided(item, D.RELEASE)
    assert (item.state, item.decision) == (S.DECIDED, D.RELEASE)
    item, _ = notified(item, "connector", AT)
    assert item.state is S.NOTIFIED


def test_the_decision_event_names_the_code_and_referral() -> None:
    """The DECIDED event's default detail carries the code and the referral reference."""
    outcome = decided(
        _item(S.FORWARDED), D.REQUEST_SCREENING, "customs", AT, referral_reference="RFS-7"
    )
    assert outcome.event is not None
    assert outcome.event.detail == "REQUEST_SCREENING RFS-7"
    assert outcome.item.updated_at == AT


@pytest.mark.parametrize(
    ("previous", "later", "legal"),
    [
        (D.HOLD, D.RELEASE, True),
        (D.HOLD, D.DO_NOT_LOAD, True),
        (D.HOLD, D.REJECTED, True),
        (D.HOLD, D.REQUEST_INFO, True),
        (D.REQUEST_INFO, D.RELEASE, True),
        (D.REQUEST_INFO, D.REQUEST_SCREENING, True),
        (D.REQUEST_SCREENING, D.DO_NOT_LOAD, True),
        (D.REQUEST_SCREENING, D.HOLD, True),
        (D.RELEASE, D.DO_NOT_LOAD, True),
        (D.RELEASE, D.HOLD, False),
        (D.RELEASE, D.REQUEST_INFO, False),
        (D.RELEASE, D.REJECTED, False),
        (D.DO_NOT_LOAD, D.RELEASE, False),
        (D.DO_NOT_LOAD, D.HOLD, False),
        (D.DO_NOT_LOAD, D.REQUEST_SCREENING, False),
        (D.REJECTED, D.RELEASE, False),
        (D.REJECTED, D.DO_NOT_LOAD, False),
    ],
)
def test_which_later_decisions_are_legal(previous: D, later: D, legal: bool) -> None:
    """Re-decisions follow the documented table; a refused one changes nothing and says why."""
    item = replace(_item(S.NOTIFIED), decision=previous)
    pending = "RFI-1" if previous in (D.REQUEST_INFO, D.REQUEST_SCREENING) else None
    referral = "RFX-2" if later in (D.REQUEST_INFO, D.REQUEST_SCREENING) else None
    if legal:
        outcome = decided(
            item, later, "customs", AT, referral_reference=referral, pending_referral=pending
        )
        assert outcome.verdict is Verdict.APPLY
        assert outcome.item.decision is later
        return
    with pytest.raises(IllegalTransition) as info:
        decided(item, later, "customs", AT, referral_reference=referral, pending_referral=pending)
    assert previous.value in info.value.message
    assert later.value in info.value.message
    assert info.value.context == {"previous": previous.value, "decision": later.value}


def test_every_decision_has_its_redecision_rule() -> None:
    """The table covers the undecided item and each of the six codes; three are terminal-ish."""
    assert set(REDECISIONS) == {None, *D}
    assert REDECISIONS[D.DO_NOT_LOAD] == frozenset()
    assert REDECISIONS[D.REJECTED] == frozenset()
    assert REDECISIONS[D.RELEASE] == {D.DO_NOT_LOAD}


@pytest.mark.parametrize(
    ("previous", "pending", "code", "referral", "verdict"),
    [
        (D.HOLD, None, D.HOLD, None, Verdict.REPEAT),
        (D.RELEASE, None, D.RELEASE, None, Verdict.REPEAT),
        (D.DO_NOT_LOAD, None, D.DO_NOT_LOAD, None, Verdict.REPEAT),
        (D.REQUEST_INFO, "RFI-1", D.REQUEST_INFO, "RFI-1", Verdict.REPEAT),
        (D.REQUEST_INFO, "RFI-1", D.REQUEST_INFO, "RFI-2", Verdict.APPLY),
        (None, None, D.REQUEST_INFO, "RFI-1", Verdict.APPLY),
    ],
)
def test_the_same_decision_again_is_a_repeat(
    previous: D | None, pending: str | None, code: D, referral: str | None, verdict: Verdict
) -> None:
    """A repeated decision changes nothing and writes no event; a new referral is new."""
    item = replace(_item(S.NOTIFIED if previous else S.FORWARDED), decision=previous)
    outcome = decided(
        item, code, "customs", AT, referral_reference=referral, pending_referral=pending
    )
    assert outcome.verdict is verdict
    if verdict is Verdict.REPEAT:
        assert outcome.item is item
        assert outcome.event is None
        assert not outcome.applied


@pytest.mark.parametrize("state", [S.FORWARDING, S.FORWARDED, S.DEAD, S.DECIDED, S.NOTIFIED])
def test_decidable_states(state: S) -> None:
    """Customs may decide on an item it has: forwarded, being (re)sent, or given up on."""
    assert state in DECIDABLE_STATES
    assert decided(_item(state), D.DO_NOT_LOAD, "customs", AT).item.state is S.DECIDED


@pytest.mark.parametrize("state", [S.RECEIVED, S.ACCEPTED, S.REJECTED, S.AMENDED, S.CANCELLED])
def test_items_never_sent_or_withdrawn_take_no_decision(state: S) -> None:
    """A decision for an item Customs never had (or one withdrawn) is an illegal transition."""
    with pytest.raises(IllegalTransition, match=state.value):
        judge_decision(_item(state), D.RELEASE)


@pytest.mark.parametrize(
    ("state", "decision"),
    [
        (S.NOTIFIED, D.RELEASE),
        (S.NOTIFIED, D.HOLD),
        (S.NOTIFIED, None),
        (S.FORWARDED, D.REQUEST_INFO),  # the answer was already forwarded
        (S.FORWARDING, D.REQUEST_SCREENING),
    ],
)
def test_only_an_item_waiting_for_an_answer_takes_one(state: S, decision: D | None) -> None:
    """An answer to an item not referred, decided finally, or already answered is refused."""
    item = replace(_item(state), decision=decision)
    assert not awaiting_answer(item)
    with pytest.raises(IllegalTransition, match="does not wait for a referral answer"):
        answer_forwarding(item, "CH-POST", AT)


def test_notified_needs_a_decided_item() -> None:
    """Only a DECIDED item becomes NOTIFIED."""
    with pytest.raises(IllegalTransition):
        notified(_item(S.FORWARDED), "connector", AT)


@given(st.lists(st.sampled_from(list(D)), max_size=12))
def test_nothing_follows_a_do_not_load(codes: list[D]) -> None:
    """Whatever Customs sends later, an item once DO_NOT_LOAD stays DO_NOT_LOAD."""
    item = _decided(_item(S.FORWARDED), D.DO_NOT_LOAD)
    for code in codes:
        try:
            outcome = decided(item, code, "customs", AT, referral_reference="R")
        except IllegalTransition:
            continue
        assert outcome.verdict is Verdict.REPEAT
    assert item.decision is D.DO_NOT_LOAD
