"""The return path: Customs responses received, the referral of an item's decision, notices.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("referral_reference", sa.String(), nullable=True))
    op.create_table(
        "customs_responses",
        sa.Column("id", _ID, nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("response_id", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_count", sa.Integer(), nullable=False),
        sa.Column("applied_count", sa.Integer(), nullable=False),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "destination", "response_id", name="uq_customs_responses_destination_response"
        ),
    )
    op.create_table(
        "notices",
        sa.Column("sequence", _ID, nullable=False),
        sa.Column("notice_id", sa.String(), nullable=False),
        sa.Column("operator_id", sa.String(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("response_id", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("customs_reference", sa.String(), nullable=True),
        sa.Column("required_action", sa.Text(), nullable=True),
        sa.Column("referral_reference", sa.String(), nullable=True),
        sa.Column("screening_method", sa.String(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sequence"),
        sa.UniqueConstraint("notice_id", name="uq_notices_notice_id"),
        sa.ForeignKeyConstraint(["reference"], ["items.reference"], name="fk_notices_reference"),
    )
    op.create_index("ix_notices_feed", "notices", ["operator_id", "sequence"])
    op.create_index(
        "ix_notices_delivery", "notices", ["status", "next_attempt_at", "priority", "sequence"]
    )
    op.create_index("ix_notices_reference", "notices", ["reference"])


def downgrade() -> None:
    op.drop_index("ix_notices_reference", table_name="notices")
    op.drop_index("ix_notices_delivery", table_name="notices")
    op.drop_index("ix_notices_feed", table_name="notices")
    op.drop_table("notices")
    op.drop_table("customs_responses")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("referral_reference")
