"""The item state machine: the transitions of DESIGN.md section 3, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.core.lifecycle import ALLOWED, FINAL_STATES, can_amend, check_amendable, transition
from connector.core.model import ItemState as S
from connector.core.model import StoredItem
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
