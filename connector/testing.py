"""In-memory fakes of the ports, for unit tests and the demo.

They implement the same contract as the real adapters (the store contract tests run against
both), keep everything in dictionaries and never touch the network or the disk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from connector.core import lifecycle
from connector.core.model import (
    IncomingItem,
    Intake,
    IntakeResult,
    IntakeStatus,
    ItemEvent,
    ItemState,
    StoredItem,
)
from connector.core.references import item_reference
from connector.ports import OperatorRecord, ScheduleState

__all__ = ["FrozenClock", "InMemoryItemStore", "SystemClock"]


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


class InMemoryItemStore:
    """An :class:`~connector.ports.ItemStore` in dictionaries; one lock makes each call atomic."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.items: dict[tuple[str, str], StoredItem] = {}
        self.events: dict[str, list[ItemEvent]] = {}
        self.outbox: list[str] = []  # references queued for forwarding, in order
        self.batches: dict[tuple[str, str], Intake] = {}
        self.cursors: dict[str, str] = {}
        self.pull_errors: dict[str, tuple[str, datetime]] = {}
        self.ticks: dict[tuple[str, datetime], _Tick] = {}
        self.paused: dict[str, bool] = {}
        self.operators: dict[str, OperatorRecord] = {}

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
                    reference = item_reference(intake.operator_id, incoming.item_id)
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
                    self.outbox.append(reference)
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
            self.events.setdefault(current.reference, []).append(event)
            self.items[(operator_id, item.item_id)] = amended
            if current.reference not in self.outbox:
                self.outbox.append(current.reference)
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
            return cancelled

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

    async def set_paused(self, schedule_id: str, paused: bool) -> None:
        self.paused[schedule_id] = paused

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

    async def upsert_operators(self, operators: tuple[OperatorRecord, ...]) -> None:
        configured = {operator.operator_id for operator in operators}
        for operator_id, known in list(self.operators.items()):
            if operator_id not in configured:  # dropped: keep the row, lose the access
                self.operators[operator_id] = replace(
                    known, enabled=False, token_sha256=None, cert_sha256=None
                )
        for operator in operators:
            self.operators[operator.operator_id] = operator

    async def outbox_depth(self) -> int:
        return len(self.outbox)

    async def operator_by_token(self, token_sha256: str) -> OperatorRecord | None:
        return next(
            (
                op
                for op in self.operators.values()
                if op.enabled and op.token_sha256 == token_sha256
            ),
            None,
        )

    async def operator_by_cert(self, cert_sha256: str) -> OperatorRecord | None:
        return next(
            (op for op in self.operators.values() if op.enabled and op.cert_sha256 == cert_sha256),
            None,
        )
