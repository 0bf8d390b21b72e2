"""The SQL item store: :class:`~connector.ports.ItemStore` on SQLite or PostgreSQL.

Every public method is one transaction in its own session, named after its intent; it takes
and returns domain records (converted by the ``*_from_row``/``*_to_row`` functions), never
ORM objects, and raises only :class:`~connector.errors.ConnectorError`\\ s (translated by
:func:`~connector.adapters.db.engine.wrap_errors`). The semantics are those of
:class:`connector.testing.InMemoryItemStore`; the contract tests hold both to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from connector.adapters.db import engine as db_engine
from connector.adapters.db import listen, tables
from connector.adapters.db.checkpoint import WalCheckpointer
from connector.adapters.db.lock import sqlite_path
from connector.core import decisions as core_decisions
from connector.core import lifecycle, referrals
from connector.core.checks.outcome import DetailValue, Finding, Severity
from connector.core.decisions import DecisionProblem
from connector.core.model import (
    CustomsDecision,
    IncomingItem,
    Intake,
    IntakeResult,
    IntakeStatus,
    ItemEvent,
    ItemState,
    ScreeningMethod,
    StoredItem,
    finding_dict,
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

__all__ = [
    "SqlItemStore",
    "admin_operator_from_row",
    "audit_from_row",
    "event_from_row",
    "event_to_row",
    "findings_from_json",
    "findings_to_json",
    "item_from_row",
    "item_to_row",
    "notice_from_row",
    "operator_from_row",
    "operator_to_row",
]

_ITEMS, _EVENTS, _OUTBOX = tables.ITEMS, tables.ITEM_EVENTS, tables.OUTBOX
_PAYLOADS = tables.ITEM_PAYLOADS
#: An item row with its payload (the XML), as :func:`item_from_row` reads it.
_ITEM_ROWS = _ITEMS.join(_PAYLOADS, _PAYLOADS.c.id == _ITEMS.c.id)
#: Column orders of the rows :func:`_bulk_values` inserts.
_ITEM_COLUMNS = (
    "id",
    "reference",
    "operator_id",
    "item_id",
    "version",
    "state",
    "destination_country",
    "batch_id",
    "digest",
    "decision",
    "received_at",
    "updated_at",
    "findings",
)
_EVENT_COLUMNS = ("reference", "at", "actor", "from_state", "to_state", "detail")
_JOB_COLUMNS = ("reference", "kind", "status", "attempts", "next_attempt_at", "created_at")
#: Bound parameters per ``IN (...)`` lookup; far below SQLite's and asyncpg's limits.
_LOOKUP_CHUNK = 1000
_PENDING = "pending"
_CLAIMED = "claimed"
_DONE = "done"
_DEAD = "dead"
_FORWARD = "forward"
#: The kind of the job that forwards an operator's referral answer to Customs.
_ANSWER = "answer"
#: Jobs that move the item through FORWARDING (dead letters, replay, closed by a decision).
_ITEM_JOBS = (_FORWARD, _ANSWER)
#: The kind of an agency copy job is this prefix and the agency id.
_COPY = "copy:"
#: ``operators.managed_by``: declared in the configuration file, or added by an admin.
_BY_CONFIG = "config"
_BY_ADMIN = "admin"


# -- rows <-> records -----------------------------------------------------------------------


def findings_to_json(findings: Sequence[Finding]) -> str | None:
    """The ``items.findings`` column: a JSON list of :func:`finding_dict` with the item's
    ``item_index`` in the batch that brought it; None for no findings."""
    if not findings:
        return None
    return json.dumps(
        [{**finding_dict(finding), "item_index": finding.item_index} for finding in findings],
        ensure_ascii=False,
    )


def _detail_value(value: object) -> DetailValue:
    if isinstance(value, list):
        return tuple(str(part) for part in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def findings_from_json(text: str | None, item_id: str) -> tuple[Finding, ...]:
    """The findings of an ``items.findings`` value (see :func:`findings_to_json`)."""
    if not text:
        return ()
    return tuple(
        Finding(
            item_index=int(entry.get("item_index", 0)),
            item_id=item_id,
            severity=Severity(entry["severity"]),
            code=entry["code"],
            path=entry["path"],
            message=entry["message"],
            detail=MappingProxyType(
                {key: _detail_value(value) for key, value in entry.get("detail", {}).items()}
            ),
        )
        for entry in json.loads(text)
    )


def _warnings(text: str | None, item_id: str) -> tuple[Finding, ...]:
    """The findings of an ``items.findings`` value that did not reject the item."""
    if not text:
        return ()
    return tuple(finding for finding in findings_from_json(text, item_id) if not finding.is_error)


def item_from_row(row: sa.RowMapping) -> StoredItem:
    """The domain record of an ``items`` row."""
    decision = row["decision"]
    return StoredItem(
        reference=row["reference"],
        operator_id=row["operator_id"],
        item_id=row["item_id"],
        version=row["version"],
        state=ItemState(row["state"]),
        destination_country=row["destination_country"],
        batch_id=row["batch_id"],
        digest=row["digest"],
        received_at=row["received_at"],
        updated_at=row["updated_at"],
        item_xml=bytes(row["item_xml"]),
        decision=CustomsDecision(decision) if decision is not None else None,
        findings=findings_from_json(row["findings"], row["item_id"]),
    )


def _item_id(reference: str) -> sa.ScalarSelect[Any]:
    """The row id of the item with ``reference`` (its payload's id), as a subquery."""
    return sa.select(_ITEMS.c.id).where(_ITEMS.c.reference == reference).scalar_subquery()


def _select_items() -> sa.Select[Any]:
    """SELECT every ``items`` column and the item's XML from its payload."""
    return sa.select(*_ITEMS.c, _PAYLOADS.c.item_xml).select_from(_ITEM_ROWS)


def item_to_row(item: StoredItem) -> dict[str, Any]:
    """The ``items`` columns of ``item`` (without the surrogate id; its XML is the
    ``item_payloads`` row's)."""
    return {
        "reference": item.reference,
        "operator_id": item.operator_id,
        "item_id": item.item_id,
        "version": item.version,
        "state": item.state.value,
        "destination_country": item.destination_country,
        "batch_id": item.batch_id,
        "digest": item.digest,
        "decision": item.decision.value if item.decision is not None else None,
        "received_at": item.received_at,
        "updated_at": item.updated_at,
        "findings": findings_to_json(item.findings),
    }


def event_from_row(row: sa.RowMapping) -> ItemEvent:
    """The domain record of an ``item_events`` row."""
    from_state = row["from_state"]
    return ItemEvent(
        reference=row["reference"],
        at=row["at"],
        actor=row["actor"],
        from_state=ItemState(from_state) if from_state is not None else None,
        to_state=ItemState(row["to_state"]),
        detail=row["detail"],
    )


def event_to_row(event: ItemEvent) -> dict[str, Any]:
    """The ``item_events`` columns of ``event``; checks the transition is allowed."""
    lifecycle.transition(event.from_state, event.to_state)
    return {
        "reference": event.reference,
        "at": event.at,
        "actor": event.actor,
        "from_state": event.from_state.value if event.from_state is not None else None,
        "to_state": event.to_state.value,
        "detail": event.detail,
    }


def operator_from_row(row: sa.RowMapping) -> OperatorRecord:
    """The domain record of an ``operators`` row (enabled: may authenticate now)."""
    return OperatorRecord(
        operator_id=row["operator_id"],
        name=row["name"],
        enabled=bool(row["enabled"]) and not row["admin_disabled"],
        token_sha256=row["token_sha256"],
        cert_sha256=row["cert_sha256"],
    )


def admin_operator_from_row(row: sa.RowMapping) -> AdminOperator:
    """The administration view of an ``operators`` row."""
    return AdminOperator(
        record=operator_from_row(row),
        managed_by=row["managed_by"],
        admin_disabled=bool(row["admin_disabled"]),
        updated_at=row["updated_at"],
        token_rotated_at=row["token_rotated_at"],
    )


def audit_from_row(row: sa.RowMapping) -> AuditEntry:
    """The domain record of an ``admin_audit`` row."""
    return AuditEntry(
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=json.loads(row["detail"]),
        request_id=row["request_id"],
        id=row["id"],
    )


def _audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "detail": json.dumps(dict(entry.detail), sort_keys=True, default=str),
        "request_id": entry.request_id,
    }


def operator_to_row(operator: OperatorRecord, updated_at: datetime) -> dict[str, Any]:
    """The ``operators`` columns of ``operator``."""
    return {
        "operator_id": operator.operator_id,
        "name": operator.name,
        "enabled": operator.enabled,
        "token_sha256": operator.token_sha256,
        "cert_sha256": operator.cert_sha256,
        "updated_at": updated_at,
    }


