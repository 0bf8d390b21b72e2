"""Administration: who manages each operator, the admin audit log, the item search indexes.

Operators gain ``managed_by`` (existing rows came from the configuration), ``admin_disabled``
and ``token_rotated_at``; ``admin_audit`` is append-only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ITEM_INDEXES = (
    ("ix_items_received", ["received_at", "reference"]),
    ("ix_items_operator_received", ["operator_id", "received_at", "reference"]),
    ("ix_items_state_received", ["state", "received_at", "reference"]),
)


def upgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.add_column(
            sa.Column("managed_by", sa.String(), nullable=False, server_default="config")
        )
        batch.add_column(
            sa.Column("admin_disabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("token_rotated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "admin_audit",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, columns in _ITEM_INDEXES:
        op.create_index(name, "items", columns)


def downgrade() -> None:
    for name, _ in reversed(_ITEM_INDEXES):
        op.drop_index(name, table_name="items")
    op.drop_table("admin_audit")
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("token_rotated_at")
        batch.drop_column("admin_disabled")
        batch.drop_column("managed_by")
