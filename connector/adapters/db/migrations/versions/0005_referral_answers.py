"""Referral answers: the operator's answer to a referral, kept with its forwarding evidence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "referral_answers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("operator_id", sa.String(), nullable=False),
        sa.Column("answer_id", sa.String(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("referral_reference", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("answer_xml", sa.LargeBinary(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("destination", sa.String(), nullable=True),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=True),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("operator_id", "answer_id", name="uq_referral_answers_operator_answer"),
        sa.UniqueConstraint("outbox_id", name="uq_referral_answers_outbox_id"),
        sa.ForeignKeyConstraint(
            ["reference"], ["items.reference"], name="fk_referral_answers_reference"
        ),
    )
    op.create_index("ix_referral_answers_reference", "referral_answers", ["reference"])


def downgrade() -> None:
    op.drop_index("ix_referral_answers_reference", table_name="referral_answers")
    op.drop_table("referral_answers")
