"""In-memory fakes of the ports, for unit tests and the demo.

They implement the same contract as the real adapters (the store contract tests run against
both), keep everything in dictionaries and never touch the network or the disk.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from connector.core import decisions as core_decisions
from connector.core import lifecycle, referrals
from connector.core.decisions import DecisionProblem
from connector.core.model import (
    CustomsDecision,
    IncomingItem,
    Intake,
    IntakeResult,
    IntakeStatus,
    ItemEvent,
    ItemState,
    StoredItem,
)
from connector.core.notices import ItemNotice
from connector.core.references import item_reference
from connector.core.retry import RetryDecision
from connector.errors import ConfigurationError, IllegalTransition, NotFound, ResponseReplayed
from connector.ports import (
    AdminOperator,
    AnswerClaim,
    AppliedResponse,
    AuditEntry,
    CopyClaim,
    CustomsReceipt,
    DecisionTarget,
    DecisionToApply,
    ForwardClaim,
    ItemSearch,
    ItemStats,
    NoticeClaim,
    OperatorRecord,
    ReceivedAnswer,
    ReceivedResponse,
    RecordedAnswer,
    ScheduleState,
    StoredAnswer,
    StoredNotice,
)

__all__ = ["Declaration", "FrozenClock", "InMemoryItemStore", "OutboxJob", "SystemClock"]


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FrozenClock:
    """A clock that moves only when told to."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 26, 8, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@dataclass
class _Tick:
    owner: str
    result: str | None = None
    finished_at: datetime | None = None


@dataclass
class OutboxJob:
    """One forwarding job, as a row of the SQL store's ``outbox`` table."""

    id: int
    reference: str
    status: str  # pending | claimed | done | dead
    next_attempt_at: datetime
    attempts: int = 0
    owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    kind: str = "forward"  # or "copy:<agency id>"
    heartbeat_at: datetime | None = None


_ANSWER = "answer"
_ITEM_JOBS = ("forward", _ANSWER)


@dataclass
class _Answer:
    """A stored referral answer, as a row of the SQL store's ``referral_answers`` table."""

    received: ReceivedAnswer
    reference: str
    kind: CustomsDecision
    outbox_id: int
    destination: str | None = None
    signed_xml: bytes | None = None
    receipt: bytes | None = None
    sent_at: datetime | None = None

    def recorded(self, *, duplicate: bool) -> RecordedAnswer:
        answer = self.received.answer
        return RecordedAnswer(
            answer_id=answer.answer_id,
            operator_id=answer.operator_id,
            item_id=answer.item_id,
            reference=self.reference,
            referral_reference=answer.referral_reference,
            kind=self.kind,
            received_at=self.received.received_at,
            duplicate=duplicate,
        )


@dataclass
class _OperatorAdmin:
    """The administration columns of an ``operators`` row."""

    managed_by: str = "config"
    admin_disabled: bool = False
    token_rotated_at: datetime | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Declaration:
    """Evidence of one declaration batch sent to Customs: the signed bytes and the answer."""

    declaration_batch_id: str
    destination: str
    signed_xml: bytes
    receipt: bytes
    sent_at: datetime


