"""The database tables as SQLModel classes; the only module that imports sqlmodel.

The classes describe the schema (for Alembic and the drift test); the store works with the
:class:`~sqlalchemy.Table` objects exported below and converts rows to domain records, so no
ORM object ever leaves :mod:`connector.adapters.db`.

Every timestamp column is :class:`UtcDateTime`: timezone-aware on the way in and out, stored
as ``timestamptz`` on PostgreSQL and as UTC text on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

__all__ = [
    "ADMIN_AUDIT",
    "BATCHES",
    "CUSTOMS_RESPONSES",
    "DECLARATIONS",
    "ITEMS",
    "ITEM_EVENTS",
    "ITEM_PAYLOADS",
    "METADATA",
    "NOTICES",
    "OPERATORS",
    "OUTBOX",
    "PULL_CURSORS",
    "REFERRAL_ANSWERS",
    "SCHEDULES",
    "SCHEDULE_TICKS",
    "UtcDateTime",
]


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp, normalised to UTC; naive datetimes are refused."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (the store needs aware ones)")
        value = value.astimezone(UTC)
        # SQLite's DateTime drops the offset without converting: hand it UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The converter, remembering its last value: one intake binds the same timestamp to
        thousands of rows (items, events, outbox), so it is converted once, not per row."""
        convert = super().bind_processor(dialect)
        if convert is None:
            return None
        last: tuple[object, object] = (object(), None)

        def process(value: Any) -> Any:
            nonlocal last
            seen, result = last
            if value is seen:
                return result
            result = convert(value)
            last = (value, result)
            return result

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: 64-bit ids on PostgreSQL; on SQLite an INTEGER primary key is the auto-incrementing rowid.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CONFIG_DEFAULT: dict[str, Any] = {"server_default": "config"}
_FALSE_DEFAULT: dict[str, Any] = {"server_default": sa.false()}


class OperatorRow(SQLModel, table=True):
    """A postal operator: declared in the configuration (kept in line with it at startup) or
    added by an administrator; ``enabled`` and ``admin_disabled`` must both allow it."""

    __tablename__ = "operators"
    __table_args__ = (
        sa.UniqueConstraint("token_sha256", name="uq_operators_token_sha256"),
        sa.UniqueConstraint("cert_sha256", name="uq_operators_cert_sha256"),
    )

    operator_id: str = Field(sa_type=sa.String, primary_key=True)
    name: str = Field(sa_type=sa.String, nullable=False)
    enabled: bool = Field(sa_type=sa.Boolean, nullable=False)
    token_sha256: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    cert_sha256: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    updated_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    #: ``config`` (declared in the configuration file) | ``admin`` (added through the admin API)
    managed_by: str = Field(
        default="config", sa_type=sa.String, nullable=False, sa_column_kwargs=_CONFIG_DEFAULT
    )
    #: Disabled by an administrator: the configuration never enables it again.
    admin_disabled: bool = Field(
        default=False, sa_type=sa.Boolean, nullable=False, sa_column_kwargs=_FALSE_DEFAULT
    )
    #: When an administrator last set the token (add or rotate); while set, the configured
    #: token is ignored.
    token_rotated_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class BatchRow(SQLModel, table=True):
    """One received batch, for audit; a re-sent batch id keeps its first row."""

    __tablename__ = "batches"

    operator_id: str = Field(sa_type=sa.String, primary_key=True)
    batch_id: str = Field(sa_type=sa.String, primary_key=True)
    received_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    source: str = Field(sa_type=sa.String, nullable=False)
    payload_digest: str = Field(sa_type=sa.String, nullable=False)
    item_count: int = Field(sa_type=sa.Integer, nullable=False)
    accepted_count: int = Field(sa_type=sa.Integer, nullable=False)
    rejected_count: int = Field(sa_type=sa.Integer, nullable=False)
    #: The batch's item errors as a JSON list of ``ItemError.as_dict()``.
    rejected_json: str = Field(sa_type=sa.Text, nullable=False)


class ItemRow(SQLModel, table=True):
    """The current version of one item; identity is (operator, item id)."""

    __tablename__ = "items"
    __table_args__ = (
        sa.UniqueConstraint("reference", name="uq_items_reference"),
        sa.UniqueConstraint("operator_id", "item_id", name="uq_items_operator_item"),
        sa.Index("ix_items_item_id", "item_id"),
        # The admin item search: newest first, optionally by operator or state.
        sa.Index("ix_items_received", "received_at", "reference"),
        sa.Index("ix_items_operator_received", "operator_id", "received_at", "reference"),
        sa.Index("ix_items_state_received", "state", "received_at", "reference"),
    )

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    reference: str = Field(sa_type=sa.String, nullable=False)
    operator_id: str = Field(sa_type=sa.String, nullable=False)
    item_id: str = Field(sa_type=sa.String, nullable=False)
    version: int = Field(sa_type=sa.Integer, nullable=False)
    state: str = Field(sa_type=sa.String, nullable=False)
    destination_country: str = Field(sa_type=sa.String, nullable=False)
    batch_id: str = Field(sa_type=sa.String, nullable=False)
    digest: str = Field(sa_type=sa.String, nullable=False)
    decision: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    received_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    #: Warnings of the intake checks on this version, as a JSON list (None: no findings).
    findings: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    #: The referral reference of the current decision (what a referral answer must quote).
    referral_reference: str | None = Field(default=None, sa_type=sa.String, nullable=True)


