"""The item state machine (DESIGN.md section 3).

::

    RECEIVED -> ACCEPTED -> FORWARDING -> FORWARDED -> DECIDED -> NOTIFIED
        \\-> REJECTED            |  \\-> DEAD -> FORWARDING (replay by an admin)
                                 \\-> FORWARDING (retry)
    DECIDED (REQUEST_INFO | REQUEST_SCREENING) -> FORWARDING (the answer goes to Customs)
    NOTIFIED -> DECIDED (a later decision, e.g. HOLD then RELEASE)
    ACCEPTED | FORWARDED (undecided) -> AMENDED -> FORWARDING (new version) | CANCELLED

Every transition is written as an ``item_events`` row in the same transaction as the state
change; :func:`transition` is the only way to compute the next state.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

from connector.core.model import IncomingItem, ItemEvent, ItemState, StoredItem
from connector.errors import IllegalTransition, NotFound

__all__ = [
    "ALLOWED",
    "FINAL_STATES",
    "amended",
    "can_amend",
    "cancelled",
    "check_amendable",
    "transition",
]

S = ItemState

ALLOWED: MappingProxyType[ItemState, frozenset[ItemState]] = MappingProxyType(
    {
        S.RECEIVED: frozenset({S.ACCEPTED, S.REJECTED}),
        S.ACCEPTED: frozenset({S.FORWARDING, S.AMENDED, S.CANCELLED}),
        S.FORWARDING: frozenset({S.FORWARDED, S.FORWARDING, S.DEAD}),
        S.FORWARDED: frozenset({S.DECIDED, S.AMENDED, S.CANCELLED}),
        S.DECIDED: frozenset({S.NOTIFIED, S.FORWARDING, S.DECIDED}),
        S.NOTIFIED: frozenset({S.DECIDED, S.FORWARDING}),
        S.DEAD: frozenset({S.FORWARDING}),
        S.AMENDED: frozenset({S.FORWARDING, S.AMENDED, S.CANCELLED}),
        S.REJECTED: frozenset(),
        S.CANCELLED: frozenset(),
    }
)

#: States that no transition leaves.
FINAL_STATES = frozenset(state for state, targets in ALLOWED.items() if not targets)


def transition(current: ItemState | None, target: ItemState) -> ItemState:
    """Return ``target`` if an item in ``current`` may move there, else raise.

    ``current`` is None for an item not seen before; it may only be RECEIVED or, when intake
    records reception and acceptance together, ACCEPTED or REJECTED.
    """
    if current is None:
        if target in (S.RECEIVED, S.ACCEPTED, S.REJECTED):
            return target
        raise IllegalTransition(f"a new item cannot start in state {target.value}")
    if target not in ALLOWED[current]:
        raise IllegalTransition(
            f"an item in state {current.value} cannot move to {target.value}",
            from_state=current.value,
            to_state=target.value,
        )
    return target


def can_amend(state: ItemState) -> bool:
    """Whether an item in ``state`` is still undecided and may be amended or cancelled."""
    return S.AMENDED in ALLOWED[state] or state is S.AMENDED


def check_amendable(
    item: StoredItem | None, operator_id: str, item_id: str, *, version: int, replacing: bool
) -> StoredItem:
    """``item`` if the operator may replace (``version`` = current + 1) or cancel
    (``version`` = current) it now; otherwise NotFound or IllegalTransition saying why."""
    if item is None:
        raise NotFound(f"no item {item_id} of operator {operator_id}")
    if not can_amend(item.state):
        raise IllegalTransition(
            f"item {item_id} is {item.state.value} and can no longer be amended or cancelled"
        )
    required = item.version + 1 if replacing else item.version
    if version != required:
        what = "a replacement must carry" if replacing else "a cancellation must name"
        raise IllegalTransition(
            f"item {item_id} is at version {item.version}; {what} version {required}, "
            f"not {version}",
            current_version=item.version,
        )
    return item


def amended(
    current: StoredItem, incoming: IncomingItem, version: int, actor: str, at: datetime
) -> tuple[StoredItem, ItemEvent]:
    """The item after an operator's replacement at ``version``, and the event to write."""
    state = transition(current.state, ItemState.AMENDED)
    item = replace(
        current,
        version=version,
        state=state,
        digest=incoming.digest,
        item_xml=incoming.item_xml,
        destination_country=incoming.destination_country,
        updated_at=at,
    )
    return item, ItemEvent(current.reference, at, actor, current.state, state, f"version {version}")


def cancelled(
    current: StoredItem, reason: str, actor: str, at: datetime
) -> tuple[StoredItem, ItemEvent]:
    """The item after an operator withdrew it, and the event to write."""
    state = transition(current.state, ItemState.CANCELLED)
    item = replace(current, state=state, updated_at=at)
    return item, ItemEvent(current.reference, at, actor, current.state, state, reason)
