"""The initial schema: operators, batches, items and their events, outbox, pulls, schedules.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from tables.py: a migration is frozen history.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("operator_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("token_sha256", sa.String(), nullable=True),
        sa.Column("cert_sha256", sa.String(), nullable=True),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("operator_id"),
        sa.UniqueConstraint("token_sha256", name="uq_operators_token_sha256"),
        sa.UniqueConstraint("cert_sha256", name="uq_operators_cert_sha256"),
    )
    op.create_table(
        "batches",
        sa.Column("operator_id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        _at("received_at"),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("payload_digest", sa.String(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("accepted_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("rejected_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "batch_id"),
    )
    op.create_table(
        "items",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("operator_id", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("destination_country", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("item_xml", sa.LargeBinary(), nullable=False),
        sa.Column("decision", sa.String(), nullable=True),
        _at("received_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", name="uq_items_reference"),
        sa.UniqueConstraint("operator_id", "item_id", name="uq_items_operator_item"),
    )
    op.create_index("ix_items_item_id", "items", ["item_id"])
    op.create_table(
        "item_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        _at("at"),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(
            ["reference"], ["items.reference"], name="fk_item_events_reference"
        ),
    )
    op.create_index("ix_item_events_reference", "item_events", ["reference"])
    op.create_table(
        "outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("next_attempt_at"),
        sa.Column("owner", sa.String(), nullable=True),
        _at("lease_until", nullable=True),
        _at("heartbeat_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["reference"], ["items.reference"], name="fk_outbox_reference"),
    )
    op.create_index("ix_outbox_claim", "outbox", ["status", "next_attempt_at", "id"])
    op.create_index("ix_outbox_reference", "outbox", ["reference"])
    op.create_table(
        "pull_cursors",
        sa.Column("operator_id", sa.String(), nullable=False),
        sa.Column("cursor", sa.String(), nullable=True),
        _at("updated_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _at("last_error_at", nullable=True),
        sa.PrimaryKeyConstraint("operator_id"),
    )
    op.create_table(
        "schedules",
        sa.Column("schedule_id", sa.String(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id"),
    )
    op.create_table(
        "schedule_ticks",
        sa.Column("schedule_id", sa.String(), nullable=False),
        _at("fire_time"),
        sa.Column("owner", sa.String(), nullable=False),
        _at("claimed_at"),
        sa.Column("result", sa.Text(), nullable=True),
        _at("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", "fire_time"),
    )


def downgrade() -> None:
    for table in (
        "schedule_ticks",
        "schedules",
        "pull_cursors",
        "outbox",
        "item_events",
        "items",
        "batches",
        "operators",
    ):
        op.drop_table(table)
