"""The item state machine (DESIGN.md section 3).

::

    RECEIVED -> ACCEPTED -> FORWARDING -> FORWARDED -> DECIDED -> NOTIFIED
        \\-> REJECTED            |  \\-> DEAD -> FORWARDING (replay by an admin)
                                 \\-> FORWARDING (retry)
    DECIDED | NOTIFIED (REQUEST_INFO | REQUEST_SCREENING) -> FORWARDING (the answer goes
        to Customs) -> FORWARDED -> DECIDED (the final decision) -> NOTIFIED
    NOTIFIED -> DECIDED (a later decision, e.g. HOLD then RELEASE)
    FORWARDING | DEAD -> DECIDED (Customs decided before the send was recorded as done)
    ACCEPTED | FORWARDED (undecided) -> AMENDED -> FORWARDING (new version) | CANCELLED

Every transition is written as an ``item_events`` row in the same transaction as the state
change; :func:`transition` is the only way to compute the next state.

The state alone does not say which decision an item may take next: :func:`decided` also
checks the decision against the item's previous one (:data:`REDECISIONS`), as Customs works:

==================== ==========================================================================
previous decision    later decisions accepted
==================== ==========================================================================
none                 any
REQUEST_INFO,        any: the final decision after the answer (or without waiting for it), or
REQUEST_SCREENING    another referral (an RFI followed by a request for screening)
HOLD                 any but HOLD: the outcome of the inspection (RELEASE, DO_NOT_LOAD,
                     REJECTED) or a referral raised during it
RELEASE              DO_NOT_LOAD only: new intelligence can stop an item Customs released
                     before loading; the connector cannot know whether it was loaded, and a
                     late stop is harmless where a dropped one is not. A HOLD or a referral
                     after a release is refused (a post-departure matter, not this channel's)
DO_NOT_LOAD          none: the item must not travel, whatever comes later
REJECTED             none: the declaration was refused; the operator corrects and resends
==================== ==========================================================================

The same decision again (same code, and for a referral the same referral reference) is a
*repeat*: nothing changes and no notice is produced. A referral with a new reference is a new
decision. "Waiting for an answer" is not a state of its own: it is an item DECIDED or NOTIFIED
whose decision is REQUEST_INFO or REQUEST_SCREENING (:func:`awaiting_answer`); the answer
moves it to FORWARDING (:func:`answer_forwarding`) and a second answer is refused.

A decision is accepted in FORWARDING and DEAD too: Customs deciding on an item proves it has
the declaration, and a DO_NOT_LOAD must never be dropped because the send was not yet (or
never) recorded as done. The store must then leave such an item alone when it records the send
(``record_forwarded`` only moves items still FORWARDING).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from connector.core.model import CustomsDecision, IncomingItem, ItemEvent, ItemState, StoredItem
from connector.errors import IllegalTransition, NotFound

__all__ = [
    "ALLOWED",
    "DECIDABLE_STATES",
    "FINAL_STATES",
    "REDECISIONS",
    "DecisionOutcome",
    "Verdict",
    "amended",
    "answer_forwarding",
    "awaiting_answer",
    "can_amend",
    "cancelled",
    "check_amendable",
    "decided",
    "judge_decision",
    "notified",
    "transition",
]

S = ItemState
D = CustomsDecision

ALLOWED: MappingProxyType[ItemState, frozenset[ItemState]] = MappingProxyType(
    {
        S.RECEIVED: frozenset({S.ACCEPTED, S.REJECTED}),
        S.ACCEPTED: frozenset({S.FORWARDING, S.AMENDED, S.CANCELLED}),
        S.FORWARDING: frozenset({S.FORWARDED, S.FORWARDING, S.DEAD, S.DECIDED}),
        S.FORWARDED: frozenset({S.DECIDED, S.AMENDED, S.CANCELLED}),
        S.DECIDED: frozenset({S.NOTIFIED, S.FORWARDING, S.DECIDED}),
        S.NOTIFIED: frozenset({S.DECIDED, S.FORWARDING}),
        S.DEAD: frozenset({S.FORWARDING, S.DECIDED}),
        S.AMENDED: frozenset({S.FORWARDING, S.AMENDED, S.CANCELLED}),
        S.REJECTED: frozenset(),
        S.CANCELLED: frozenset(),
    }
)

#: States that no transition leaves.
FINAL_STATES = frozenset(state for state, targets in ALLOWED.items() if not targets)

#: States in which an item may take a Customs decision.
DECIDABLE_STATES = frozenset(state for state, targets in ALLOWED.items() if S.DECIDED in targets)

_INTERIM = frozenset({D.REQUEST_INFO, D.REQUEST_SCREENING})

#: For each previous decision (None: undecided), the different decisions that may follow it.
REDECISIONS: MappingProxyType[CustomsDecision | None, frozenset[CustomsDecision]] = (
    MappingProxyType(
        {
            None: frozenset(D),
            D.REQUEST_INFO: frozenset(D),
            D.REQUEST_SCREENING: frozenset(D),
            D.HOLD: frozenset(D) - {D.HOLD},
            D.RELEASE: frozenset({D.DO_NOT_LOAD}),
            D.DO_NOT_LOAD: frozenset(),
            D.REJECTED: frozenset(),
        }
    )
)


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


# --- the return path: decisions, notices, referral answers ----------------------------------


class Verdict(StrEnum):
    """What a Customs decision does to an item."""

    #: A new decision: the item moves to DECIDED, the event is written, a notice follows.
    APPLY = "APPLY"
    #: The decision the item already has: nothing changes, no notice.
    REPEAT = "REPEAT"


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """The item after a Customs decision, and the event to write (None for a repeat)."""

    verdict: Verdict
    item: StoredItem
    event: ItemEvent | None

    @property
    def applied(self) -> bool:
        return self.verdict is Verdict.APPLY


def judge_decision(
    item: StoredItem,
    code: CustomsDecision,
    *,
    referral_reference: str | None = None,
    pending_referral: str | None = None,
) -> Verdict:
    """Whether ``code`` is a new decision or a repeat for ``item``; raise if not allowed.

    ``referral_reference`` is the new decision's; ``pending_referral`` the one stored with the
    item's current (interim) decision. See the table in the module docstring.

    Raises:
        IllegalTransition: the item is not in a decidable state, or the re-decision is refused.
    """
    if item.state not in DECIDABLE_STATES:
        raise IllegalTransition(
            f"item {item.item_id} is {item.state.value} and cannot take a Customs decision",
            from_state=item.state.value,
            to_state=S.DECIDED.value,
        )
    previous = item.decision
    if previous is code and (code not in _INTERIM or referral_reference == pending_referral):
        return Verdict.REPEAT
    if code not in REDECISIONS[previous]:
        assert previous is not None
        raise IllegalTransition(
            f"item {item.item_id} has the decision {previous.value}, which {code.value} "
            "cannot follow",
            previous=previous.value,
            decision=code.value,
        )
    return Verdict.APPLY


def decided(
    current: StoredItem,
    code: CustomsDecision,
    actor: str,
    at: datetime,
    *,
    referral_reference: str | None = None,
    pending_referral: str | None = None,
    detail: str = "",
) -> DecisionOutcome:
    """The item after Customs decided ``code`` on it (see :func:`judge_decision`).

    The event's detail is ``detail`` or, by default, the code and referral reference.

    Raises:
        IllegalTransition: as :func:`judge_decision`.
    """
    verdict = judge_decision(
        current, code, referral_reference=referral_reference, pending_referral=pending_referral
    )
    if verdict is Verdict.REPEAT:
        return DecisionOutcome(verdict, current, None)
    state = transition(current.state, S.DECIDED)
    item = replace(current, state=state, decision=code, updated_at=at)
    text = detail or " ".join(filter(None, (code.value, referral_reference)))
    return DecisionOutcome(
        verdict, item, ItemEvent(current.reference, at, actor, current.state, state, text)
    )


def notified(
    current: StoredItem, actor: str, at: datetime, detail: str = ""
) -> tuple[StoredItem, ItemEvent]:
    """The item once the notice of its decision exists, and the event to write.

    Raises:
        IllegalTransition: the item is not DECIDED.
    """
    state = transition(current.state, S.NOTIFIED)
    item = replace(current, state=state, updated_at=at)
    return item, ItemEvent(current.reference, at, actor, current.state, state, detail)


def awaiting_answer(item: StoredItem) -> bool:
    """Whether the item waits for the operator's referral answer."""
    return item.state in (S.DECIDED, S.NOTIFIED) and item.decision in _INTERIM


def answer_forwarding(
    current: StoredItem, actor: str, at: datetime, detail: str = ""
) -> tuple[StoredItem, ItemEvent]:
    """The item once the operator's referral answer is queued for Customs, and the event.

    Raises:
        IllegalTransition: the item does not wait for an answer (never referred, decided
            finally since, or already answered).
    """
    if not awaiting_answer(current):
        decision = current.decision.value if current.decision is not None else "no decision"
        raise IllegalTransition(
            f"item {current.item_id} does not wait for a referral answer "
            f"({current.state.value}, {decision})",
            from_state=current.state.value,
            to_state=S.FORWARDING.value,
        )
    state = transition(current.state, S.FORWARDING)
    item = replace(current, state=state, updated_at=at)
    return item, ItemEvent(current.reference, at, actor, current.state, state, detail)
