"""The ports: small Protocols between the flow stages and the adapters.

Each port has a real adapter under :mod:`connector.adapters` and an in-memory fake in
:mod:`connector.testing`; both pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from connector.core.checks.outcome import Finding
from connector.core.decisions import DecisionProblem
from connector.core.model import (
    CustomsDecision,
    IncomingItem,
    Intake,
    IntakeResult,
    ItemEvent,
    ItemState,
    StoredItem,
)
from connector.core.notices import ItemNotice
from connector.core.referrals import ReferralAnswer
from connector.core.retry import RetryDecision

__all__ = [
    "AdminOperator",
    "AnswerClaim",
    "AppliedResponse",
    "AuditEntry",
    "Clock",
    "CopyClaim",
    "CustomsGateway",
    "CustomsReceipt",
    "DecisionTarget",
    "DecisionToApply",
    "FetchedBatch",
    "ForwardClaim",
    "ItemSearch",
    "ItemStats",
    "ItemStore",
    "NoticeClaim",
    "NoticeWebhook",
    "OperatorRecord",
    "OperatorSource",
    "ReceivedAnswer",
    "ReceivedResponse",
    "RecordedAnswer",
    "ScheduleState",
    "StoredAnswer",
    "StoredNotice",
]


class Clock(Protocol):
    """Tells the time; inject a fixed one in tests."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """A postal operator as authentication sees it."""

    operator_id: str
    name: str
    enabled: bool = True
    token_sha256: str | None = None
    cert_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class AdminOperator:
    """An operator as administration sees it: the record (``enabled`` is whether it may
    authenticate now) and who manages it.

    ``managed_by`` is ``config`` (declared in the configuration file, synced at startup) or
    ``admin`` (added through administration). ``admin_disabled``: an administrator disabled it
    and only an administrator enables it again. ``token_rotated_at``: when an administrator
    last set its token; the configured token is then ignored.
    """

    record: OperatorRecord
    managed_by: str
    admin_disabled: bool
    updated_at: datetime
    token_rotated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One administrator's action that changed something (``id`` set once stored).

    ``actor`` is ``api`` or ``cli``; ``detail`` is a small JSON object that never holds a
    secret; ``request_id`` is the admin API call's ``X-Request-Id``.
    """

    at: datetime
    actor: str
    action: str
    target: str
    detail: Mapping[str, object] = field(default_factory=dict)
    request_id: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ItemSearch:
    """What :meth:`ItemStore.search_items` looks for; None means any.

    Items come newest first: by ``received_at`` descending, then reference descending.
    ``received_from`` is inclusive, ``received_to`` exclusive; ``after`` is the
    (``received_at``, reference) of the last item of the previous page.
    """

    operator_id: str | None = None
    state: ItemState | None = None
    decision: CustomsDecision | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store knows about one pull schedule."""

    schedule_id: str
    paused: bool = False
    last_fire_time: datetime | None = None
    last_result: str | None = None
    last_finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ItemStats:
    """How many items are in each state, and since when the oldest unforwarded one waits."""

    by_state: Mapping[str, int]
    oldest_waiting: datetime | None  # received_at of the oldest ACCEPTED or FORWARDING item


class ItemStore(Protocol):
    """Durable state of the connector. Every method is one transaction."""

    async def record_intake(self, intake: Intake) -> tuple[IntakeResult, ...]:
        """Store a batch's accepted items with their events and forwarding work.

        Per (operator, item id): a new item is stored as ACCEPTED with version 1, an
        identical resend is a no-op (DUPLICATE, same reference), different content is a
        CONFLICT and changes nothing. For a pull, ``intake.cursor`` is saved in the same
        transaction. Results come in the order of ``intake.items``.
        """
        ...

    async def get_item(self, operator_id: str, item_id: str) -> StoredItem | None:
        """The operator's item, or None (never another operator's)."""
        ...

    async def find_items(self, item_id: str) -> tuple[StoredItem, ...]:
        """Items with this id across all operators (administration only)."""
        ...

    async def item_events(self, reference: str) -> tuple[ItemEvent, ...]:
        """An item's history, oldest first."""
        ...

    async def amend_item(
        self, operator_id: str, item: IncomingItem, version: int, at: datetime
    ) -> StoredItem:
        """Replace an undecided item with ``version`` (= current version + 1).

        Raises NotFound for an unknown item, IllegalTransition when it is decided, final
        or ``version`` is not the current version + 1 (the message names the current one).
        """
        ...

    async def cancel_item(
        self, operator_id: str, item_id: str, version: int, reason: str, at: datetime
    ) -> StoredItem:
        """Withdraw an undecided item at its current ``version`` (errors as amend_item)."""
        ...

    async def get_cursor(self, operator_id: str) -> str | None:
        """The operator's pull cursor (None before the first pull)."""
        ...

    async def record_pull_error(self, operator_id: str, error: str, at: datetime) -> None:
        """Note a failed pull; the cursor stays where it was."""
        ...

    async def claim_tick(self, schedule_id: str, fire_time: datetime, owner: str) -> bool:
        """Claim one scheduled run; only the first claimant of (schedule, fire time) wins."""
        ...

    async def finish_tick(
        self, schedule_id: str, fire_time: datetime, result: str, at: datetime
    ) -> None:
        """Record how a claimed run ended (``ok: ...`` or ``error: ...``)."""
        ...

    async def set_paused(
        self, schedule_id: str, paused: bool, *, audit: AuditEntry | None = None
    ) -> None:
        """Pause or resume a schedule for every replica (``audit`` appended in the same
        transaction)."""
        ...

    async def schedule_states(self) -> dict[str, ScheduleState]:
        """Every schedule the store knows, by id."""
        ...

    async def upsert_operators(self, operators: tuple[OperatorRecord, ...]) -> tuple[str, ...]:
        """Make the configuration-managed operators match the configuration (by id).

        Configured operators are inserted or updated (an admin-added one with a configured id
        becomes configuration-managed); configuration-managed operators no longer configured
        are disabled and lose their credentials. Admin-added operators are left alone. An
        administrator's decisions survive: ``admin_disabled`` is never cleared, and a token
        an administrator set is kept (the configured one is ignored). Returns the ids of the
        operators whose configured token was ignored for that reason. Two operators sharing a
        credential is a ConfigurationError.
        """
        ...

    async def item_stats(self) -> ItemStats:
        """Items per state and the oldest one still waiting to be forwarded (metrics)."""
        ...

    async def operator_by_token(self, token_sha256: str) -> OperatorRecord | None:
        """The enabled operator whose token hashes to ``token_sha256``."""
        ...

    async def operator_by_cert(self, cert_sha256: str) -> OperatorRecord | None:
        """The enabled operator whose client certificate has this SHA-256 fingerprint."""
        ...

    # -- administration -----------------------------------------------------------------------

    async def admin_operators(self) -> tuple[AdminOperator, ...]:
        """Every operator (enabled or not, however managed), by id."""
        ...

    async def add_operator(self, operator: OperatorRecord, audit: AuditEntry) -> AdminOperator:
        """Add an admin-managed operator (its token, if any, counts as set by an admin).
        IllegalTransition when the id or a credential is taken."""
        ...

    async def set_operator_disabled(
        self, operator_id: str, disabled: bool, audit: AuditEntry
    ) -> AdminOperator:
        """Set or clear ``admin_disabled``. NotFound for an unknown id; enabling one that the
        configuration disables (or no longer declares) is IllegalTransition."""
        ...

    async def rotate_operator_token(
        self, operator_id: str, token_sha256: str, audit: AuditEntry
    ) -> AdminOperator:
        """Replace the operator's token at once (the old one stops working); NotFound for an
        unknown id, IllegalTransition when the new digest is another operator's."""
        ...

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Append an audit row for a change made outside the store (e.g. the key ring)."""
        ...

    async def audit_after(self, after: int, limit: int) -> tuple[AuditEntry, ...]:
        """Audit rows with an id above ``after``, oldest first, at most ``limit``."""
        ...

    async def search_items(self, search: ItemSearch) -> tuple[StoredItem, ...]:
        """Items of any operator matching ``search``, one page (see :class:`ItemSearch`)."""
        ...

    async def claim_for_forwarding(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[ForwardClaim, ...]:
        """Claim due items (and expired claims of crashed workers) for ``owner``, moving
        each to FORWARDING with an event; the lease ends at ``now + lease_s``."""
        ...

    async def record_forwarded(
        self,
        claims: Sequence[ForwardClaim],
        owner: str,
        declaration_batch_id: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
        *,
        copies: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Mark the claims ``owner`` still holds FORWARDED and keep the evidence; returns
        how many it still held.

        ``copies`` maps an item reference to the agency ids that get a copy of it: for each
        claim still held, one copy job per agency (kind ``copy:<agency>``) is queued in the
        same transaction, due at ``at`` (replacing a pending copy job of the same agency).
        """
        ...

    async def record_forward_failure(
        self,
        claims: Sequence[ForwardClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Schedule a retry or make the items DEAD, per ``decision``; owner-guarded."""
        ...

    async def extend_leases(
        self, outbox_ids: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        """Renew the leases of the jobs (forward or copy) ``owner`` still holds to ``until``,
        noting the heartbeat at ``now``; returns how many it still held."""
        ...

    async def claim_copies(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[CopyClaim, ...]:
        """Claim due agency copy jobs (and expired claims of crashed workers) for ``owner``
        until ``now + lease_s``. The items' states do not change."""
        ...

    async def record_copied(
        self,
        claims: Sequence[CopyClaim],
        owner: str,
        copy_batch_id: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> int:
        """Complete the copy jobs ``owner`` still holds and keep the signed copy and the
        agency's receipt as evidence (destination: the agency); returns how many it held."""
        ...

    async def record_copy_failure(
        self,
        claims: Sequence[CopyClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Schedule a retry of the copy jobs, or make them dead (the copies only: the items
        are untouched), per ``decision``; owner-guarded."""
        ...

    async def purge_evidence(self, before: datetime) -> int:
        """Delete the evidence (signed batches, copies and receipts) sent before ``before``;
        returns how many were deleted."""
        ...

    async def dead_letters(self) -> tuple[StoredItem, ...]:
        """Items that will not be forwarded again without an administrator's replay."""
        ...

    async def replay(
        self, reference: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> StoredItem:
        """Queue a DEAD item for forwarding again, now (its dead forward or answer job);
        ``audit`` is appended in the same transaction."""
        ...

    # -- referral answers --------------------------------------------------------------------

    async def record_answer(self, answer: ReceivedAnswer) -> RecordedAnswer:
        """Store an operator's referral answer and queue it for Customs, in one transaction.

        An answer already stored under (operator, answer id) with the same digest is a no-op
        returning the first result (``duplicate`` set); with another digest it raises
        IllegalTransition. Otherwise the operator's item is locked and the answer checked
        against its pending referral (:func:`connector.core.referrals.check_answer`: NotFound
        when none is pending, ReferralMismatch for another reference or kind); the item moves
        to FORWARDING (:func:`connector.core.lifecycle.answer_forwarding`) with its event, and
        one ``answer`` job is queued, due at ``answer.received_at``.
        """
        ...

    async def claim_answers(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[AnswerClaim, ...]:
        """Claim due ``answer`` jobs (and expired claims of crashed workers) for ``owner``
        until ``now + lease_s``. The items stay FORWARDING."""
        ...

    async def record_answer_sent(
        self,
        claim: AnswerClaim,
        owner: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> bool:
        """Complete the job if ``owner`` still holds it: the item, if still FORWARDING, moves
        to FORWARDED (awaiting the final decision) with its event. The signed answer and the
        receipt are kept with the answer either way (it did reach Customs)."""
        ...

    async def record_answer_failure(
        self,
        claims: Sequence[AnswerClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Schedule a retry of the answer jobs or make them (and their items, if still
        FORWARDING) DEAD, per ``decision``; owner-guarded. Returns how many were held."""
        ...

    async def answers_of(self, reference: str) -> tuple[StoredAnswer, ...]:
        """An item's referral answers, oldest first, with how far each got."""
        ...

    async def save_cursor(self, source_id: str, cursor: str, at: datetime) -> None:
        """Move a pull cursor outside an intake (e.g. ``customs:<destination>`` for a polled
        Customs feed); forgets the last pull error."""
        ...

    # -- the return path: Customs decisions and notices --------------------------------------

    async def decision_targets(self, references: Sequence[str]) -> dict[str, DecisionTarget]:
        """The items with these connector references (unknown ones are left out), each with
        the referral reference of its current decision."""
        ...

    async def apply_response(
        self, response: ReceivedResponse, decisions: Sequence[DecisionToApply]
    ) -> AppliedResponse:
        """Record a Customs response and apply its decisions, in one transaction.

        The response is stored first; one already received from the same destination with
        the same id raises ResponseReplayed and nothing changes. Each decision is judged again
        by :func:`connector.core.lifecycle.decided` on the item as it is now: applied (item
        DECIDED with the decision and its referral reference, the event, and the signed
        notice stored with the next feed sequence; the item's forward job, if still open, is
        done: Customs has the declaration), a repeat (nothing, no notice) or refused (a
        problem, nothing). A notice is stored exactly when its decision is applied.
        """
        ...

    async def notices_after(
        self, operator_id: str, after: int, limit: int
    ) -> tuple[StoredNotice, ...]:
        """The operator's notices with a sequence above ``after``, in sequence order, at most
        ``limit``: the feed page after cursor ``after``."""
        ...

    async def item_notices(self, reference: str) -> tuple[StoredNotice, ...]:
        """An item's notices in sequence order, with their delivery state."""
        ...

    # -- webhook delivery of the notices ----------------------------------------------------

    async def claim_notices(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        now: datetime,
        *,
        operators: Collection[str],
    ) -> tuple[NoticeClaim, ...]:
        """Claim up to ``limit`` due notices of ``operators`` (those with a webhook) for
        ``owner`` until ``now + lease_s``.

        Due: pending with ``next_attempt_at <= now``, or claimed with an expired lease. A
        notice is never claimed while an earlier notice of its item is pending or claimed, so
        an item's notices are delivered in sequence order (a dead one no longer holds the
        next back). Items go by their most urgent undelivered notice (DO_NOT_LOAD first),
        then by sequence; the claims come in that order.
        """
        ...

    async def record_notice_delivered(
        self, claims: Sequence[NoticeClaim], owner: str, at: datetime
    ) -> int:
        """Mark the notices ``owner`` still holds delivered (the attempt counted); an item
        still DECIDED whose latest notice this is moves to NOTIFIED with its event, in the
        same transaction. Returns how many ``owner`` still held."""
        ...

    async def record_notice_failure(
        self,
        claims: Sequence[NoticeClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Count a failed attempt of the notices ``owner`` still holds: pending again at
        ``decision.retry_at``, or dead (still in the feed, listed by :meth:`dead_notices`).
        The items keep their state."""
        ...

    async def extend_notice_leases(
        self, sequences: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        """Renew the leases of the notices ``owner`` still holds to ``until``; how many."""
        ...

    async def dead_notices(self, limit: int = 1000) -> tuple[StoredNotice, ...]:
        """Notices whose webhook delivery gave up, oldest first (administration)."""
        ...


@dataclass(frozen=True, slots=True)
class DecisionTarget:
    """An item a Customs decision names, with the referral reference of its current decision
    (``pending_referral`` of :func:`connector.core.lifecycle.decided`)."""

    item: StoredItem
    referral_reference: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedResponse:
    """A verified Customs response as it is kept: the replay key and the evidence."""

    destination: str
    response_id: str
    issued_at: datetime
    received_at: datetime
    signed_xml: bytes  # the bytes as received, signature included
    decision_count: int  # decisions in the document, refused ones included


@dataclass(frozen=True, slots=True)
class DecisionToApply:
    """One decision to apply, with its notice already built and signed by the connector.

    ``notice`` carries the item reference, the decision, its referral reference and the
    operator; ``index`` is the decision's position in the response (for problems).
    """

    index: int
    notice: ItemNotice
    signed_xml: bytes


@dataclass(frozen=True, slots=True)
class AppliedResponse:
    """What :meth:`ItemStore.apply_response` did with the decisions it was given."""

    applied: tuple[ItemNotice, ...] = ()  # the stored notices, with their sequence
    repeated: tuple[str, ...] = ()  # item references that had this decision already
    problems: tuple[DecisionProblem, ...] = ()  # refused by the lifecycle, nothing changed


@dataclass(frozen=True, slots=True)
class StoredNotice:
    """A stored notice (``notice.sequence`` set), its signed bytes and its webhook delivery."""

    notice: ItemNotice
    signed_xml: bytes
    destination: str
    response_id: str
    created_at: datetime
    status: str  # pending | claimed | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    @property
    def sequence(self) -> int:
        assert self.notice.sequence is not None
        return self.notice.sequence


@dataclass(frozen=True, slots=True)
class NoticeClaim:
    """One notice claimed for webhook delivery: the signed bytes and the lease's history."""

    notice: ItemNotice  # with its sequence
    signed_xml: bytes  # exactly as stored (and as the feed serves it)
    attempts: int  # previous attempts, 0 the first time
    taken_over: bool = False  # claimed from a replica whose lease ran out

    @property
    def sequence(self) -> int:
        assert self.notice.sequence is not None
        return self.notice.sequence


class NoticeWebhook(Protocol):
    """POSTs signed notices to operators' webhooks."""

    async def deliver(self, url: str, notice_id: str, signed_xml: bytes) -> None:
        """Deliver one signed notice; return when the webhook answered 2xx.

        Raises:
            WebhookUnavailable: not delivered now (connection, timeout, TLS, 408/425/429,
                5xx, redirects, 401/403/404/405): send again later.
            WebhookRefused: the webhook refused the notice (another 4xx): sending the same
                bytes again would not help.
        """
        ...


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """One batch read from an operator's pull source."""

    data: bytes
    cursor: str  # the source position after this batch
    name: str  # where it came from (file name or URL), for logs and errors


class OperatorSource(Protocol):
    """Where the connector pulls an operator's batches from."""

    async def fetch(self, cursor: str | None) -> FetchedBatch | None:
        """The next batch after ``cursor``, or None when there is nothing new."""
        ...

    async def done(
        self, batch: FetchedBatch, ok: bool, detail: str, receipt: bytes | None = None
    ) -> None:
        """Tell the source the batch was stored (ok) or refused (not ok).

        ``receipt`` is the acknowledgement XML of a stored batch (per item accepted with its
        reference, or rejected with its errors), for sources that can hand it back.
        """
        ...


@dataclass(frozen=True, slots=True)
class ForwardClaim:
    """One item claimed for forwarding: the work and its lease."""

    outbox_id: int
    reference: str
    operator_id: str
    item_id: str
    version: int
    destination_country: str
    item_xml: bytes
    attempts: int  # previous attempts, 0 the first time
    findings: tuple[Finding, ...] = ()  # warnings of the intake checks, forwarded to Customs


@dataclass(frozen=True, slots=True)
class CopyClaim:
    """One item claimed for a copy to an agency: the work and its lease."""

    outbox_id: int
    agency: str
    reference: str
    operator_id: str
    item_id: str
    version: int
    destination_country: str
    item_xml: bytes
    attempts: int  # previous attempts, 0 the first time


@dataclass(frozen=True, slots=True)
class CustomsReceipt:
    """What a Customs system answered to one declaration batch."""

    destination: str
    declaration_batch_id: str
    received_at: datetime
    receipt: bytes  # the raw answer, kept as evidence


class CustomsGateway(Protocol):
    """Sends signed declaration batches to Customs destinations, and signed agency copies
    to agencies (same protocol; the batch id is then the copy batch id)."""

    async def send(
        self, destination: str, declaration_batch_id: str, signed_xml: bytes
    ) -> CustomsReceipt:
        """Deliver one signed batch; raise CustomsUnavailable (retry later) or CustomsRefused.

        ``declaration_batch_id`` is the idempotency key: sending the same id again must not
        create a second declaration at Customs.
        """
        ...


@dataclass(frozen=True, slots=True)
class ReceivedAnswer:
    """A validated referral answer as the store keeps it (see :meth:`ItemStore.record_answer`)."""

    answer: ReferralAnswer
    answer_xml: bytes  # rebuilt from the value (referral_answer_xml), unsigned
    digest: str  # SHA-256 hex of answer_xml: what "the same answer" means
    received_at: datetime


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """What :meth:`ItemStore.record_answer` did (or had done, for a repeat)."""

    answer_id: str
    operator_id: str
    item_id: str
    reference: str
    referral_reference: str
    kind: CustomsDecision  # REQUEST_INFO or REQUEST_SCREENING
    received_at: datetime
    duplicate: bool = False  # the same answer again: nothing changed

    def as_dict(self) -> dict[str, object]:
        """The JSON answer of ``POST /v1/answers`` (the same for a repeat)."""
        return {
            "answer_id": self.answer_id,
            "item_id": self.item_id,
            "reference": self.reference,
            "referral_reference": self.referral_reference,
            "referral": self.kind.value,
            "state": "FORWARDING",
            "received_at": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class AnswerClaim:
    """One referral answer claimed for forwarding to Customs: the work and its lease."""

    outbox_id: int
    reference: str
    operator_id: str
    item_id: str
    destination_country: str
    answer_id: str
    answer_xml: bytes  # as stored: unsigned, rebuilt from the validated value
    attempts: int  # previous attempts, 0 the first time


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A stored referral answer and how far it got (``sent_at`` None: not delivered yet)."""

    answer_id: str
    referral_reference: str
    kind: CustomsDecision
    received_at: datetime
    status: str  # the answer job's: pending | claimed | done | dead
    attempts: int = 0
    last_error: str | None = None
    destination: str | None = None
    sent_at: datetime | None = None