class ItemPayloadRow(SQLModel, table=True):
    """The XML of an item's current version, one row per ``items`` row (same id).

    Apart from the item row because that row changes at every step of the lifecycle and the
    XML only with an amendment: a state change then rewrites a row of a few hundred bytes,
    not one that carries a kilobyte or more of XML.
    """

    __tablename__ = "item_payloads"
    __table_args__ = (sa.ForeignKeyConstraint(["id"], ["items.id"], name="fk_item_payloads_id"),)

    id: int = Field(sa_type=_BIG_ID, primary_key=True, sa_column_kwargs={"autoincrement": False})
    item_xml: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class ItemEventRow(SQLModel, table=True):
    """One state change of one item; rows are only ever appended."""

    __tablename__ = "item_events"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["reference"], ["items.reference"], name="fk_item_events_reference"
        ),
        sa.Index("ix_item_events_reference", "reference"),
    )

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    reference: str = Field(sa_type=sa.String, nullable=False)
    at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    actor: str = Field(sa_type=sa.String, nullable=False)
    from_state: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    to_state: str = Field(sa_type=sa.String, nullable=False)
    detail: str = Field(sa_type=sa.Text, nullable=False)


class OutboxRow(SQLModel, table=True):
    """Work to send to Customs: claimed with a lease, completed by its owner only."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.ForeignKeyConstraint(["reference"], ["items.reference"], name="fk_outbox_reference"),
        # Matches the claim's ORDER BY (tech-notes 15): a mismatch costs 10x.
        sa.Index("ix_outbox_claim", "status", "next_attempt_at", "id"),
        sa.Index("ix_outbox_reference", "reference"),
    )

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    reference: str = Field(sa_type=sa.String, nullable=False)
    #: ``forward`` | ``copy:<agency>`` | ``answer``
    kind: str = Field(sa_type=sa.String, nullable=False)
    #: ``pending`` | ``claimed`` | ``done`` | ``dead``
    status: str = Field(sa_type=sa.String, nullable=False)
    attempts: int = Field(sa_type=sa.Integer, nullable=False)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    owner: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    last_error: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    created_at: datetime = Field(sa_type=UtcDateTime, nullable=False)


class DeclarationRow(SQLModel, table=True):
    """Evidence of one declaration batch sent to Customs: the signed bytes and the receipt."""

    __tablename__ = "declarations"

    declaration_batch_id: str = Field(sa_type=sa.String, primary_key=True)
    destination: str = Field(sa_type=sa.String, nullable=False)
    signed_xml: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    receipt: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    sent_at: datetime = Field(sa_type=UtcDateTime, nullable=False)


class PullCursorRow(SQLModel, table=True):
    """Where the last pull of an operator got to, and how the last failed pull failed."""

    __tablename__ = "pull_cursors"

    operator_id: str = Field(sa_type=sa.String, primary_key=True)
    #: None until the first successful pull (a failed first pull still gets a row).
    cursor: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    updated_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    last_error: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    last_error_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class ScheduleRow(SQLModel, table=True):
    """A pull schedule's shared switch."""

    __tablename__ = "schedules"

    schedule_id: str = Field(sa_type=sa.String, primary_key=True)
    paused: bool = Field(sa_type=sa.Boolean, nullable=False)


