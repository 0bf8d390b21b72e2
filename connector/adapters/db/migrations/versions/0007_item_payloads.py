"""Item payloads: an item's XML moves from ``items`` to ``item_payloads`` (same id).

An item row changes at every lifecycle step (FORWARDING, FORWARDED, DECIDED, NOTIFIED) and its
XML only with an amendment; with the XML inline each step rewrote a row of one to several
kilobytes. The data is copied over, then ``items.item_xml`` is dropped (SQLite drops a column
in place since 3.35, keeping row ids and the foreign keys that point at ``items``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "item_payloads",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("item_xml", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["id"], ["items.id"], name="fk_item_payloads_id"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO item_payloads (id, item_xml) SELECT id, item_xml FROM items")
    op.drop_column("items", "item_xml")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite adds a NOT NULL column only with a default; every row gets its XML below.
    default = sa.text("x''") if sqlite else None
    op.add_column(
        "items",
        sa.Column("item_xml", sa.LargeBinary(), nullable=sqlite is False, server_default=default),
    )
    op.execute(
        "UPDATE items SET item_xml = "
        "(SELECT item_xml FROM item_payloads WHERE item_payloads.id = items.id)"
    )
    if not sqlite:
        op.alter_column("items", "item_xml", nullable=False)
    op.drop_table("item_payloads")