class InMemoryItemStore:
    """An :class:`~connector.ports.ItemStore` in dictionaries; one lock makes each call atomic."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.items: dict[tuple[str, str], StoredItem] = {}
        self.events: dict[str, list[ItemEvent]] = {}
        self.outbox: list[str] = []  # references with pending forwarding work, in order
        self.jobs: dict[int, OutboxJob] = {}  # every forwarding job by id, as the outbox table
        self._last_job_id = 0
        self.declarations: dict[str, Declaration] = {}
        self.batches: dict[tuple[str, str], Intake] = {}
        self.cursors: dict[str, str] = {}
        self.pull_errors: dict[str, tuple[str, datetime]] = {}
        self.ticks: dict[tuple[str, datetime], _Tick] = {}
        self.paused: dict[str, bool] = {}
        #: ``enabled``: as configured (or True for admin-added ones); see operator_admin
        self.operators: dict[str, OperatorRecord] = {}
        self.operator_admin: dict[str, _OperatorAdmin] = {}
        self.audit: list[AuditEntry] = []  # in id order
        self.responses: dict[tuple[str, str], ReceivedResponse] = {}  # by (destination, id)
        self.notices: list[StoredNotice] = []  # in sequence order
        self.referrals: dict[str, str | None] = {}  # referral reference by item reference
        self.answers: dict[tuple[str, str], _Answer] = {}  # by (operator, answer id)
        self.notice_leases: dict[int, tuple[str, datetime]] = {}  # sequence -> owner, until

    def _event(
        self,
        reference: str,
        at: datetime,
        actor: str,
        from_state: ItemState | None,
        to_state: ItemState,
        detail: str = "",
    ) -> None:
        lifecycle.transition(from_state, to_state)
        self.events.setdefault(reference, []).append(
            ItemEvent(reference, at, actor, from_state, to_state, detail)
        )

    async def record_intake(self, intake: Intake) -> tuple[IntakeResult, ...]:
        async with self._lock:
            results = []
            for incoming in intake.items:
                key = (intake.operator_id, incoming.item_id)
                existing = self.items.get(key)
                if existing is None:
                    reference = incoming.reference or item_reference(
                        intake.operator_id, incoming.item_id
                    )
                    self.items[key] = StoredItem(
                        reference=reference,
                        operator_id=intake.operator_id,
                        item_id=incoming.item_id,
                        version=1,
                        state=ItemState.ACCEPTED,
                        destination_country=incoming.destination_country,
                        batch_id=intake.batch_id,
                        digest=incoming.digest,
                        received_at=intake.received_at,
                        updated_at=intake.received_at,
                        item_xml=incoming.item_xml,
                        findings=incoming.findings,
                    )
                    actor = f"operator:{intake.operator_id}"
                    detail = f"{intake.source} batch {intake.batch_id}"
                    self._event(
                        reference, intake.received_at, actor, None, ItemState.RECEIVED, detail
                    )
                    self._event(
                        reference,
                        intake.received_at,
                        "connector",
                        ItemState.RECEIVED,
                        ItemState.ACCEPTED,
                        "validated",
                    )
                    self._queue(reference, intake.received_at, fresh=True)
                    status = IntakeStatus.NEW
                else:
                    reference = existing.reference
                    same = existing.digest == incoming.digest
                    status = IntakeStatus.DUPLICATE if same else IntakeStatus.CONFLICT
                results.append(
                    IntakeResult(incoming.item_index, incoming.item_id, status, reference)
                )
            self.batches.setdefault((intake.operator_id, intake.batch_id), intake)
            if intake.cursor is not None:
                self.cursors[intake.operator_id] = intake.cursor
                self.pull_errors.pop(intake.operator_id, None)
            return tuple(results)

    async def get_item(self, operator_id: str, item_id: str) -> StoredItem | None:
        return self.items.get((operator_id, item_id))

    async def find_items(self, item_id: str) -> tuple[StoredItem, ...]:
        return tuple(
            item for (_, candidate), item in sorted(self.items.items()) if candidate == item_id
        )

    async def item_events(self, reference: str) -> tuple[ItemEvent, ...]:
        return tuple(self.events.get(reference, ()))

    async def amend_item(
        self, operator_id: str, item: IncomingItem, version: int, at: datetime
    ) -> StoredItem:
        async with self._lock:
            current = lifecycle.check_amendable(
                self.items.get((operator_id, item.item_id)),
                operator_id,
                item.item_id,
                version=version,
                replacing=True,
            )
            amended, event = lifecycle.amended(
                current, item, version, f"operator:{operator_id}", at
            )
            amended = replace(amended, findings=item.findings)  # the new version's own
            self.events.setdefault(current.reference, []).append(event)
            self.items[(operator_id, item.item_id)] = amended
            if current.reference not in self.outbox:
                self._queue(current.reference, at)
            return amended

    async def cancel_item(
        self, operator_id: str, item_id: str, version: int, reason: str, at: datetime
    ) -> StoredItem:
        async with self._lock:
            current = lifecycle.check_amendable(
                self.items.get((operator_id, item_id)),
                operator_id,
                item_id,
                version=version,
                replacing=False,
            )
            cancelled, event = lifecycle.cancelled(current, reason, f"operator:{operator_id}", at)
            self.events.setdefault(current.reference, []).append(event)
            self.items[(operator_id, item_id)] = cancelled
            if current.reference in self.outbox:
                self.outbox.remove(current.reference)
            for job in self._pending_jobs(current.reference, kind=None):  # copies too
                del self.jobs[job.id]
            return cancelled

    # -- forwarding -----------------------------------------------------------------------

    def _queue(self, reference: str, at: datetime, *, fresh: bool = False) -> None:
        """Queue one pending forwarding job for ``reference`` (replacing a pending one).

        ``fresh``: the item is new, so it has no job yet (skips two scans, which made a
        large intake quadratic).
        """
        if not fresh:
            for job in self._pending_jobs(reference):
                del self.jobs[job.id]
        job_id = self._last_job_id + 1
        while job_id in self.jobs:  # ids never repeat, as with a sequence
            job_id += 1
        self._last_job_id = job_id
        self.jobs[job_id] = OutboxJob(job_id, reference, "pending", next_attempt_at=at)
        if fresh or reference not in self.outbox:
            self.outbox.append(reference)

    def _pending_jobs(self, reference: str, kind: str | None = "forward") -> list[OutboxJob]:
        return [
            job
            for job in self.jobs.values()
            if job.reference == reference
            and job.status == "pending"
            and (kind is None or job.kind == kind)
        ]

    def _by_reference(self, reference: str) -> StoredItem:
        for item in self.items.values():
            if item.reference == reference:
                return item
        raise NotFound(f"no item with reference {reference}")

    def _move(
        self, reference: str, to_state: ItemState, actor: str, at: datetime, detail: str
    ) -> StoredItem:
        """Move an item to ``to_state`` (checked by the lifecycle) and write its event."""
        item = self._by_reference(reference)
        self._event(reference, at, actor, item.state, to_state, detail)
        moved = replace(item, state=to_state, updated_at=at)
        self.items[(item.operator_id, item.item_id)] = moved
        return moved

    def _move_forwarding(
        self, reference: str, to_state: ItemState, at: datetime, detail: str
    ) -> None:
        """Record how a send ended for an item still FORWARDING; one Customs decided on in
        the meantime (FORWARDING -> DECIDED) is left alone."""
        if self._by_reference(reference).state is ItemState.FORWARDING:
            self._move(reference, to_state, "connector", at, detail)

    def _owned(self, claims: Sequence[ForwardClaim | CopyClaim], owner: str) -> list[OutboxJob]:
        """The jobs of ``claims`` that ``owner`` still holds (a stale worker gets none)."""
        jobs = (self.jobs.get(claim.outbox_id) for claim in claims)
        return [
            job
            for job in jobs
            if job is not None and job.status == "claimed" and job.owner == owner
        ]

    def _due(self, copies: bool | str, limit: int, now: datetime) -> list[OutboxJob]:
        """Due forward (or copy, or ``copies``-kind) jobs, expired leases first, then in
        queue order."""

        def wanted(kind: str) -> bool:
            if isinstance(copies, str):
                return kind == copies
            return kind != _ANSWER and kind.startswith("copy:") == copies

        expired = sorted(
            (
                job
                for job in self.jobs.values()
                if wanted(job.kind)
                and job.status == "claimed"
                and job.lease_until is not None
                and job.lease_until < now
            ),
            key=lambda job: (job.next_attempt_at, job.id),
        )[:limit]
        pending = sorted(
            (
                job
                for job in self.jobs.values()
                if wanted(job.kind) and job.status == "pending" and job.next_attempt_at <= now
            ),
            key=lambda job: (job.next_attempt_at, job.id),
        )[: limit - len(expired)]
        return sorted(expired + pending, key=lambda job: (job.next_attempt_at, job.id))

    async def claim_for_forwarding(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[ForwardClaim, ...]:
        async with self._lock:
            claims = []
            for job in self._due(False, limit, now):
                taken_over = job.status == "claimed"
                job.status, job.owner = "claimed", owner
                job.lease_until, job.heartbeat_at = now + timedelta(seconds=lease_s), now
                if job.reference in self.outbox:
                    self.outbox.remove(job.reference)
                detail = f"attempt {job.attempts + 1} by {owner}"
                if taken_over:
                    detail += " (lease expired)"
                item = self._move(job.reference, ItemState.FORWARDING, "connector", now, detail)
                claims.append(
                    ForwardClaim(
                        outbox_id=job.id,
                        reference=item.reference,
                        operator_id=item.operator_id,
                        item_id=item.item_id,
                        version=item.version,
                        destination_country=item.destination_country,
                        item_xml=item.item_xml,
                        attempts=job.attempts,
                        findings=tuple(f for f in item.findings if not f.is_error),
                    )
                )
            return tuple(claims)

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
        async with self._lock:
            self.declarations.setdefault(
                declaration_batch_id,
                Declaration(
                    declaration_batch_id, receipt.destination, signed_xml, receipt.receipt, at
                ),
            )
            jobs = self._owned(claims, owner)
            detail = f"declaration batch {declaration_batch_id} to {receipt.destination}"
            for job in jobs:
                job.status, job.lease_until, job.last_error = "done", None, None
                self._move_forwarding(job.reference, ItemState.FORWARDED, at, detail)
                for agency in dict.fromkeys((copies or {}).get(job.reference, ())):
                    self._queue_copy(job.reference, agency, at)
            return len(jobs)

    def _queue_copy(self, reference: str, agency: str, at: datetime) -> None:
        """Queue a pending copy job of ``reference`` for ``agency`` (replacing a pending one)."""
        kind = f"copy:{agency}"
        for job in self._pending_jobs(reference, kind):
            del self.jobs[job.id]
        job_id = self._last_job_id + 1
        while job_id in self.jobs:
            job_id += 1
        self._last_job_id = job_id
        self.jobs[job_id] = OutboxJob(job_id, reference, "pending", next_attempt_at=at, kind=kind)

    async def extend_leases(
        self, outbox_ids: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        async with self._lock:
            jobs = (self.jobs.get(job_id) for job_id in outbox_ids)
            held = [job for job in jobs if job and job.status == "claimed" and job.owner == owner]
            for job in held:
                job.lease_until, job.heartbeat_at = until, now
            return len(held)

    async def claim_copies(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[CopyClaim, ...]:
        async with self._lock:
            claims = []
            for job in self._due(True, limit, now):
                job.status, job.owner = "claimed", owner
                job.lease_until, job.heartbeat_at = now + timedelta(seconds=lease_s), now
                item = self._by_reference(job.reference)
                claims.append(
                    CopyClaim(
                        outbox_id=job.id,
                        agency=job.kind.removeprefix("copy:"),
                        reference=item.reference,
                        operator_id=item.operator_id,
                        item_id=item.item_id,
                        version=item.version,
                        destination_country=item.destination_country,
                        item_xml=item.item_xml,
                        attempts=job.attempts,
                    )
                )
            return tuple(claims)

    async def record_copied(
        self,
        claims: Sequence[CopyClaim],
        owner: str,
        copy_batch_id: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> int:
        async with self._lock:
            self.declarations.setdefault(
                copy_batch_id,
                Declaration(copy_batch_id, receipt.destination, signed_xml, receipt.receipt, at),
            )
            jobs = self._owned(claims, owner)
            for job in jobs:
                job.status, job.lease_until, job.last_error = "done", None, None
            return len(jobs)

    async def record_copy_failure(
        self,
        claims: Sequence[CopyClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        async with self._lock:
            jobs = self._owned(claims, owner)
            for job in jobs:
                job.attempts += 1
                job.lease_until = None
                if decision.dead:
                    job.status, job.last_error = "dead", f"{error}; {decision.reason}"
                else:
                    assert decision.retry_at is not None
                    job.status, job.last_error = "pending", error
                    job.next_attempt_at = decision.retry_at
            return len(jobs)

    async def purge_evidence(self, before: datetime) -> int:
        async with self._lock:
            old = [key for key, kept in self.declarations.items() if kept.sent_at < before]
            for key in old:
                del self.declarations[key]
            return len(old)

    async def record_forward_failure(
        self,
        claims: Sequence[ForwardClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        async with self._lock:
            jobs = self._owned(claims, owner)
            for job in jobs:
                job.attempts += 1
                job.last_error, job.lease_until = error, None
                if decision.dead:
                    job.status = "dead"
                    self._move_forwarding(job.reference, ItemState.DEAD, at, decision.reason)
                else:
                    assert decision.retry_at is not None
                    job.status, job.next_attempt_at = "pending", decision.retry_at
                    self.outbox.append(job.reference)
                    detail = f"{error}; retry at {decision.retry_at.isoformat()}"
                    self._move_forwarding(job.reference, ItemState.FORWARDING, at, detail)
            return len(jobs)

    async def dead_letters(self) -> tuple[StoredItem, ...]:
        dead = sorted(
            (job for job in self.jobs.values() if job.status == "dead" and job.kind in _ITEM_JOBS),
            key=lambda job: job.id,
        )
        return tuple(self._by_reference(job.reference) for job in dead)

    async def replay(
        self, reference: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> StoredItem:
        async with self._lock:
            self._by_reference(reference)  # NotFound for an unknown reference
            dead = [
                job
                for job in self.jobs.values()
                if job.reference == reference and job.status == "dead" and job.kind in _ITEM_JOBS
            ]
            if not dead:
                raise IllegalTransition(f"item {reference} has no dead forwarding work")
            for job in dead:
                job.status, job.attempts, job.next_attempt_at = "pending", 0, at
                job.owner = job.lease_until = None
            self.outbox.append(reference)
            replayed = self._move(reference, ItemState.FORWARDING, "admin", at, "replay")
            if audit is not None:
                self._append_audit(audit)
            return replayed

    async def get_cursor(self, operator_id: str) -> str | None:
        return self.cursors.get(operator_id)

    async def record_pull_error(self, operator_id: str, error: str, at: datetime) -> None:
        self.pull_errors[operator_id] = (error, at)

    async def claim_tick(self, schedule_id: str, fire_time: datetime, owner: str) -> bool:
        async with self._lock:
            key = (schedule_id, fire_time)
            if key in self.ticks:
                return False
            self.ticks[key] = _Tick(owner)
            self.paused.setdefault(schedule_id, False)
            return True

    async def finish_tick(
        self, schedule_id: str, fire_time: datetime, result: str, at: datetime
    ) -> None:
        tick = self.ticks.get((schedule_id, fire_time))
        if tick is not None:
            tick.result, tick.finished_at = result, at

    async def set_paused(
        self, schedule_id: str, paused: bool, *, audit: AuditEntry | None = None
    ) -> None:
        self.paused[schedule_id] = paused
        if audit is not None:
            self._append_audit(audit)

    async def schedule_states(self) -> dict[str, ScheduleState]:
        states = {}
        for schedule_id, paused in self.paused.items():
            fired = [(t, tick) for (s, t), tick in self.ticks.items() if s == schedule_id]
            last_time, last = max(fired, key=lambda pair: pair[0]) if fired else (None, None)
            states[schedule_id] = ScheduleState(
                schedule_id,
                paused=paused,
                last_fire_time=last_time,
                last_result=last.result if last else None,
                last_finished_at=last.finished_at if last else None,
            )
        return states

    async def upsert_operators(self, operators: tuple[OperatorRecord, ...]) -> tuple[str, ...]:
        async with self._lock:
            now = datetime.now(UTC)
            configured = {operator.operator_id: operator for operator in operators}
            ignored: list[str] = []
            result = dict(self.operators)
            for operator_id, known in self.operators.items():
                admin = self.operator_admin.setdefault(operator_id, _OperatorAdmin())
                if operator_id in configured or admin.managed_by != "config":
                    continue
                # Dropped from the configuration: keep the row, lose the access.
                result[operator_id] = replace(
                    known, enabled=False, token_sha256=None, cert_sha256=None
                )
                admin.token_rotated_at = None
            for operator_id, operator in configured.items():
                admin = self.operator_admin.setdefault(operator_id, _OperatorAdmin())
                previous = self.operators.get(operator_id)
                token = operator.token_sha256
                if previous is not None and admin.token_rotated_at is not None:
                    if token is not None and token != previous.token_sha256:
                        ignored.append(operator_id)
                    token = previous.token_sha256
                result[operator_id] = replace(operator, token_sha256=token)
            self._check_unique(result.values())
            self.operators = result
            for operator_id in configured:
                admin = self.operator_admin[operator_id]
                admin.managed_by, admin.updated_at = "config", now
            return tuple(ignored)

    @staticmethod
    def _check_unique(operators: Collection[OperatorRecord]) -> None:
        for attribute in ("token_sha256", "cert_sha256"):
            values = [getattr(op, attribute) for op in operators if getattr(op, attribute)]
            if len(values) != len(set(values)):
                raise ConfigurationError(f"two operators share a credential ({attribute})")

    def _may_authenticate(self, operator: OperatorRecord) -> bool:
        admin = self.operator_admin.get(operator.operator_id)
        return operator.enabled and not (admin is not None and admin.admin_disabled)

    def _admin_view(self, operator_id: str) -> AdminOperator:
        operator = self.operators.get(operator_id)
        if operator is None:
            raise NotFound(f"no operator {operator_id[:64]!r}")
        admin = self.operator_admin.setdefault(operator_id, _OperatorAdmin())
        return AdminOperator(
            record=replace(operator, enabled=self._may_authenticate(operator)),
            managed_by=admin.managed_by,
            admin_disabled=admin.admin_disabled,
            updated_at=admin.updated_at,
            token_rotated_at=admin.token_rotated_at,
        )

    def _append_audit(self, entry: AuditEntry) -> AuditEntry:
        detail = json.loads(json.dumps(dict(entry.detail), sort_keys=True, default=str))
        stored = replace(entry, detail=detail, id=len(self.audit) + 1)
        self.audit.append(stored)
        return stored

    def _credential_taken(self, operator_id: str, token: str | None, cert: str | None) -> None:
        for other in self.operators.values():
            if other.operator_id == operator_id:
                continue
            if (token is not None and other.token_sha256 == token) or (
                cert is not None and other.cert_sha256 == cert
            ):
                raise IllegalTransition("that credential belongs to another operator")

    async def admin_operators(self) -> tuple[AdminOperator, ...]:
        return tuple(self._admin_view(operator_id) for operator_id in sorted(self.operators))

    async def add_operator(self, operator: OperatorRecord, audit: AuditEntry) -> AdminOperator:
        async with self._lock:
            if operator.operator_id in self.operators:
                raise IllegalTransition(f"operator {operator.operator_id!r} exists already")
            self._credential_taken(
                operator.operator_id, operator.token_sha256, operator.cert_sha256
            )
            self.operators[operator.operator_id] = replace(operator, enabled=True)
            self.operator_admin[operator.operator_id] = _OperatorAdmin(
                managed_by="admin",
                token_rotated_at=audit.at if operator.token_sha256 else None,
                updated_at=audit.at,
            )
            self._append_audit(audit)
            return self._admin_view(operator.operator_id)

    async def set_operator_disabled(
        self, operator_id: str, disabled: bool, audit: AuditEntry
    ) -> AdminOperator:
        async with self._lock:
            self._admin_view(operator_id)  # NotFound for an unknown id
            if not disabled and not self.operators[operator_id].enabled:
                raise IllegalTransition(
                    f"operator {operator_id!r} is disabled in the configuration file "
                    "(or no longer in it); enable it there"
                )
            admin = self.operator_admin[operator_id]
            admin.admin_disabled, admin.updated_at = disabled, audit.at
            self._append_audit(audit)
            return self._admin_view(operator_id)

    async def rotate_operator_token(
        self, operator_id: str, token_sha256: str, audit: AuditEntry
    ) -> AdminOperator:
        async with self._lock:
            self._admin_view(operator_id)  # NotFound for an unknown id
            self._credential_taken(operator_id, token_sha256, None)
            self.operators[operator_id] = replace(
                self.operators[operator_id], token_sha256=token_sha256
            )
            admin = self.operator_admin[operator_id]
            admin.token_rotated_at = admin.updated_at = audit.at
            self._append_audit(audit)
            return self._admin_view(operator_id)

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        async with self._lock:
            return self._append_audit(entry)

    async def audit_after(self, after: int, limit: int) -> tuple[AuditEntry, ...]:
        return tuple(entry for entry in self.audit if (entry.id or 0) > after)[: max(limit, 0)]

    async def search_items(self, search: ItemSearch) -> tuple[StoredItem, ...]:
        def wanted(item: StoredItem) -> bool:
            return (
                (search.operator_id is None or item.operator_id == search.operator_id)
                and (search.state is None or item.state is search.state)
                and (search.decision is None or item.decision is search.decision)
                and (search.received_from is None or item.received_at >= search.received_from)
                and (search.received_to is None or item.received_at < search.received_to)
                and (search.after is None or (item.received_at, item.reference) < search.after)
            )

        found = sorted(
            (item for item in self.items.values() if wanted(item)),
            key=lambda item: (item.received_at, item.reference),
            reverse=True,
        )
        return tuple(found[: max(search.limit, 0)])

    async def item_stats(self) -> ItemStats:
        counts = Counter(item.state.value for item in self.items.values())
        waiting = [
            item.received_at
            for item in self.items.values()
            if item.state in (ItemState.ACCEPTED, ItemState.FORWARDING)
        ]
        return ItemStats(dict(counts), min(waiting) if waiting else None)

    async def outbox_depth(self) -> int:
        return len(self.outbox)

    async def operator_by_token(self, token_sha256: str) -> OperatorRecord | None:
        return next(
            (
                op
                for op in self.operators.values()
                if self._may_authenticate(op) and op.token_sha256 == token_sha256
            ),
            None,
        )

    async def operator_by_cert(self, cert_sha256: str) -> OperatorRecord | None:
        return next(
            (
                op
                for op in self.operators.values()
                if self._may_authenticate(op) and op.cert_sha256 == cert_sha256
            ),
            None,
        )

    # -- the return path: Customs decisions and notices -------------------------------------

    async def decision_targets(self, references: Sequence[str]) -> dict[str, DecisionTarget]:
        wanted = set(references)
        return {
            item.reference: DecisionTarget(item, self.referrals.get(item.reference))
            for item in self.items.values()
            if item.reference in wanted
        }

    async def apply_response(
        self, response: ReceivedResponse, decisions: Sequence[DecisionToApply]
    ) -> AppliedResponse:
        async with self._lock:
            key = (response.destination, response.response_id)
            if key in self.responses:
                raise ResponseReplayed(
                    f"response {response.response_id} from {response.destination} was "
                    "received before; nothing was applied",
                    destination=response.destination,
                    response_id=response.response_id,
                )
            # Judge everything first, then write: like the SQL transaction, all or nothing.
            targets = await self.decision_targets([d.notice.item_reference for d in decisions])
            actor = f"customs:{response.destination}"
            writes: list[tuple[DecisionTarget, StoredItem, ItemEvent, DecisionToApply]] = []
            repeated: list[str] = []
            problems: list[DecisionProblem] = []
            for decision in sorted(decisions, key=lambda d: d.index):
                notice = decision.notice
                reference = notice.item_reference
                target = targets.get(reference)
                if target is None:
                    problems.append(
                        DecisionProblem(
                            decision.index,
                            reference,
                            notice.item_id,
                            core_decisions.ITEM_UNKNOWN,
                            f"no item has the reference {reference}",
                        )
                    )
                    continue
                code = " ".join(filter(None, (notice.decision.value, notice.referral_reference)))
                try:
                    outcome = lifecycle.decided(
                        target.item,
                        notice.decision,
                        actor,
                        response.received_at,
                        referral_reference=notice.referral_reference,
                        pending_referral=target.referral_reference,
                        detail=f"{code} (response {response.response_id})",
                    )
                except IllegalTransition as error:
                    problems.append(
                        DecisionProblem(
                            decision.index, reference, notice.item_id, error.code, error.message
                        )
                    )
                    continue
                if outcome.event is None:
                    repeated.append(reference)
                    continue
                targets[reference] = DecisionTarget(outcome.item, notice.referral_reference)
                writes.append((target, outcome.item, outcome.event, decision))
            applied: list[ItemNotice] = []
            for target, item, event, decision in writes:
                self.events.setdefault(event.reference, []).append(event)
                self.items[(item.operator_id, item.item_id)] = item
                self.referrals[item.reference] = decision.notice.referral_reference
                if target.item.state in (ItemState.FORWARDING, ItemState.DEAD):
                    self._close_forward_jobs(item.reference, response.received_at)
                notice = replace(decision.notice, sequence=len(self.notices) + 1)
                self.notices.append(
                    StoredNotice(
                        notice=notice,
                        signed_xml=decision.signed_xml,
                        destination=response.destination,
                        response_id=response.response_id,
                        created_at=response.received_at,
                        status="pending",
                        next_attempt_at=response.received_at,
                    )
                )
                applied.append(notice)
            self.responses[key] = response
            return AppliedResponse(tuple(applied), tuple(repeated), tuple(problems))

    def _close_forward_jobs(self, reference: str, at: datetime) -> None:
        """Customs decided: the item's open forward and answer jobs are done."""
        for job in self.jobs.values():
            if (
                job.reference == reference
                and job.kind in _ITEM_JOBS
                and job.status in ("pending", "claimed", "dead")
            ):
                job.status, job.lease_until = "done", None
                job.last_error = f"decided at {at.isoformat()}"
        if reference in self.outbox:
            self.outbox.remove(reference)

    async def notices_after(
        self, operator_id: str, after: int, limit: int
    ) -> tuple[StoredNotice, ...]:
        page = [
            stored
            for stored in self.notices
            if stored.notice.operator_id == operator_id and stored.sequence > after
        ]
        return tuple(page[: max(limit, 0)])

    async def item_notices(self, reference: str) -> tuple[StoredNotice, ...]:
        return tuple(stored for stored in self.notices if stored.notice.item_reference == reference)

    # -- webhook delivery of the notices ----------------------------------------------------

    def _notice(self, sequence: int) -> StoredNotice:
        return self.notices[sequence - 1]  # sequences are positions from 1

    def _set_notice(self, stored: StoredNotice) -> None:
        self.notices[stored.sequence - 1] = stored

    async def claim_notices(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        now: datetime,
        *,
        operators: Collection[str],
    ) -> tuple[NoticeClaim, ...]:
        async with self._lock:
            wanted = set(operators)
            undelivered = ("pending", "claimed")
            heads: dict[str, StoredNotice] = {}
            urgency: dict[str, int] = {}
            for stored in self.notices:  # in sequence order: the first undelivered is the head
                if stored.status not in undelivered:
                    continue
                reference = stored.notice.item_reference
                heads.setdefault(reference, stored)
                urgency[reference] = min(urgency.get(reference, 99), stored.notice.priority)
            due: list[StoredNotice] = []
            for head in heads.values():
                if head.notice.operator_id not in wanted:
                    continue
                lease = self.notice_leases.get(head.sequence)
                if head.status == "pending":
                    if head.next_attempt_at is not None and head.next_attempt_at > now:
                        continue
                elif lease is not None and lease[1] >= now:
                    continue
                due.append(head)
            due.sort(key=lambda s: (urgency[s.notice.item_reference], s.sequence))
            claims = []
            for stored in due[: max(limit, 0)]:
                self.notice_leases[stored.sequence] = (owner, now + timedelta(seconds=lease_s))
                self._set_notice(replace(stored, status="claimed"))
                claims.append(
                    NoticeClaim(
                        stored.notice,
                        stored.signed_xml,
                        stored.attempts,
                        taken_over=stored.status == "claimed",
                    )
                )
            return tuple(claims)

    def _owned_notices(self, claims: Sequence[NoticeClaim], owner: str) -> list[StoredNotice]:
        owned = []
        for claim in claims:
            stored = self._notice(claim.sequence)
            lease = self.notice_leases.get(claim.sequence)
            if stored.status == "claimed" and lease is not None and lease[0] == owner:
                owned.append(stored)
        return owned

    async def record_notice_delivered(
        self, claims: Sequence[NoticeClaim], owner: str, at: datetime
    ) -> int:
        async with self._lock:
            owned = self._owned_notices(claims, owner)
            for stored in owned:
                self.notice_leases[stored.sequence] = (owner, at)
                self._set_notice(
                    replace(
                        stored, status="delivered", delivered_at=at, attempts=stored.attempts + 1
                    )
                )
                reference = stored.notice.item_reference
                latest = max(
                    n.sequence for n in self.notices if n.notice.item_reference == reference
                )
                item = self._by_reference(reference)
                if item.state is ItemState.DECIDED and latest == stored.sequence:
                    notified, event = lifecycle.notified(
                        item,
                        "connector",
                        at,
                        f"notice {stored.notice.notice_id} delivered to the webhook",
                    )
                    self.events.setdefault(reference, []).append(event)
                    self.items[(item.operator_id, item.item_id)] = notified
            return len(owned)

    async def record_notice_failure(
        self,
        claims: Sequence[NoticeClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        async with self._lock:
            owned = self._owned_notices(claims, owner)
            for stored in owned:
                self.notice_leases[stored.sequence] = (owner, at)
                attempts = stored.attempts + 1
                if decision.dead:
                    failed = replace(
                        stored,
                        status="dead",
                        attempts=attempts,
                        last_error=f"{error}; {decision.reason}",
                    )
                else:
                    assert decision.retry_at is not None
                    failed = replace(
                        stored,
                        status="pending",
                        attempts=attempts,
                        last_error=error,
                        next_attempt_at=decision.retry_at,
                    )
                self._set_notice(failed)
            return len(owned)

    async def extend_notice_leases(
        self, sequences: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        async with self._lock:
            held = 0
            for sequence in sequences:
                lease = self.notice_leases.get(sequence)
                if self._notice(sequence).status == "claimed" and lease and lease[0] == owner:
                    self.notice_leases[sequence] = (owner, until)
                    held += 1
            return held

    async def dead_notices(self, limit: int = 1000) -> tuple[StoredNotice, ...]:
        return tuple(stored for stored in self.notices if stored.status == "dead")[: max(limit, 0)]

    # -- referral answers -------------------------------------------------------------------

    async def record_answer(self, answer: ReceivedAnswer) -> RecordedAnswer:
        async with self._lock:
            value = answer.answer
            known = self.answers.get((value.operator_id, value.answer_id))
            if known is not None:
                if known.received.digest != answer.digest:
                    raise IllegalTransition(
                        f"answer {value.answer_id} was received before with other content; "
                        "an answer id names one answer",
                        answer_id=value.answer_id,
                    )
                return known.recorded(duplicate=True)
            item = self.items.get((value.operator_id, value.item_id))
            pending = referrals.pending_referral(
                item, self.referrals.get(item.reference) if item is not None else None
            )
            referrals.check_answer(value, operator_id=value.operator_id, pending=pending)
            assert item is not None
            assert pending is not None
            moved, event = lifecycle.answer_forwarding(
                item,
                f"operator:{value.operator_id}",
                answer.received_at,
                f"referral answer {value.answer_id} to {value.referral_reference}",
            )
            self.events.setdefault(item.reference, []).append(event)
            self.items[(item.operator_id, item.item_id)] = moved
            job_id = self._last_job_id + 1
            while job_id in self.jobs:
                job_id += 1
            self._last_job_id = job_id
            self.jobs[job_id] = OutboxJob(
                job_id, item.reference, "pending", answer.received_at, kind=_ANSWER
            )
            stored = _Answer(answer, item.reference, pending.kind, job_id)
            self.answers[(value.operator_id, value.answer_id)] = stored
            return stored.recorded(duplicate=False)

    async def claim_answers(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[AnswerClaim, ...]:
        async with self._lock:
            by_job = {stored.outbox_id: stored for stored in self.answers.values()}
            claims = []
            for job in self._due(_ANSWER, limit, now):
                job.status, job.owner = "claimed", owner
                job.lease_until, job.heartbeat_at = now + timedelta(seconds=lease_s), now
                item = self._by_reference(job.reference)
                stored = by_job[job.id]
                claims.append(
                    AnswerClaim(
                        outbox_id=job.id,
                        reference=item.reference,
                        operator_id=item.operator_id,
                        item_id=item.item_id,
                        destination_country=item.destination_country,
                        answer_id=stored.received.answer.answer_id,
                        answer_xml=stored.received.answer_xml,
                        attempts=job.attempts,
                    )
                )
            return tuple(claims)

    async def record_answer_sent(
        self,
        claim: AnswerClaim,
        owner: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> bool:
        async with self._lock:
            for stored in self.answers.values():
                if stored.outbox_id == claim.outbox_id:
                    stored.destination, stored.signed_xml = receipt.destination, signed_xml
                    stored.receipt, stored.sent_at = receipt.receipt, at
            jobs = self._owned_ids([claim.outbox_id], owner)
            for job in jobs:
                job.status, job.lease_until, job.last_error = "done", None, None
                detail = f"referral answer {claim.answer_id} to {receipt.destination}"
                self._move_forwarding(job.reference, ItemState.FORWARDED, at, detail)
            return bool(jobs)

    async def record_answer_failure(
        self,
        claims: Sequence[AnswerClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        async with self._lock:
            jobs = self._owned_ids([claim.outbox_id for claim in claims], owner)
            for job in jobs:
                job.attempts += 1
                job.last_error, job.lease_until = error, None
                if decision.dead:
                    job.status = "dead"
                    detail = f"referral answer: {decision.reason}"
                    self._move_forwarding(job.reference, ItemState.DEAD, at, detail)
                else:
                    assert decision.retry_at is not None
                    job.status, job.next_attempt_at = "pending", decision.retry_at
                    detail = f"referral answer: {error}; retry at {decision.retry_at.isoformat()}"
                    self._move_forwarding(job.reference, ItemState.FORWARDING, at, detail)
            return len(jobs)

    def _owned_ids(self, outbox_ids: Sequence[int], owner: str) -> list[OutboxJob]:
        jobs = (self.jobs.get(job_id) for job_id in outbox_ids)
        return [
            job
            for job in jobs
            if job is not None and job.status == "claimed" and job.owner == owner
        ]

    async def answers_of(self, reference: str) -> tuple[StoredAnswer, ...]:
        found = sorted(
            (stored for stored in self.answers.values() if stored.reference == reference),
            key=lambda stored: stored.outbox_id,
        )
        return tuple(
            StoredAnswer(
                answer_id=stored.received.answer.answer_id,
                referral_reference=stored.received.answer.referral_reference,
                kind=stored.kind,
                received_at=stored.received.received_at,
                status=self.jobs[stored.outbox_id].status,
                attempts=self.jobs[stored.outbox_id].attempts,
                last_error=self.jobs[stored.outbox_id].last_error,
                destination=stored.destination,
                sent_at=stored.sent_at,
            )
            for stored in found
        )

    async def save_cursor(self, source_id: str, cursor: str, at: datetime) -> None:
        self.cursors[source_id] = cursor
        self.pull_errors.pop(source_id, None)