class ScheduleTickRow(SQLModel, table=True):
    """One claimed run of a schedule; the primary key lets only one replica claim it."""

    __tablename__ = "schedule_ticks"

    schedule_id: str = Field(sa_type=sa.String, primary_key=True)
    fire_time: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    owner: str = Field(sa_type=sa.String, nullable=False)
    claimed_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    result: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class CustomsResponseRow(SQLModel, table=True):
    """One signed Customs response as received: evidence, and the key that refuses replays."""

    __tablename__ = "customs_responses"
    __table_args__ = (
        sa.UniqueConstraint(
            "destination", "response_id", name="uq_customs_responses_destination_response"
        ),
    )

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    destination: str = Field(sa_type=sa.String, nullable=False)
    response_id: str = Field(sa_type=sa.String, nullable=False)
    issued_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    received_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    decision_count: int = Field(sa_type=sa.Integer, nullable=False)
    applied_count: int = Field(sa_type=sa.Integer, nullable=False)
    signed_xml: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class NoticeRow(SQLModel, table=True):
    """One signed item notice; ``sequence`` is the feed's cursor, the delivery columns are
    the webhook's work queue (claimed with a lease like the outbox)."""

    __tablename__ = "notices"
    __table_args__ = (
        sa.UniqueConstraint("notice_id", name="uq_notices_notice_id"),
        sa.ForeignKeyConstraint(["reference"], ["items.reference"], name="fk_notices_reference"),
        sa.Index("ix_notices_feed", "operator_id", "sequence"),
        sa.Index("ix_notices_delivery", "status", "next_attempt_at", "priority", "sequence"),
        sa.Index("ix_notices_reference", "reference"),
    )

    sequence: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    notice_id: str = Field(sa_type=sa.String, nullable=False)
    operator_id: str = Field(sa_type=sa.String, nullable=False)
    reference: str = Field(sa_type=sa.String, nullable=False)
    item_id: str = Field(sa_type=sa.String, nullable=False)
    destination: str = Field(sa_type=sa.String, nullable=False)
    response_id: str = Field(sa_type=sa.String, nullable=False)
    decision: str = Field(sa_type=sa.String, nullable=False)
    reason: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    customs_reference: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    required_action: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    referral_reference: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    screening_method: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    issued_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    created_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    #: 0 first (DO_NOT_LOAD); :data:`connector.core.notices.PRIORITY`.
    priority: int = Field(sa_type=sa.Integer, nullable=False)
    signed_xml: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    #: ``pending`` | ``claimed`` | ``delivered`` | ``dead`` (webhook delivery)
    status: str = Field(sa_type=sa.String, nullable=False)
    attempts: int = Field(sa_type=sa.Integer, nullable=False)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    owner: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    last_error: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class ReferralAnswerRow(SQLModel, table=True):
    """An operator's answer to a referral, as validated, and how it went on to Customs; the
    unique (operator, answer id) makes a re-sent answer a no-op."""

    __tablename__ = "referral_answers"
    __table_args__ = (
        sa.UniqueConstraint("operator_id", "answer_id", name="uq_referral_answers_operator_answer"),
        sa.UniqueConstraint("outbox_id", name="uq_referral_answers_outbox_id"),
        sa.ForeignKeyConstraint(
            ["reference"], ["items.reference"], name="fk_referral_answers_reference"
        ),
        sa.Index("ix_referral_answers_reference", "reference"),
    )

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    operator_id: str = Field(sa_type=sa.String, nullable=False)
    answer_id: str = Field(sa_type=sa.String, nullable=False)
    reference: str = Field(sa_type=sa.String, nullable=False)
    item_id: str = Field(sa_type=sa.String, nullable=False)
    referral_reference: str = Field(sa_type=sa.String, nullable=False)
    #: ``REQUEST_INFO`` | ``REQUEST_SCREENING``: the referral answered
    kind: str = Field(sa_type=sa.String, nullable=False)
    #: SHA-256 of :attr:`answer_xml`: the same id with another digest is another answer
    digest: str = Field(sa_type=sa.String, nullable=False)
    #: The answer rebuilt from the validated value (unsigned, canonical)
    answer_xml: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    answered_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    received_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    #: The ``answer`` job that forwards it
    outbox_id: int = Field(sa_type=_BIG_ID, nullable=False)
    #: Filled once sent: the destination, the signed answer and Customs' signed receipt
    destination: str | None = Field(default=None, sa_type=sa.String, nullable=True)
    signed_xml: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    receipt: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)


class AdminAuditRow(SQLModel, table=True):
    """One administrator's action that changed something; rows are only ever appended."""

    __tablename__ = "admin_audit"

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    #: ``api`` | ``cli``
    actor: str = Field(sa_type=sa.String, nullable=False)
    #: e.g. ``operator.rotate_token``, ``dead.replay``, ``schedule.pause``
    action: str = Field(sa_type=sa.String, nullable=False)
    #: What it touched: an operator id, an item reference, a schedule or key id
    target: str = Field(sa_type=sa.String, nullable=False)
    #: A JSON object with the particulars, never a secret
    detail: str = Field(sa_type=sa.Text, nullable=False)
    #: The ``X-Request-Id`` of the admin API call (None from the CLI)
    request_id: str | None = Field(default=None, sa_type=sa.String, nullable=True)


METADATA: sa.MetaData = SQLModel.metadata
OPERATORS: sa.Table = METADATA.tables["operators"]
BATCHES: sa.Table = METADATA.tables["batches"]
ITEMS: sa.Table = METADATA.tables["items"]
ITEM_EVENTS: sa.Table = METADATA.tables["item_events"]
ITEM_PAYLOADS: sa.Table = METADATA.tables["item_payloads"]
OUTBOX: sa.Table = METADATA.tables["outbox"]
DECLARATIONS: sa.Table = METADATA.tables["declarations"]
PULL_CURSORS: sa.Table = METADATA.tables["pull_cursors"]
SCHEDULES: sa.Table = METADATA.tables["schedules"]
SCHEDULE_TICKS: sa.Table = METADATA.tables["schedule_ticks"]
CUSTOMS_RESPONSES: sa.Table = METADATA.tables["customs_responses"]
NOTICES: sa.Table = METADATA.tables["notices"]
REFERRAL_ANSWERS: sa.Table = METADATA.tables["referral_answers"]
ADMIN_AUDIT: sa.Table = METADATA.tables["admin_audit"]
