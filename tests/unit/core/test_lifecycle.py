"""The item state machine: the transitions of DESIGN.md section 3, nothing else."""

from __future__ import annotations

import pytest

from connector.core.lifecycle import ALLOWED, FINAL_STATES, can_amend, transition
from connector.core.model import ItemState as S
from connector.errors import IllegalTransition

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