def notice_from_row(row: sa.RowMapping) -> StoredNotice:
    """The domain record of a ``notices`` row."""
    method = row["screening_method"]
    notice = ItemNotice(
        notice_id=row["notice_id"],
        operator_id=row["operator_id"],
        item_id=row["item_id"],
        item_reference=row["reference"],
        decision=CustomsDecision(row["decision"]),
        issued_at=row["issued_at"],
        reason=row["reason"],
        customs_reference=row["customs_reference"],
        required_action=row["required_action"],
        referral_reference=row["referral_reference"],
        screening_method=ScreeningMethod(method) if method is not None else None,
        sequence=row["sequence"],
    )
    return StoredNotice(
        notice=notice,
        signed_xml=bytes(row["signed_xml"]),
        destination=row["destination"],
        response_id=row["response_id"],
        created_at=row["created_at"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )


def _notice_row(
    response: ReceivedResponse, decision: DecisionToApply, reference: str
) -> dict[str, Any]:
    notice = decision.notice
    method = notice.screening_method
    return {
        "notice_id": notice.notice_id,
        "operator_id": notice.operator_id,
        "reference": reference,
        "item_id": notice.item_id,
        "destination": response.destination,
        "response_id": response.response_id,
        "decision": notice.decision.value,
        "reason": notice.reason,
        "customs_reference": notice.customs_reference,
        "required_action": notice.required_action,
        "referral_reference": notice.referral_reference,
        "screening_method": method.value if method is not None else None,
        "issued_at": notice.issued_at,
        "created_at": response.received_at,
        "priority": notice.priority,
        "signed_xml": decision.signed_xml,
        "status": _PENDING,
        "attempts": 0,
        "next_attempt_at": response.received_at,
    }


def _failure_values(
    error: str, decision: RetryDecision, table: sa.Table = _OUTBOX
) -> dict[str, Any]:
    """The columns of an outbox (or notice) row after a failed attempt: one more attempt,
    pending again at ``retry_at`` or dead, the lease given up."""
    values: dict[str, Any] = {
        "attempts": table.c.attempts + 1,
        "last_error": error,
        "lease_until": None,
    }
    if decision.dead:
        values["status"] = _DEAD
    else:
        assert decision.retry_at is not None
        values |= {"status": _PENDING, "next_attempt_at": decision.retry_at}
    return values


def _outbox_row(reference: str, at: datetime, kind: str = _FORWARD) -> dict[str, Any]:
    return {
        "reference": reference,
        "kind": kind,
        "status": _PENDING,
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }


def _batch_row(intake: Intake) -> dict[str, Any]:
    return {
        "operator_id": intake.operator_id,
        "batch_id": intake.batch_id,
        "received_at": intake.received_at,
        "source": intake.source,
        "payload_digest": intake.payload_digest,
        "item_count": intake.item_count,
        "accepted_count": len(intake.items),
        "rejected_count": len({error.item_index for error in intake.rejected}),
        "rejected_json": json.dumps([error.as_dict() for error in intake.rejected]),
    }


async def _bulk_insert(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert uniform ``rows`` with one driver-level executemany (see :func:`_bulk_values`)."""
    if rows:
        names = list(rows[0])
        await _bulk_values(session, table, names, list(map(itemgetter(*names), rows)))


#: Not any value a column holds.
_UNSET = object()


def _converted(column: Sequence[Any], convert: Callable[[Any], Any]) -> Sequence[Any]:
    """``column``'s values in their stored form. The rows of one insert mostly share their
    values (an intake's one timestamp): each run of one object is converted once, and a
    column of one object is converted once and repeated."""
    first = column[0]
    if all(value is first for value in column):
        return (convert(first),) * len(column)
    result = []
    last: object = _UNSET
    stored: object = None
    for value in column:
        if value is not last:
            last, stored = value, convert(value)
        result.append(stored)
    return result


async def _bulk_values(
    session: AsyncSession, table: sa.Table, names: Sequence[str], values: list[Any]
) -> None:
    """Insert ``values`` (one tuple per row, of the columns ``names``) with one driver-level
    executemany.

    Each column's values go through the column type's own bind converter (binary ones need
    none), so the stored form is exactly what a SQLAlchemy insert would store; the statement
    just skips the per-row compile and parameter bookkeeping, which cost four times the
    database's own work for a 1,000-item intake. Converting goes column by column
    (:func:`_converted`), the rows taken apart and put together again by ``zip``.
    """
    if not values:
        return
    connection = await session.connection()
    dialect = connection.dialect
    placeholders = {
        "qmark": ["?"] * len(names),
        "numeric_dollar": [f"${n}" for n in range(1, len(names) + 1)],
        "format": ["%s"] * len(names),
    }.get(dialect.paramstyle)
    if placeholders is None:  # a driver we have not measured: the general path
        await session.execute(
            sa.insert(table), [dict(zip(names, row, strict=True)) for row in values]
        )
        return
    # dialect_impl: the backend's own type, whose converter gives the stored form (on SQLite,
    # timestamps as SQLAlchemy's text; the driver's own adapter would drop zero microseconds).
    types = [table.c[name].type.dialect_impl(dialect) for name in names]
    converters = [
        (position, convert)
        for position, column_type in enumerate(types)
        # Bytes go as they are: both drivers store them as a BLOB / bytea.
        if not isinstance(column_type, sa.LargeBinary)
        and (convert := column_type.bind_processor(dialect)) is not None
    ]
    parameters: list[Any] = values
    if converters:
        columns: list[Sequence[Any]] = list(zip(*values, strict=True))
        for position, convert in converters:
            columns[position] = _converted(columns[position], convert)
        parameters = list(zip(*columns, strict=True))
    quote = dialect.identifier_preparer.quote
    into = f"{quote(table.name)} ({', '.join(quote(name) for name in names)})"
    # Names come from our own table metadata; every value is a bound parameter.
    statement = f"INSERT INTO {into} VALUES ({', '.join(placeholders)})"  # noqa: S608
    await connection.exec_driver_sql(statement, parameters)


# -- the store ------------------------------------------------------------------------------


class _Writers:
    """Opens write sessions; on SQLite, for one at a time in this process.

    SQLite has one writer: a second ``BEGIN IMMEDIATE`` polls for the lock with the busy
    handler's growing sleeps (up to 100 ms each), so two forward runs, or an intake and a
    forward run, lost tens of milliseconds per transaction waiting after the lock was free.
    Queued on an asyncio lock instead, the next writer starts the moment the previous one
    commits. Another process (an admin command) still meets the busy handler. PostgreSQL
    writers run concurrently, as before.
    """

    def __init__(self, engine: AsyncEngine, *, one_at_a_time: bool) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._one_at_a_time = one_at_a_time
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            # One lock per event loop (a lock is bound to the loop it first waits on); the
            # entries of closed loops are dropped.
            self._locks = {old: held for old, held in self._locks.items() if not old.is_closed()}
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        if not self._one_at_a_time:
            async with self._sessions() as session:
                yield session
            return
        async with self._lock(), self._sessions() as session:
            yield session


class SqlItemStore:
    """An :class:`~connector.ports.ItemStore` over an async SQLAlchemy engine it owns."""

    def __init__(self, engine: AsyncEngine, checkpointer: WalCheckpointer | None = None) -> None:
        self._engine = engine
        self._checkpointer = checkpointer
        self._dialect = engine.dialect.name
        self._write = _Writers(engine, one_at_a_time=self._dialect == "sqlite")
        self._known_query = sa.select(_ITEMS.c.item_id, _ITEMS.c.reference, _ITEMS.c.digest).where(
            _ITEMS.c.operator_id == sa.bindparam("operator_id"),
            self._one_of(_ITEMS.c.item_id, "item_ids"),
        )
        self._read = async_sessionmaker(db_engine.read_only(engine), expire_on_commit=False)

    @classmethod
    async def open(cls, url: str, *, schema: str | None = None) -> Self:
        """A store on ``url``; refuses a database whose schema is not at the current head.

        On SQLite the WAL is checkpointed by a thread of the store's, not by its commits
        (:mod:`connector.adapters.db.checkpoint`).
        """
        path = sqlite_path(url)
        engine = db_engine.create_engine(
            url, schema=schema, background_checkpoints=path is not None
        )
        try:
            await db_engine.ensure_at_head(engine)
        except BaseException:
            await engine.dispose()
            raise
        checkpointer = WalCheckpointer(path) if path is not None else None
        if checkpointer is not None:
            checkpointer.start()
        return cls(engine, checkpointer)

    async def close(self) -> None:
        """Stop the checkpoints and close every pooled connection."""
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        with db_engine.wrap_errors("closing the database"):
            await self._engine.dispose()

    async def _lease_jobs(
        self, session: AsyncSession, ids: Collection[int], owner: str, lease_s: float, now: datetime
    ) -> None:
        """Mark outbox jobs claimed by ``owner`` until ``now + lease_s``."""
        await session.execute(
            sa.update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(
                status=_CLAIMED,
                owner=owner,
                lease_until=now + timedelta(seconds=lease_s),
                heartbeat_at=now,
            ),
            {"ids": list(ids)},
        )

    async def _notify(self, session: AsyncSession, kind: str) -> None:
        """On PostgreSQL, wake every replica's stage for ``kind`` when this transaction
        commits (see :mod:`connector.adapters.db.listen`); SQLite is one process."""
        if self._dialect == "postgresql":
            await session.execute(sa.text(listen.notify_sql(kind)))

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say ON CONFLICT, in this backend's dialect."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- intake ---------------------------------------------------------------------------

    async def record_intake(self, intake: Intake) -> tuple[IntakeResult, ...]:
        with db_engine.wrap_errors("recording an intake"):
            try:
                return await self._record_intake_once(intake)
            except exc.IntegrityError:
                # Another process stored some of these items between our lookup and our
                # insert (two pushes of one batch at once). Its transaction has committed,
                # so a second attempt sees them and reports DUPLICATE or CONFLICT.
                return await self._record_intake_once(intake)

    async def _record_intake_once(self, intake: Intake) -> tuple[IntakeResult, ...]:
        async with self._write() as session, session.begin():
            known = await self._known_items(
                session, intake.operator_id, {item.item_id for item in intake.items}
            )
            results: list[IntakeResult] = []
            new: list[tuple[str, IncomingItem]] = []
            for incoming in intake.items:
                seen = known.get(incoming.item_id)
                if seen is None:
                    reference = incoming.reference or item_reference(
                        intake.operator_id, incoming.item_id
                    )
                    known[incoming.item_id] = (reference, incoming.digest)
                    new.append((reference, incoming))
                    status = IntakeStatus.NEW
                else:
                    reference, stored_digest = seen
                    same = stored_digest == incoming.digest
                    status = IntakeStatus.DUPLICATE if same else IntakeStatus.CONFLICT
                results.append(
                    IntakeResult(incoming.item_index, incoming.item_id, status, reference)
                )
            await session.execute(
                self._insert(tables.BATCHES)
                .values(_batch_row(intake))
                .on_conflict_do_nothing(index_elements=["operator_id", "batch_id"])
            )
            if new:
                await self._store_new_items(session, intake, new)
                await self._notify(session, "outbox")
            if intake.cursor is not None:
                await self._save_cursor(session, intake)
            return tuple(results)

    async def _known_items(
        self, session: AsyncSession, operator_id: str, item_ids: set[str]
    ) -> dict[str, tuple[str, str]]:
        """Reference and digest of the operator's stored items among ``item_ids``."""
        rows = await session.execute(
            self._known_query,
            {"operator_id": operator_id, "item_ids": self._list_value(sorted(item_ids))},
        )
        return {row.item_id: (row.reference, row.digest) for row in rows}

    def _one_of(self, column: sa.ColumnElement[str], name: str) -> sa.ColumnElement[bool]:
        """``column`` is one of the strings bound to ``name`` as one list parameter (see
        :meth:`_list_value`): one statement, compiled once, whatever the list's length,
        where ``IN (...)`` renders a placeholder per value at every execution."""
        if self._dialect == "postgresql":
            return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String)))
        values = sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
        return column.in_(sa.select(values.c.value))

    def _list_value(self, values: list[str]) -> list[str] | str:
        """``values`` as the list parameter of :meth:`_one_of` (a JSON array on SQLite)."""
        return values if self._dialect == "postgresql" else json.dumps(values)

    async def _store_new_items(
        self, session: AsyncSession, intake: Intake, new: Sequence[tuple[str, IncomingItem]]
    ) -> None:
        """Insert new items, their payloads, their RECEIVED and ACCEPTED events and their
        outbox rows.

        One executemany per table. Items go in item-id order so that two concurrent intakes
        take unique-index entries in the same order (no deadlock, just one loser), with row
        ids taken beforehand so that their payloads go in by id; events and forwarding jobs
        keep the intake's order.
        """
        at, operator_id, batch_id = intake.received_at, intake.operator_id, intake.batch_id
        accepted = lifecycle.transition(None, ItemState.ACCEPTED).value
        received = lifecycle.transition(None, ItemState.RECEIVED).value
        lifecycle.transition(ItemState.RECEIVED, ItemState.ACCEPTED)
        actor, detail = f"operator:{operator_id}", f"{intake.source} batch {batch_id}"
        ordered = sorted(new, key=lambda pair: pair[1].item_id)
        ids = await self._new_item_ids(session, len(ordered))
        items: list[tuple[Any, ...]] = []
        payloads: list[tuple[int, bytes]] = []
        for row_id, (reference, incoming) in zip(ids, ordered, strict=True):
            items.append(
                (
                    row_id,
                    reference,
                    operator_id,
                    incoming.item_id,
                    1,
                    accepted,
                    incoming.destination_country,
                    batch_id,
                    incoming.digest,
                    None,
                    at,
                    at,
                    findings_to_json(incoming.findings),
                )
            )
            payloads.append((row_id, incoming.item_xml))
        events: list[tuple[Any, ...]] = []
        jobs: list[tuple[Any, ...]] = []
        for reference, _ in new:
            events.append((reference, at, actor, None, received, detail))
            events.append((reference, at, "connector", received, accepted, "validated"))
            jobs.append((reference, _FORWARD, _PENDING, 0, at, at))
        await _bulk_values(session, _ITEMS, _ITEM_COLUMNS, items)
        await _bulk_values(session, _PAYLOADS, ("id", "item_xml"), payloads)
        await _bulk_values(session, _EVENTS, _EVENT_COLUMNS, events)
        await _bulk_values(session, _OUTBOX, _JOB_COLUMNS, jobs)

    async def _new_item_ids(self, session: AsyncSession, count: int) -> list[int]:
        """Row ids for ``count`` new items: on PostgreSQL from the ids' own sequence; on
        SQLite the next ones after the largest (the transaction holds the only write lock)."""
        if self._dialect == "postgresql":
            rows = await session.execute(
                sa.text(
                    "SELECT nextval(pg_get_serial_sequence('items', 'id')) "
                    "FROM generate_series(1, :count)"
                ),
                {"count": count},
            )
            return [int(row_id) for row_id in rows.scalars()]
        largest = await session.scalar(sa.select(sa.func.max(_ITEMS.c.id)))
        return list(range((largest or 0) + 1, (largest or 0) + 1 + count))

    async def _save_cursor(self, session: AsyncSession, intake: Intake) -> None:
        """Move the operator's pull cursor (and forget the last pull error)."""
        values = {
            "cursor": intake.cursor,
            "updated_at": intake.received_at,
            "last_error": None,
            "last_error_at": None,
        }
        statement = self._insert(tables.PULL_CURSORS).values(
            operator_id=intake.operator_id, **values
        )
        await session.execute(
            statement.on_conflict_do_update(index_elements=["operator_id"], set_=values)
        )

    # -- items ----------------------------------------------------------------------------

    async def get_item(self, operator_id: str, item_id: str) -> StoredItem | None:
        with db_engine.wrap_errors("reading an item"):
            async with self._read() as session, session.begin():
                return await self._item(session, operator_id, item_id)

    async def _item(
        self, session: AsyncSession, operator_id: str, item_id: str, *, for_update: bool = False
    ) -> StoredItem | None:
        query = _select_items().where(
            _ITEMS.c.operator_id == operator_id, _ITEMS.c.item_id == item_id
        )
        if for_update:  # PostgreSQL; SQLite holds the write lock anyway
            query = query.with_for_update(of=_ITEMS)
        row = (await session.execute(query)).mappings().first()
        return item_from_row(row) if row is not None else None

    async def find_items(self, item_id: str) -> tuple[StoredItem, ...]:
        with db_engine.wrap_errors("finding items"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    _select_items()
                    .where(_ITEMS.c.item_id == item_id)
                    .order_by(_ITEMS.c.operator_id)
                )
                return tuple(item_from_row(row) for row in rows.mappings())

    async def item_events(self, reference: str) -> tuple[ItemEvent, ...]:
        with db_engine.wrap_errors("reading an item's events"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(_EVENTS)
                    .where(_EVENTS.c.reference == reference)
                    .order_by(_EVENTS.c.id)
                )
                return tuple(event_from_row(row) for row in rows.mappings())

    async def amend_item(
        self, operator_id: str, item: IncomingItem, version: int, at: datetime
    ) -> StoredItem:
        with db_engine.wrap_errors("amending an item"):
            async with self._write() as session, session.begin():
                found = await self._item(session, operator_id, item.item_id, for_update=True)
                current = lifecycle.check_amendable(
                    found, operator_id, item.item_id, version=version, replacing=True
                )
                amended, event = lifecycle.amended(
                    current, item, version, f"operator:{operator_id}", at
                )
                amended = replace(amended, findings=item.findings)  # the new version's own
                await self._replace_item(session, amended, event)
                pending = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(_OUTBOX)
                    .where(
                        _OUTBOX.c.reference == current.reference,
                        _OUTBOX.c.kind == _FORWARD,
                        _OUTBOX.c.status == _PENDING,
                    )
                )
                if not pending:
                    await session.execute(
                        sa.insert(_OUTBOX).values(_outbox_row(current.reference, at))
                    )
                return amended

    async def cancel_item(
        self, operator_id: str, item_id: str, version: int, reason: str, at: datetime
    ) -> StoredItem:
        with db_engine.wrap_errors("cancelling an item"):
            async with self._write() as session, session.begin():
                found = await self._item(session, operator_id, item_id, for_update=True)
                current = lifecycle.check_amendable(
                    found, operator_id, item_id, version=version, replacing=False
                )
                cancelled, event = lifecycle.cancelled(
                    current, reason, f"operator:{operator_id}", at
                )
                await self._replace_item(session, cancelled, event)
                # Withdrawn work (agency copies too) leaves the queue; the item's events
                # keep the history.
                await session.execute(
                    sa.delete(_OUTBOX).where(
                        _OUTBOX.c.reference == current.reference, _OUTBOX.c.status == _PENDING
                    )
                )
                return cancelled

    async def _replace_item(
        self, session: AsyncSession, item: StoredItem, event: ItemEvent
    ) -> None:
        """Write ``item``'s new version and the event of its state change."""
        row = event_to_row(event)  # refuses a transition the lifecycle does not allow
        await session.execute(
            sa.update(_ITEMS).where(_ITEMS.c.reference == item.reference).values(item_to_row(item))
        )
        await session.execute(
            sa.update(_PAYLOADS)
            .where(_PAYLOADS.c.id == _item_id(item.reference))
            .values(item_xml=item.item_xml)
        )
        await session.execute(sa.insert(_EVENTS).values(row))

    async def item_stats(self) -> ItemStats:
        """Items per state and the oldest one waiting to be forwarded, in one read."""
        waiting = (ItemState.ACCEPTED.value, ItemState.FORWARDING.value)
        with db_engine.wrap_errors("counting items"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(_ITEMS.c.state, sa.func.count()).group_by(_ITEMS.c.state)
                )
                oldest = await session.scalar(
                    sa.select(sa.func.min(_ITEMS.c.received_at)).where(_ITEMS.c.state.in_(waiting))
                )
        return ItemStats({str(state): int(count) for state, count in rows.all()}, oldest)

    async def outbox_depth(self) -> int:
        """How many forwarding jobs are waiting (pending)."""
        with db_engine.wrap_errors("counting the outbox"):
            async with self._read() as session, session.begin():
                count = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(_OUTBOX)
                    .where(_OUTBOX.c.status == _PENDING, _OUTBOX.c.kind == _FORWARD)
                )
                return int(count or 0)

    # -- forwarding -----------------------------------------------------------------------

    async def claim_for_forwarding(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[ForwardClaim, ...]:
        """Claim up to ``limit`` due jobs for ``owner`` until ``now + lease_s``.

        Due are pending jobs whose ``next_attempt_at`` has come and claimed jobs whose lease
        has run out (a crashed replica's work). Each claimed item moves to FORWARDING with an
        event, in the same transaction. PostgreSQL skips rows other claimers hold locked;
        SQLite runs the same statements under BEGIN IMMEDIATE, one writer at a time.
        """
        with db_engine.wrap_errors("claiming forwarding work"):
            async with self._write() as session, session.begin():
                ids = await self._due_jobs(session, _OUTBOX.c.kind == _FORWARD, limit, now)
                if not ids:
                    return ()
                await self._lease_jobs(session, ids, owner, lease_s, now)
                # Only what building a declaration needs; no item record is made.
                query = (
                    sa.select(
                        _OUTBOX.c.id,
                        _OUTBOX.c.attempts,
                        _ITEMS.c.id,
                        _ITEMS.c.reference,
                        _ITEMS.c.operator_id,
                        _ITEMS.c.item_id,
                        _ITEMS.c.version,
                        _ITEMS.c.state,
                        _ITEMS.c.destination_country,
                        _PAYLOADS.c.item_xml,
                        _ITEMS.c.findings,
                    )
                    .join(_ITEMS, _ITEMS.c.reference == _OUTBOX.c.reference)
                    .join(_PAYLOADS, _PAYLOADS.c.id == _ITEMS.c.id)
                    .where(_OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)))
                    .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
                    .with_for_update(of=_ITEMS)  # PostgreSQL; SQLite holds the write lock
                )
                rows = (await session.execute(query, {"ids": list(ids)})).all()
                claims: list[ForwardClaim] = []
                events: list[tuple[Any, ...]] = []
                allowed: set[str] = set()
                forwarding = ItemState.FORWARDING.value
                for (
                    outbox_id,
                    attempts,
                    _,
                    reference,
                    operator_id,
                    item_id,
                    version,
                    state,
                    destination_country,
                    item_xml,
                    findings,
                ) in rows:
                    if state not in allowed:  # each state checked once, as event_to_row does
                        lifecycle.transition(ItemState(state), ItemState.FORWARDING)
                        allowed.add(state)
                    detail = f"attempt {attempts + 1} by {owner}"
                    if ids[outbox_id]:
                        detail += " (lease expired)"
                    events.append((reference, now, "connector", state, forwarding, detail))
                    claims.append(
                        ForwardClaim(
                            outbox_id=outbox_id,
                            reference=reference,
                            operator_id=operator_id,
                            item_id=item_id,
                            version=version,
                            destination_country=destination_country,
                            item_xml=bytes(item_xml),
                            attempts=attempts,
                            findings=_warnings(findings, item_id),
                        )
                    )
                await self._set_state_by_id(
                    session, [row[2] for row in rows], ItemState.FORWARDING, now
                )
                await _bulk_values(session, _EVENTS, _EVENT_COLUMNS, events)
                return tuple(claims)

    async def _due_jobs(
        self, session: AsyncSession, kind: sa.ColumnElement[bool], limit: int, now: datetime
    ) -> dict[int, bool]:
        """Ids of due jobs of ``kind``, locked (expired leases first), each with "was it
        taken over".

        Two queries, each served by ``ix_outbox_claim`` (status, next_attempt_at, id): the
        few claimed rows are scanned for an expired lease, and pending rows are read in the
        index's order up to the limit. An OR of both would not use the index's order.
        """
        expired = await session.execute(
            sa.select(_OUTBOX.c.id)
            .where(_OUTBOX.c.status == _CLAIMED, kind, _OUTBOX.c.lease_until < now)
            .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        due = dict.fromkeys(expired.scalars(), True)
        if len(due) < limit:
            pending = await session.execute(
                sa.select(_OUTBOX.c.id)
                .where(_OUTBOX.c.status == _PENDING, kind, _OUTBOX.c.next_attempt_at <= now)
                .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
                .limit(limit - len(due))
                .with_for_update(skip_locked=True)
            )
            due.update(dict.fromkeys(pending.scalars(), False))
        return due

    async def _set_state(
        self, session: AsyncSession, references: Sequence[str], state: ItemState, at: datetime
    ) -> None:
        for start in range(0, len(references), _LOOKUP_CHUNK):
            await session.execute(
                sa.update(_ITEMS)
                .where(_ITEMS.c.reference.in_(references[start : start + _LOOKUP_CHUNK]))
                .values(state=state.value, updated_at=at)
            )

    async def _set_state_by_id(
        self, session: AsyncSession, ids: Sequence[int], state: ItemState, at: datetime
    ) -> None:
        """Move the items with these row ids to ``state`` (no event: the caller writes it)."""
        statement = (
            sa.update(_ITEMS)
            .where(_ITEMS.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(state=state.value, updated_at=at)
        )
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            await session.execute(statement, {"ids": list(ids[start : start + _LOOKUP_CHUNK])})

    async def _take_owned(
        self,
        session: AsyncSession,
        claims: Sequence[ForwardClaim | CopyClaim],
        owner: str,
        values: dict[str, Any],
    ) -> list[tuple[int, str, int]]:
        """Update the jobs of ``claims`` that ``owner`` still holds; (id, reference, attempts).

        ``AND owner = :me``: a replica whose lease was taken over changes nothing.
        """
        return await self._update_owned(session, [c.outbox_id for c in claims], owner, values)

    async def _update_owned(
        self, session: AsyncSession, ids: Sequence[int], owner: str, values: dict[str, Any]
    ) -> list[tuple[int, str, int]]:
        taken: list[tuple[int, str, int]] = []
        statement = (
            sa.update(_OUTBOX)
            .where(
                _OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)),
                _OUTBOX.c.owner == owner,
                _OUTBOX.c.status == _CLAIMED,
            )
            .values(values)
            .returning(_OUTBOX.c.id, _OUTBOX.c.reference, _OUTBOX.c.attempts)
        )
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            rows = await session.execute(
                statement, {"ids": list(ids[start : start + _LOOKUP_CHUNK])}
            )
            taken.extend((row.id, row.reference, row.attempts) for row in rows)
        return taken

    async def _move_items(
        self,
        session: AsyncSession,
        references: Sequence[str],
        from_state: ItemState,
        to_state: ItemState,
        detail: str,
        at: datetime,
    ) -> None:
        # Only items still in ``from_state``: a Customs decision may have come for an item
        # before its send was recorded (lifecycle: FORWARDING | DEAD -> DECIDED).
        lifecycle.transition(from_state, to_state)  # every event below is this transition
        moved: list[str] = []
        statement = (
            sa.update(_ITEMS)
            .where(
                _ITEMS.c.reference.in_(sa.bindparam("references", expanding=True)),
                _ITEMS.c.state == from_state.value,
            )
            .values(state=to_state.value, updated_at=at)
            .returning(_ITEMS.c.reference)
        )
        for start in range(0, len(references), _LOOKUP_CHUNK):
            rows = await session.execute(
                statement, {"references": list(references[start : start + _LOOKUP_CHUNK])}
            )
            moved.extend(rows.scalars())
        old, new = from_state.value, to_state.value
        events = [(reference, at, "connector", old, new, detail) for reference in moved]
        await _bulk_values(session, _EVENTS, _EVENT_COLUMNS, events)

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
        """Complete ``owner``'s claims as FORWARDED; returns how many it still owned.

        The declaration (signed bytes and receipt) is stored as evidence even when a
        takeover voided the claims: it did reach Customs. The agency copies of the items
        still owned are queued in the same transaction.
        """
        with db_engine.wrap_errors("recording forwarded items"):
            async with self._write() as session, session.begin():
                await self._keep_evidence(session, declaration_batch_id, signed_xml, receipt, at)
                taken = await self._take_owned(
                    session,
                    claims,
                    owner,
                    {"status": _DONE, "lease_until": None, "last_error": None},
                )
                detail = f"declaration batch {declaration_batch_id} to {receipt.destination}"
                await self._move_items(
                    session,
                    [reference for _, reference, _ in taken],
                    ItemState.FORWARDING,
                    ItemState.FORWARDED,
                    detail,
                    at,
                )
                if copies:
                    await self._queue_copies(
                        session, [reference for _, reference, _ in taken], copies, at
                    )
                return len(taken)

    async def _keep_evidence(
        self,
        session: AsyncSession,
        batch_id: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> None:
        """Store a sent batch (declaration or agency copy) with its receipt, once per id."""
        await session.execute(
            self._insert(tables.DECLARATIONS)
            .values(
                declaration_batch_id=batch_id,
                destination=receipt.destination,
                signed_xml=signed_xml,
                receipt=receipt.receipt,
                sent_at=at,
            )
            .on_conflict_do_nothing(index_elements=["declaration_batch_id"])
        )

    async def _queue_copies(
        self,
        session: AsyncSession,
        references: Sequence[str],
        copies: Mapping[str, Sequence[str]],
        at: datetime,
    ) -> None:
        """One pending ``copy:<agency>`` job per (reference, agency), replacing a pending one."""
        by_kind: dict[str, list[str]] = {}
        for reference in references:
            for agency in dict.fromkeys(copies.get(reference, ())):
                by_kind.setdefault(_COPY + agency, []).append(reference)
        rows: list[dict[str, Any]] = []
        for kind, queued in by_kind.items():
            for start in range(0, len(queued), _LOOKUP_CHUNK):
                await session.execute(
                    sa.delete(_OUTBOX).where(
                        _OUTBOX.c.reference.in_(queued[start : start + _LOOKUP_CHUNK]),
                        _OUTBOX.c.kind == kind,
                        _OUTBOX.c.status == _PENDING,
                    )
                )
            rows.extend(_outbox_row(reference, at, kind) for reference in queued)
        await _bulk_insert(session, _OUTBOX, rows)

    async def record_forward_failure(
        self,
        claims: Sequence[ForwardClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Count a failed attempt of ``owner``'s claims: back to pending, or dead."""
        values = _failure_values(error, decision)
        if decision.dead:
            to_state, detail = ItemState.DEAD, decision.reason
        else:
            assert decision.retry_at is not None
            to_state = ItemState.FORWARDING
            detail = f"{error}; retry at {decision.retry_at.isoformat()}"
        with db_engine.wrap_errors("recording a forwarding failure"):
            async with self._write() as session, session.begin():
                taken = await self._take_owned(session, claims, owner, values)
                await self._move_items(
                    session,
                    [reference for _, reference, _ in taken],
                    ItemState.FORWARDING,
                    to_state,
                    detail,
                    at,
                )
                return len(taken)

    async def extend_leases(
        self, outbox_ids: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        """Renew ``owner``'s leases on these jobs to ``until``; a job another replica took
        over, or that is done, is left alone. Returns how many ``owner`` still held."""
        with db_engine.wrap_errors("renewing leases"):
            async with self._write() as session, session.begin():
                taken = await self._update_owned(
                    session, list(outbox_ids), owner, {"lease_until": until, "heartbeat_at": now}
                )
                return len(taken)

    async def claim_copies(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[CopyClaim, ...]:
        """Claim up to ``limit`` due agency copy jobs for ``owner`` until ``now + lease_s``,
        like :meth:`claim_for_forwarding` but without touching the items' states."""
        with db_engine.wrap_errors("claiming agency copies"):
            async with self._write() as session, session.begin():
                kind = _OUTBOX.c.kind.startswith(_COPY, autoescape=True)
                ids = await self._due_jobs(session, kind, limit, now)
                if not ids:
                    return ()
                await self._lease_jobs(session, ids, owner, lease_s, now)
                query = (
                    sa.select(
                        _OUTBOX.c.id.label("outbox_id"),
                        _OUTBOX.c.kind,
                        _OUTBOX.c.attempts,
                        _ITEMS.c.reference,
                        _ITEMS.c.operator_id,
                        _ITEMS.c.item_id,
                        _ITEMS.c.version,
                        _ITEMS.c.destination_country,
                        _PAYLOADS.c.item_xml,
                    )
                    .join(_ITEMS, _ITEMS.c.reference == _OUTBOX.c.reference)
                    .join(_PAYLOADS, _PAYLOADS.c.id == _ITEMS.c.id)
                    .where(_OUTBOX.c.id.in_(ids))
                    .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
                )
                rows = (await session.execute(query)).mappings().all()
                return tuple(
                    CopyClaim(
                        outbox_id=row["outbox_id"],
                        agency=row["kind"].removeprefix(_COPY),
                        reference=row["reference"],
                        operator_id=row["operator_id"],
                        item_id=row["item_id"],
                        version=row["version"],
                        destination_country=row["destination_country"],
                        item_xml=bytes(row["item_xml"]),
                        attempts=row["attempts"],
                    )
                    for row in rows
                )

    async def record_copied(
        self,
        claims: Sequence[CopyClaim],
        owner: str,
        copy_batch_id: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> int:
        """Complete ``owner``'s copy jobs and keep the copy with the agency's receipt (even
        when a takeover voided the claims: it did reach the agency)."""
        with db_engine.wrap_errors("recording agency copies"):
            async with self._write() as session, session.begin():
                await self._keep_evidence(session, copy_batch_id, signed_xml, receipt, at)
                taken = await self._take_owned(
                    session,
                    claims,
                    owner,
                    {"status": _DONE, "lease_until": None, "last_error": None},
                )
                return len(taken)

    async def record_copy_failure(
        self,
        claims: Sequence[CopyClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Count a failed attempt of ``owner``'s copy jobs: back to pending, or dead. The
        items keep their state (a copy never changes an item's lifecycle)."""
        last_error = error if not decision.dead else f"{error}; {decision.reason}"
        values = _failure_values(last_error, decision)
        with db_engine.wrap_errors("recording an agency copy failure"):
            async with self._write() as session, session.begin():
                return len(await self._take_owned(session, claims, owner, values))

    async def purge_evidence(self, before: datetime) -> int:
        """Delete the evidence rows (declaration batches and agency copies with their
        receipts) sent before ``before``; returns how many went."""
        evidence = tables.DECLARATIONS
        with db_engine.wrap_errors("purging old evidence"):
            async with self._write() as session, session.begin():
                deleted = await session.execute(
                    sa.delete(evidence)
                    .where(evidence.c.sent_at < before)
                    .returning(evidence.c.declaration_batch_id)
                )
                return len(deleted.all())

    async def dead_letters(self) -> tuple[StoredItem, ...]:
        """Items whose forwarding gave up, oldest job first."""
        with db_engine.wrap_errors("reading the dead letters"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    _select_items()
                    .join(_OUTBOX, _OUTBOX.c.reference == _ITEMS.c.reference)
                    .where(_OUTBOX.c.status == _DEAD, _OUTBOX.c.kind.in_(_ITEM_JOBS))
                    .order_by(_OUTBOX.c.id)
                )
                return tuple(item_from_row(row) for row in rows.mappings())

    async def replay(
        self, reference: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> StoredItem:
        """Queue a dead item again: its job is pending now with no attempts, the item
        moves DEAD -> FORWARDING at once (an ``admin`` ``replay`` event)."""
        with db_engine.wrap_errors("replaying a dead item"):
            async with self._write() as session, session.begin():
                row = (
                    (
                        await session.execute(
                            _select_items()
                            .where(_ITEMS.c.reference == reference)
                            .with_for_update(of=_ITEMS)
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    raise NotFound(f"no item with reference {reference}")
                revived = await session.execute(
                    sa.update(_OUTBOX)
                    .where(
                        _OUTBOX.c.reference == reference,
                        _OUTBOX.c.kind.in_(_ITEM_JOBS),
                        _OUTBOX.c.status == _DEAD,
                    )
                    .values(
                        status=_PENDING,
                        attempts=0,
                        next_attempt_at=at,
                        owner=None,
                        lease_until=None,
                    )
                    .returning(_OUTBOX.c.id)
                )
                if not revived.all():
                    raise IllegalTransition(f"item {reference} has no dead forwarding work")
                item = item_from_row(row)
                replayed, event = (
                    replace(item, state=ItemState.FORWARDING, updated_at=at),
                    ItemEvent(reference, at, "admin", item.state, ItemState.FORWARDING, "replay"),
                )
                await self._replace_item(session, replayed, event)
                if audit is not None:
                    await self._append_audit(session, audit)
                return replayed

    # -- referral answers -------------------------------------------------------------------

    async def record_answer(self, received: ReceivedAnswer) -> RecordedAnswer:
        """Store the answer, move its item to FORWARDING and queue the ``answer`` job (see
        the port); a second attempt settles a race with the same answer stored concurrently."""
        with db_engine.wrap_errors("recording a referral answer"):
            try:
                return await self._record_answer_once(received)
            except exc.IntegrityError:
                return await self._record_answer_once(received)

    async def _record_answer_once(self, received: ReceivedAnswer) -> RecordedAnswer:
        answers, answer = tables.REFERRAL_ANSWERS, received.answer
        async with self._write() as session, session.begin():
            known = (
                (
                    await session.execute(
                        sa.select(answers).where(
                            answers.c.operator_id == answer.operator_id,
                            answers.c.answer_id == answer.answer_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if known is not None:
                return _known_answer(known, received)
            row = (
                (
                    await session.execute(
                        _select_items()
                        .where(
                            _ITEMS.c.operator_id == answer.operator_id,
                            _ITEMS.c.item_id == answer.item_id,
                        )
                        .with_for_update(of=_ITEMS)  # PostgreSQL; SQLite holds the write lock
                    )
                )
                .mappings()
                .first()
            )
            item = item_from_row(row) if row is not None else None
            pending = referrals.pending_referral(
                item, row["referral_reference"] if row is not None else None
            )
            referrals.check_answer(answer, operator_id=answer.operator_id, pending=pending)
            assert item is not None
            assert pending is not None
            moved, event = lifecycle.answer_forwarding(
                item,
                f"operator:{answer.operator_id}",
                received.received_at,
                f"referral answer {answer.answer_id} to {answer.referral_reference}",
            )
            await self._replace_item(session, moved, event)
            await self._notify(session, "answers")
            job = await session.execute(
                sa.insert(_OUTBOX)
                .values(_outbox_row(item.reference, received.received_at, _ANSWER))
                .returning(_OUTBOX.c.id)
            )
            await session.execute(
                sa.insert(answers).values(
                    operator_id=answer.operator_id,
                    answer_id=answer.answer_id,
                    reference=item.reference,
                    item_id=answer.item_id,
                    referral_reference=answer.referral_reference,
                    kind=pending.kind.value,
                    digest=received.digest,
                    answer_xml=received.answer_xml,
                    answered_at=answer.answered_at,
                    received_at=received.received_at,
                    outbox_id=job.scalar_one(),
                )
            )
            return RecordedAnswer(
                answer_id=answer.answer_id,
                operator_id=answer.operator_id,
                item_id=answer.item_id,
                reference=item.reference,
                referral_reference=answer.referral_reference,
                kind=pending.kind,
                received_at=received.received_at,
            )

    async def claim_answers(
        self, owner: str, limit: int, lease_s: float, now: datetime
    ) -> tuple[AnswerClaim, ...]:
        """Claim up to ``limit`` due answer jobs for ``owner`` until ``now + lease_s``, like
        :meth:`claim_for_forwarding` but leaving the items FORWARDING as they are."""
        answers = tables.REFERRAL_ANSWERS
        with db_engine.wrap_errors("claiming referral answers"):
            async with self._write() as session, session.begin():
                ids = await self._due_jobs(session, _OUTBOX.c.kind == _ANSWER, limit, now)
                if not ids:
                    return ()
                await self._lease_jobs(session, ids, owner, lease_s, now)
                query = (
                    sa.select(
                        _OUTBOX.c.id.label("outbox_id"),
                        _OUTBOX.c.attempts,
                        _ITEMS.c.reference,
                        _ITEMS.c.operator_id,
                        _ITEMS.c.item_id,
                        _ITEMS.c.destination_country,
                        answers.c.answer_id,
                        answers.c.answer_xml,
                    )
                    .join(_ITEMS, _ITEMS.c.reference == _OUTBOX.c.reference)
                    .join(answers, answers.c.outbox_id == _OUTBOX.c.id)
                    .where(_OUTBOX.c.id.in_(ids))
                    .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
                )
                rows = (await session.execute(query)).mappings().all()
                return tuple(
                    AnswerClaim(
                        outbox_id=row["outbox_id"],
                        reference=row["reference"],
                        operator_id=row["operator_id"],
                        item_id=row["item_id"],
                        destination_country=row["destination_country"],
                        answer_id=row["answer_id"],
                        answer_xml=bytes(row["answer_xml"]),
                        attempts=row["attempts"],
                    )
                    for row in rows
                )

    async def record_answer_sent(
        self,
        claim: AnswerClaim,
        owner: str,
        signed_xml: bytes,
        receipt: CustomsReceipt,
        at: datetime,
    ) -> bool:
        answers = tables.REFERRAL_ANSWERS
        with db_engine.wrap_errors("recording a forwarded referral answer"):
            async with self._write() as session, session.begin():
                await session.execute(
                    sa.update(answers)
                    .where(answers.c.outbox_id == claim.outbox_id)
                    .values(
                        destination=receipt.destination,
                        signed_xml=signed_xml,
                        receipt=receipt.receipt,
                        sent_at=at,
                    )
                )
                taken = await self._update_owned(
                    session,
                    [claim.outbox_id],
                    owner,
                    {"status": _DONE, "lease_until": None, "last_error": None},
                )
                if taken:
                    await self._move_items(
                        session,
                        [claim.reference],
                        ItemState.FORWARDING,
                        ItemState.FORWARDED,
                        f"referral answer {claim.answer_id} to {receipt.destination}",
                        at,
                    )
                return bool(taken)

    async def record_answer_failure(
        self,
        claims: Sequence[AnswerClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Count a failed attempt of ``owner``'s answer jobs: back to pending, or dead (the
        item DEAD too, replayable by an admin)."""
        values = _failure_values(error, decision)
        if decision.dead:
            to_state, detail = ItemState.DEAD, f"referral answer: {decision.reason}"
        else:
            assert decision.retry_at is not None
            to_state = ItemState.FORWARDING
            detail = f"referral answer: {error}; retry at {decision.retry_at.isoformat()}"
        with db_engine.wrap_errors("recording a referral answer failure"):
            async with self._write() as session, session.begin():
                taken = await self._update_owned(
                    session, [claim.outbox_id for claim in claims], owner, values
                )
                await self._move_items(
                    session,
                    [reference for _, reference, _ in taken],
                    ItemState.FORWARDING,
                    to_state,
                    detail,
                    at,
                )
                return len(taken)

    async def answers_of(self, reference: str) -> tuple[StoredAnswer, ...]:
        answers = tables.REFERRAL_ANSWERS
        with db_engine.wrap_errors("reading an item's referral answers"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(
                        answers,
                        _OUTBOX.c.status,
                        _OUTBOX.c.attempts,
                        _OUTBOX.c.last_error,
                    )
                    .join(_OUTBOX, _OUTBOX.c.id == answers.c.outbox_id)
                    .where(answers.c.reference == reference)
                    .order_by(answers.c.id)
                )
                return tuple(
                    StoredAnswer(
                        answer_id=row["answer_id"],
                        referral_reference=row["referral_reference"],
                        kind=CustomsDecision(row["kind"]),
                        received_at=row["received_at"],
                        status=row["status"],
                        attempts=row["attempts"],
                        last_error=row["last_error"],
                        destination=row["destination"],
                        sent_at=row["sent_at"],
                    )
                    for row in rows.mappings()
                )

    async def save_cursor(self, source_id: str, cursor: str, at: datetime) -> None:
        values = {"cursor": cursor, "updated_at": at, "last_error": None, "last_error_at": None}
        with db_engine.wrap_errors("saving a pull cursor"):
            async with self._write() as session, session.begin():
                statement = self._insert(tables.PULL_CURSORS).values(
                    operator_id=source_id, **values
                )
                await session.execute(
                    statement.on_conflict_do_update(index_elements=["operator_id"], set_=values)
                )

    # -- pulls and schedules --------------------------------------------------------------

    async def get_cursor(self, operator_id: str) -> str | None:
        with db_engine.wrap_errors("reading a pull cursor"):
            async with self._read() as session, session.begin():
                cursor: str | None = await session.scalar(
                    sa.select(tables.PULL_CURSORS.c.cursor).where(
                        tables.PULL_CURSORS.c.operator_id == operator_id
                    )
                )
                return cursor

    async def record_pull_error(self, operator_id: str, error: str, at: datetime) -> None:
        with db_engine.wrap_errors("recording a pull error"):
            async with self._write() as session, session.begin():
                values = {"last_error": error, "last_error_at": at}
                statement = self._insert(tables.PULL_CURSORS).values(
                    operator_id=operator_id, cursor=None, updated_at=at, **values
                )
                await session.execute(
                    statement.on_conflict_do_update(index_elements=["operator_id"], set_=values)
                )

    async def claim_tick(self, schedule_id: str, fire_time: datetime, owner: str) -> bool:
        with db_engine.wrap_errors("claiming a scheduled run"):
            async with self._write() as session, session.begin():
                ticks = tables.SCHEDULE_TICKS
                claimed = await session.execute(
                    self._insert(ticks)
                    .values(
                        schedule_id=schedule_id,
                        fire_time=fire_time,
                        owner=owner,
                        claimed_at=datetime.now(UTC),
                    )
                    .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
                    .returning(ticks.c.schedule_id)
                )
                if claimed.first() is None:
                    return False
                await session.execute(
                    self._insert(tables.SCHEDULES)
                    .values(schedule_id=schedule_id, paused=False)
                    .on_conflict_do_nothing(index_elements=["schedule_id"])
                )
                return True

    async def finish_tick(
        self, schedule_id: str, fire_time: datetime, result: str, at: datetime
    ) -> None:
        with db_engine.wrap_errors("finishing a scheduled run"):
            async with self._write() as session, session.begin():
                ticks = tables.SCHEDULE_TICKS
                await session.execute(
                    sa.update(ticks)
                    .where(ticks.c.schedule_id == schedule_id, ticks.c.fire_time == fire_time)
                    .values(result=result, finished_at=at)
                )

    async def set_paused(
        self, schedule_id: str, paused: bool, *, audit: AuditEntry | None = None
    ) -> None:
        with db_engine.wrap_errors("pausing or resuming a schedule"):
            async with self._write() as session, session.begin():
                await session.execute(
                    self._insert(tables.SCHEDULES)
                    .values(schedule_id=schedule_id, paused=paused)
                    .on_conflict_do_update(index_elements=["schedule_id"], set_={"paused": paused})
                )
                if audit is not None:
                    await self._append_audit(session, audit)

    async def schedule_states(self) -> dict[str, ScheduleState]:
        schedules, ticks = tables.SCHEDULES, tables.SCHEDULE_TICKS
        latest = (
            sa.select(ticks.c.schedule_id, sa.func.max(ticks.c.fire_time).label("fire_time"))
            .group_by(ticks.c.schedule_id)
            .subquery()
        )
        last = (
            sa.select(ticks)
            .join(
                latest,
                sa.and_(
                    ticks.c.schedule_id == latest.c.schedule_id,
                    ticks.c.fire_time == latest.c.fire_time,
                ),
            )
            .subquery()
        )
        query = (
            sa.select(
                schedules.c.schedule_id,
                schedules.c.paused,
                last.c.fire_time,
                last.c.result,
                last.c.finished_at,
            )
            .outerjoin(last, last.c.schedule_id == schedules.c.schedule_id)
            .order_by(schedules.c.schedule_id)
        )
        with db_engine.wrap_errors("reading the schedules"):
            async with self._read() as session, session.begin():
                rows = (await session.execute(query)).all()
        return {
            row.schedule_id: ScheduleState(
                row.schedule_id,
                paused=bool(row.paused),
                last_fire_time=row.fire_time,
                last_result=row.result,
                last_finished_at=row.finished_at,
            )
            for row in rows
        }

    # -- operators ------------------------------------------------------------------------

    async def upsert_operators(self, operators: tuple[OperatorRecord, ...]) -> tuple[str, ...]:
        """Make the configuration-managed operators match the configuration (by id).

        Configured operators are inserted or updated, keeping an administrator's decisions
        (``admin_disabled``, a token set by an administrator); configuration-managed operators
        no longer configured are disabled and lose their credentials; admin-added operators
        are left alone. Two operators sharing a credential is a ConfigurationError.
        """
        now = datetime.now(UTC)
        table = tables.OPERATORS
        ids = [operator.operator_id for operator in operators]
        by_config = sa.or_(table.c.managed_by == _BY_CONFIG, table.c.operator_id.in_(ids))
        kept_token = table.c.token_rotated_at.is_not(None)
        with db_engine.wrap_errors("updating the operators", on_conflict=ConfigurationError):
            async with self._write() as session, session.begin():
                rotated = dict(
                    (
                        await session.execute(
                            sa.select(table.c.operator_id, table.c.token_sha256).where(
                                table.c.operator_id.in_(ids), kept_token
                            )
                        )
                    ).all()
                )
                # Credentials may move between operators in one update: clear the ones the
                # configuration sets first, so the unique constraints judge the final state.
                await session.execute(
                    sa.update(table)
                    .where(by_config)
                    .values(
                        cert_sha256=None,
                        token_sha256=sa.case((kept_token, table.c.token_sha256), else_=None),
                    )
                )
                if operators:
                    statement = self._insert(table)
                    excluded = statement.excluded
                    await session.execute(
                        statement.on_conflict_do_update(
                            index_elements=["operator_id"],
                            set_={
                                "name": excluded.name,
                                "enabled": excluded.enabled,
                                "cert_sha256": excluded.cert_sha256,
                                "managed_by": excluded.managed_by,
                                "updated_at": excluded.updated_at,
                                "token_sha256": sa.case(
                                    (kept_token, table.c.token_sha256),
                                    else_=excluded.token_sha256,
                                ),
                            },
                        ),
                        [
                            operator_to_row(operator, now) | {"managed_by": _BY_CONFIG}
                            for operator in operators
                        ],
                    )
                await session.execute(
                    sa.update(table)
                    .where(
                        table.c.managed_by == _BY_CONFIG,
                        table.c.operator_id.not_in(ids),
                        sa.or_(table.c.enabled, table.c.token_sha256.is_not(None)),
                    )
                    .values(enabled=False, token_sha256=None, token_rotated_at=None, updated_at=now)
                )
        return tuple(
            operator.operator_id
            for operator in operators
            if operator.operator_id in rotated
            and operator.token_sha256 is not None
            and operator.token_sha256 != rotated[operator.operator_id]
        )

    async def operator_by_token(self, token_sha256: str) -> OperatorRecord | None:
        return await self._enabled_operator(tables.OPERATORS.c.token_sha256 == token_sha256)

    async def operator_by_cert(self, cert_sha256: str) -> OperatorRecord | None:
        return await self._enabled_operator(tables.OPERATORS.c.cert_sha256 == cert_sha256)

    async def _enabled_operator(self, match: sa.ColumnElement[bool]) -> OperatorRecord | None:
        table = tables.OPERATORS
        with db_engine.wrap_errors("looking up an operator"):
            async with self._read() as session, session.begin():
                query = sa.select(table).where(
                    match, table.c.enabled, sa.not_(table.c.admin_disabled)
                )
                row = (await session.execute(query)).mappings().first()
                return operator_from_row(row) if row is not None else None

    # -- administration ---------------------------------------------------------------------

    async def _append_audit(self, session: AsyncSession, entry: AuditEntry) -> AuditEntry:
        table = tables.ADMIN_AUDIT
        row = _audit_row(entry)
        stored = await session.execute(sa.insert(table).values(**row).returning(table.c.id))
        return replace(entry, detail=json.loads(row["detail"]), id=stored.scalar_one())

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        with db_engine.wrap_errors("recording an admin action"):
            async with self._write() as session, session.begin():
                return await self._append_audit(session, entry)

    async def audit_after(self, after: int, limit: int) -> tuple[AuditEntry, ...]:
        table = tables.ADMIN_AUDIT
        with db_engine.wrap_errors("reading the admin audit log"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(table).where(table.c.id > after).order_by(table.c.id).limit(limit)
                )
                return tuple(audit_from_row(row) for row in rows.mappings())

    async def admin_operators(self) -> tuple[AdminOperator, ...]:
        table = tables.OPERATORS
        with db_engine.wrap_errors("reading the operators"):
            async with self._read() as session, session.begin():
                rows = await session.execute(sa.select(table).order_by(table.c.operator_id))
                return tuple(admin_operator_from_row(row) for row in rows.mappings())

    async def _admin_operator(self, session: AsyncSession, operator_id: str) -> sa.RowMapping:
        table = tables.OPERATORS
        query = sa.select(table).where(table.c.operator_id == operator_id).with_for_update()
        row = (await session.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"no operator {operator_id[:64]!r}")
        return row

    async def _credential_taken(
        self, session: AsyncSession, operator_id: str, token: str | None, cert: str | None
    ) -> None:
        table = tables.OPERATORS
        clauses = [
            column == value
            for column, value in ((table.c.token_sha256, token), (table.c.cert_sha256, cert))
            if value is not None
        ]
        if not clauses:
            return
        query = sa.select(table.c.operator_id).where(
            sa.or_(*clauses), table.c.operator_id != operator_id
        )
        if (await session.execute(query)).first() is not None:
            raise IllegalTransition("that credential belongs to another operator")

    async def add_operator(self, operator: OperatorRecord, audit: AuditEntry) -> AdminOperator:
        table = tables.OPERATORS
        at = audit.at
        with db_engine.wrap_errors("adding an operator", on_conflict=IllegalTransition):
            async with self._write() as session, session.begin():
                known = await session.execute(
                    sa.select(table.c.operator_id).where(
                        table.c.operator_id == operator.operator_id
                    )
                )
                if known.first() is not None:
                    raise IllegalTransition(f"operator {operator.operator_id!r} exists already")
                await self._credential_taken(
                    session, operator.operator_id, operator.token_sha256, operator.cert_sha256
                )
                await session.execute(
                    sa.insert(table).values(
                        operator_to_row(replace(operator, enabled=True), at)
                        | {
                            "managed_by": _BY_ADMIN,
                            "admin_disabled": False,
                            "token_rotated_at": at if operator.token_sha256 else None,
                        }
                    )
                )
                await self._append_audit(session, audit)
                return admin_operator_from_row(
                    await self._admin_operator(session, operator.operator_id)
                )

    async def set_operator_disabled(
        self, operator_id: str, disabled: bool, audit: AuditEntry
    ) -> AdminOperator:
        table = tables.OPERATORS
        with db_engine.wrap_errors("disabling or enabling an operator"):
            async with self._write() as session, session.begin():
                row = await self._admin_operator(session, operator_id)
                if not disabled and not row["enabled"]:
                    raise IllegalTransition(
                        f"operator {operator_id!r} is disabled in the configuration file "
                        "(or no longer in it); enable it there"
                    )
                await session.execute(
                    sa.update(table)
                    .where(table.c.operator_id == operator_id)
                    .values(admin_disabled=disabled, updated_at=audit.at)
                )
                await self._append_audit(session, audit)
                return admin_operator_from_row(await self._admin_operator(session, operator_id))

    async def rotate_operator_token(
        self, operator_id: str, token_sha256: str, audit: AuditEntry
    ) -> AdminOperator:
        table = tables.OPERATORS
        with db_engine.wrap_errors("rotating an operator's token", on_conflict=IllegalTransition):
            async with self._write() as session, session.begin():
                await self._admin_operator(session, operator_id)
                await self._credential_taken(session, operator_id, token_sha256, None)
                await session.execute(
                    sa.update(table)
                    .where(table.c.operator_id == operator_id)
                    .values(
                        token_sha256=token_sha256, token_rotated_at=audit.at, updated_at=audit.at
                    )
                )
                await self._append_audit(session, audit)
                return admin_operator_from_row(await self._admin_operator(session, operator_id))

    async def search_items(self, search: ItemSearch) -> tuple[StoredItem, ...]:
        query = _select_items()
        if search.operator_id is not None:
            query = query.where(_ITEMS.c.operator_id == search.operator_id)
        if search.state is not None:
            query = query.where(_ITEMS.c.state == search.state.value)
        if search.decision is not None:
            query = query.where(_ITEMS.c.decision == search.decision.value)
        if search.received_from is not None:
            query = query.where(_ITEMS.c.received_at >= search.received_from)
        if search.received_to is not None:
            query = query.where(_ITEMS.c.received_at < search.received_to)
        if search.after is not None:
            at, reference = search.after
            query = query.where(
                sa.or_(
                    _ITEMS.c.received_at < at,
                    sa.and_(_ITEMS.c.received_at == at, _ITEMS.c.reference < reference),
                )
            )
        query = query.order_by(_ITEMS.c.received_at.desc(), _ITEMS.c.reference.desc()).limit(
            max(search.limit, 0)
        )
        with db_engine.wrap_errors("searching items"):
            async with self._read() as session, session.begin():
                rows = await session.execute(query)
                return tuple(item_from_row(row) for row in rows.mappings())

    # -- the return path: Customs decisions and notices -------------------------------------

    async def decision_targets(self, references: Sequence[str]) -> dict[str, DecisionTarget]:
        with db_engine.wrap_errors("reading the items of a Customs response"):
            async with self._read() as session, session.begin():
                return await self._decision_targets(session, references)

    async def _decision_targets(
        self, session: AsyncSession, references: Sequence[str], *, for_update: bool = False
    ) -> dict[str, DecisionTarget]:
        ordered = sorted(set(references))
        found: dict[str, DecisionTarget] = {}
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            query = _select_items().where(
                _ITEMS.c.reference.in_(ordered[start : start + _LOOKUP_CHUNK])
            )
            if for_update:  # PostgreSQL, in reference order; SQLite holds the write lock
                query = query.order_by(_ITEMS.c.reference).with_for_update(of=_ITEMS)
            for row in (await session.execute(query)).mappings():
                found[row["reference"]] = DecisionTarget(
                    item_from_row(row), row["referral_reference"]
                )
        return found

    async def apply_response(
        self, response: ReceivedResponse, decisions: Sequence[DecisionToApply]
    ) -> AppliedResponse:
        """Record the response and apply its decisions (see the port).

        On PostgreSQL the transaction first takes a transaction-level advisory lock, so
        notices are written by one transaction at a time: sequences then become visible in
        increasing order, and a feed reader at cursor N never misses a notice that commits
        later with a sequence below N.
        """
        responses = tables.CUSTOMS_RESPONSES
        with db_engine.wrap_errors("applying a Customs response"):
            async with self._write() as session, session.begin():
                if self._dialect == "postgresql":
                    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_NOTICES_LOCK)))
                inserted = await session.execute(
                    self._insert(responses)
                    .values(
                        destination=response.destination,
                        response_id=response.response_id,
                        issued_at=response.issued_at,
                        received_at=response.received_at,
                        decision_count=response.decision_count,
                        applied_count=0,
                        signed_xml=response.signed_xml,
                    )
                    .on_conflict_do_nothing(index_elements=["destination", "response_id"])
                    .returning(responses.c.id)
                )
                response_row = inserted.scalar()
                if response_row is None:
                    raise _replayed(response)
                targets = await self._decision_targets(
                    session, [d.notice.item_reference for d in decisions], for_update=True
                )
                judged = _judge(response, decisions, targets)
                if judged.items:
                    await session.execute(
                        sa.update(_ITEMS)
                        .where(_ITEMS.c.reference == sa.bindparam("b_reference"))
                        .values(
                            state=sa.bindparam("b_state"),
                            decision=sa.bindparam("b_decision"),
                            referral_reference=sa.bindparam("b_referral"),
                            updated_at=sa.bindparam("b_at"),
                        ),
                        judged.items,
                    )
                await _bulk_insert(session, _EVENTS, judged.events)
                await _bulk_insert(session, tables.NOTICES, judged.notices)
                await self._close_forward_jobs(session, judged.close_jobs, response.received_at)
                await session.execute(
                    sa.update(responses)
                    .where(responses.c.id == response_row)
                    .values(applied_count=len(judged.notices))
                )
                sequences = await self._sequences(session, [n.notice_id for n in judged.applied])
                if judged.applied:
                    await self._notify(session, "notices")
                return AppliedResponse(
                    applied=tuple(
                        replace(notice, sequence=sequences[notice.notice_id])
                        for notice in judged.applied
                    ),
                    repeated=tuple(judged.repeated),
                    problems=tuple(judged.problems),
                )

    async def _close_forward_jobs(
        self, session: AsyncSession, references: Sequence[str], at: datetime
    ) -> None:
        """Customs decided: the items' open forward and answer jobs are done (a claim in
        flight then completes nothing, and a dead one leaves the dead letters)."""
        for start in range(0, len(references), _LOOKUP_CHUNK):
            await session.execute(
                sa.update(_OUTBOX)
                .where(
                    _OUTBOX.c.reference.in_(references[start : start + _LOOKUP_CHUNK]),
                    _OUTBOX.c.kind.in_(_ITEM_JOBS),
                    _OUTBOX.c.status.in_((_PENDING, _CLAIMED, _DEAD)),
                )
                .values(status=_DONE, lease_until=None, last_error=f"decided at {at.isoformat()}")
            )

    async def _sequences(self, session: AsyncSession, notice_ids: Sequence[str]) -> dict[str, int]:
        notices = tables.NOTICES
        found: dict[str, int] = {}
        for start in range(0, len(notice_ids), _LOOKUP_CHUNK):
            rows = await session.execute(
                sa.select(notices.c.notice_id, notices.c.sequence).where(
                    notices.c.notice_id.in_(notice_ids[start : start + _LOOKUP_CHUNK])
                )
            )
            found.update({row.notice_id: row.sequence for row in rows})
        return found

    async def notices_after(
        self, operator_id: str, after: int, limit: int
    ) -> tuple[StoredNotice, ...]:
        notices = tables.NOTICES
        with db_engine.wrap_errors("reading the notices feed"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(notices)
                    .where(notices.c.operator_id == operator_id, notices.c.sequence > after)
                    .order_by(notices.c.sequence)
                    .limit(max(limit, 0))
                )
                return tuple(notice_from_row(row) for row in rows.mappings())

    async def item_notices(self, reference: str) -> tuple[StoredNotice, ...]:
        notices = tables.NOTICES
        with db_engine.wrap_errors("reading an item's notices"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(notices)
                    .where(notices.c.reference == reference)
                    .order_by(notices.c.sequence)
                )
                return tuple(notice_from_row(row) for row in rows.mappings())

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
        """Claim due notices of ``operators`` for ``owner`` (see the port).

        Only the head of each item's chain of undelivered notices is due, so an item's
        notices go out in sequence order; heads go by their item's most urgent undelivered
        notice, then by sequence. PostgreSQL skips rows other claimers hold locked (and a
        head locked by another claimer keeps its followers back as undelivered); SQLite runs
        under BEGIN IMMEDIATE, one writer at a time.
        """
        wanted = sorted(set(operators))
        if not wanted or limit <= 0:
            return ()
        notices = tables.NOTICES
        with db_engine.wrap_errors("claiming notices"):
            async with self._write() as session, session.begin():
                rows = (await session.execute(_due_notices(wanted, limit, now))).all()
                if not rows:
                    return ()
                order = [row.sequence for row in rows]
                taken_over = {row.sequence: row.status == _CLAIMED for row in rows}
                await session.execute(
                    sa.update(notices)
                    .where(notices.c.sequence.in_(order))
                    .values(
                        status=_CLAIMED, owner=owner, lease_until=now + timedelta(seconds=lease_s)
                    )
                )
                claimed = await session.execute(
                    sa.select(notices).where(notices.c.sequence.in_(order))
                )
                by_sequence = {row["sequence"]: notice_from_row(row) for row in claimed.mappings()}
                return tuple(
                    NoticeClaim(
                        notice=by_sequence[sequence].notice,
                        signed_xml=by_sequence[sequence].signed_xml,
                        attempts=by_sequence[sequence].attempts,
                        taken_over=taken_over[sequence],
                    )
                    for sequence in order
                )

    async def record_notice_delivered(
        self, claims: Sequence[NoticeClaim], owner: str, at: datetime
    ) -> int:
        """Deliver ``owner``'s notices; their items move DECIDED -> NOTIFIED when the notice
        is the item's latest (a later decision waits for its own notice)."""
        notices = tables.NOTICES
        with db_engine.wrap_errors("recording delivered notices"):
            async with self._write() as session, session.begin():
                taken = await self._update_owned_notices(
                    session,
                    [claim.sequence for claim in claims],
                    owner,
                    {
                        "status": "delivered",
                        "delivered_at": at,
                        "lease_until": None,
                        "attempts": notices.c.attempts + 1,
                    },
                )
                if taken:
                    await self._notified(session, taken, at)
                return len(taken)

    async def _notified(
        self, session: AsyncSession, delivered: Sequence[tuple[int, str, str]], at: datetime
    ) -> None:
        """Move the items still DECIDED whose latest notice was just delivered to NOTIFIED."""
        notices = tables.NOTICES
        references = sorted({reference for _, reference, _ in delivered})
        latest: dict[str, int] = {}
        items: dict[str, StoredItem] = {}
        for start in range(0, len(references), _LOOKUP_CHUNK):
            chunk = references[start : start + _LOOKUP_CHUNK]
            rows = await session.execute(
                _select_items()
                .where(_ITEMS.c.reference.in_(chunk))
                .order_by(_ITEMS.c.reference)
                .with_for_update(of=_ITEMS)  # PostgreSQL; SQLite holds the write lock
            )
            items.update({row["reference"]: item_from_row(row) for row in rows.mappings()})
            newest = await session.execute(
                sa.select(notices.c.reference, sa.func.max(notices.c.sequence).label("newest"))
                .where(notices.c.reference.in_(chunk))
                .group_by(notices.c.reference)
            )
            latest.update({row.reference: row.newest for row in newest})
        moved: list[str] = []
        events: list[dict[str, Any]] = []
        for sequence, reference, notice_id in delivered:
            item = items.get(reference)
            if item is None or item.state is not ItemState.DECIDED:
                continue
            if latest.get(reference) != sequence:
                continue
            notified, event = lifecycle.notified(
                item, "connector", at, f"notice {notice_id} delivered to the webhook"
            )
            items[reference] = notified
            moved.append(reference)
            events.append(event_to_row(event))
        await self._set_state(session, moved, ItemState.NOTIFIED, at)
        await _bulk_insert(session, _EVENTS, events)

    async def record_notice_failure(
        self,
        claims: Sequence[NoticeClaim],
        owner: str,
        error: str,
        decision: RetryDecision,
        at: datetime,
    ) -> int:
        """Count a failed attempt of ``owner``'s notices: pending again later, or dead."""
        last_error = error if not decision.dead else f"{error}; {decision.reason}"
        values = _failure_values(last_error, decision, tables.NOTICES)
        with db_engine.wrap_errors("recording a notice delivery failure"):
            async with self._write() as session, session.begin():
                taken = await self._update_owned_notices(
                    session, [claim.sequence for claim in claims], owner, values
                )
                return len(taken)

    async def extend_notice_leases(
        self, sequences: Sequence[int], owner: str, until: datetime, now: datetime
    ) -> int:
        with db_engine.wrap_errors("renewing notice leases"):
            async with self._write() as session, session.begin():
                taken = await self._update_owned_notices(
                    session, list(sequences), owner, {"lease_until": until}
                )
                return len(taken)

    async def _update_owned_notices(
        self, session: AsyncSession, sequences: Sequence[int], owner: str, values: dict[str, Any]
    ) -> list[tuple[int, str, str]]:
        """Update the notices ``owner`` still holds; (sequence, reference, notice id) of each.

        ``AND owner = :me``: a replica whose lease was taken over changes nothing.
        """
        notices = tables.NOTICES
        taken: list[tuple[int, str, str]] = []
        for start in range(0, len(sequences), _LOOKUP_CHUNK):
            rows = await session.execute(
                sa.update(notices)
                .where(
                    notices.c.sequence.in_(sequences[start : start + _LOOKUP_CHUNK]),
                    notices.c.owner == owner,
                    notices.c.status == _CLAIMED,
                )
                .values(values)
                .returning(notices.c.sequence, notices.c.reference, notices.c.notice_id)
            )
            taken.extend((row.sequence, row.reference, row.notice_id) for row in rows)
        return taken

    async def dead_notices(self, limit: int = 1000) -> tuple[StoredNotice, ...]:
        notices = tables.NOTICES
        with db_engine.wrap_errors("reading the dead notices"):
            async with self._read() as session, session.begin():
                rows = await session.execute(
                    sa.select(notices)
                    .where(notices.c.status == _DEAD)
                    .order_by(notices.c.sequence)
                    .limit(max(limit, 0))
                )
                return tuple(notice_from_row(row) for row in rows.mappings())


def _due_notices(operators: Sequence[str], limit: int, now: datetime) -> sa.Select[Any]:
    """The sequence and status of the due heads of ``operators``' notice chains, in claim
    order, locked (PostgreSQL: rows other claimers hold are skipped)."""
    notices = tables.NOTICES
    undelivered = (_PENDING, _CLAIMED)
    earlier = notices.alias("earlier")
    chain = notices.alias("chain")
    blocked = sa.exists().where(
        earlier.c.reference == notices.c.reference,
        earlier.c.sequence < notices.c.sequence,
        earlier.c.status.in_(undelivered),
    )
    urgency = (
        sa.select(sa.func.min(chain.c.priority))
        .where(chain.c.reference == notices.c.reference, chain.c.status.in_(undelivered))
        .scalar_subquery()
    )
    due = sa.or_(
        sa.and_(notices.c.status == _PENDING, notices.c.next_attempt_at <= now),
        sa.and_(notices.c.status == _CLAIMED, notices.c.lease_until < now),
    )
    return (
        sa.select(notices.c.sequence, notices.c.status)
        .where(notices.c.operator_id.in_(operators), due, ~blocked)
        .order_by(urgency, notices.c.sequence)
        .limit(limit)
        .with_for_update(of=notices, skip_locked=True)
    )


#: The PostgreSQL advisory lock key that serialises notice writers ("EADNOTIC").
_NOTICES_LOCK = 0x4541444E4F544943


def _known_answer(row: sa.RowMapping, received: ReceivedAnswer) -> RecordedAnswer:
    """The first result of an answer stored before, or IllegalTransition if it differs."""
    if row["digest"] != received.digest:
        raise IllegalTransition(
            f"answer {row['answer_id']} was received before with other content; an answer "
            "id names one answer",
            answer_id=row["answer_id"],
        )
    return RecordedAnswer(
        answer_id=row["answer_id"],
        operator_id=row["operator_id"],
        item_id=row["item_id"],
        reference=row["reference"],
        referral_reference=row["referral_reference"],
        kind=CustomsDecision(row["kind"]),
        received_at=row["received_at"],
        duplicate=True,
    )


def _replayed(response: ReceivedResponse) -> ResponseReplayed:
    return ResponseReplayed(
        f"response {response.response_id} from {response.destination} was received before; "
        "nothing was applied",
        destination=response.destination,
        response_id=response.response_id,
    )


@dataclass
class _Judged:
    """The writes of one response's decisions, as rows."""

    items: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    close_jobs: list[str] = field(default_factory=list)
    applied: list[ItemNotice] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    problems: list[DecisionProblem] = field(default_factory=list)


def _judge(
    response: ReceivedResponse,
    decisions: Sequence[DecisionToApply],
    targets: dict[str, DecisionTarget],
) -> _Judged:
    """Judge each decision on its item as locked now (:func:`lifecycle.decided`)."""
    judged = _Judged()
    actor = f"customs:{response.destination}"
    for decision in sorted(decisions, key=lambda d: d.index):
        notice = decision.notice
        reference = notice.item_reference
        target = targets.get(reference)
        if target is None:
            judged.problems.append(
                DecisionProblem(
                    decision.index,
                    reference,
                    notice.item_id,
                    core_decisions.ITEM_UNKNOWN,
                    f"no item has the reference {reference}",
                )
            )
            continue
        try:
            outcome = lifecycle.decided(
                target.item,
                notice.decision,
                actor,
                response.received_at,
                referral_reference=notice.referral_reference,
                pending_referral=target.referral_reference,
                detail=_decision_detail(response, notice),
            )
        except IllegalTransition as error:
            judged.problems.append(
                DecisionProblem(
                    decision.index, reference, notice.item_id, error.code, error.message
                )
            )
            continue
        if outcome.event is None:
            judged.repeated.append(reference)
            continue
        targets[reference] = DecisionTarget(outcome.item, notice.referral_reference)
        judged.items.append(
            {
                "b_reference": reference,
                "b_state": outcome.item.state.value,
                "b_decision": notice.decision.value,
                "b_referral": notice.referral_reference,
                "b_at": response.received_at,
            }
        )
        judged.events.append(event_to_row(outcome.event))
        judged.notices.append(_notice_row(response, decision, reference))
        if target.item.state in (ItemState.FORWARDING, ItemState.DEAD):
            judged.close_jobs.append(reference)
        judged.applied.append(notice)
    return judged


def _decision_detail(response: ReceivedResponse, notice: ItemNotice) -> str:
    """The decision event's detail: the code, its referral, and the response it came in."""
    code = " ".join(filter(None, (notice.decision.value, notice.referral_reference)))
    return f"{code} (response {response.response_id})"
