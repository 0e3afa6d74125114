"""What a producer published and nobody has claimed yet, so a message the broker lost is found.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queued_messages",
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("batch_id", sa.String(length=100), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("broker_epoch", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_queued_messages")),
    )
    op.create_index("ix_queued_messages_epoch", "queued_messages", ["broker_epoch"])


def downgrade() -> None:
    op.drop_index("ix_queued_messages_epoch", table_name="queued_messages")
    op.drop_table("queued_messages")
