"""Batches an operator steers: a state (sending, paused, cancelled), a start time, a history.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATE = sa.Enum("sending", "paused", "cancelled", name="batch_state")


def upgrade() -> None:
    STATE.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("state", STATE, nullable=False, server_default="sending"))
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "batch_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("batch_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_actions_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_actions")),
    )
    op.create_index("ix_batch_actions_batch", "batch_actions", ["batch_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_batch_actions_batch", table_name="batch_actions")
    op.drop_table("batch_actions")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("not_before")
        batch.drop_column("state")
    STATE.drop(op.get_bind(), checkfirst=True)
