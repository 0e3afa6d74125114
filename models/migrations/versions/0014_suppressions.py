"""A suppression list kept by blind index, and a batch's own reply-to (sender) id.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = ("email", "sms", "phone", "system")
# The PostgreSQL type exists since 0001: it is used here, not created again.
CHANNEL = sa.Enum(*CHANNELS, name="channel_type").with_variant(
    postgresql.ENUM(*CHANNELS, name="channel_type", create_type=False), "postgresql"
)
ACTIVE_WHERE = sa.text("lifted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("channel", CHANNEL, nullable=False),
        sa.Column("recipient_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_interaction_uuid", sa.Uuid(), nullable=True),
        sa.Column("added_by", sa.String(length=100), nullable=True),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=100), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    op.create_index(
        "ix_suppressions_active",
        "suppressions",
        ["recipient_hash", "channel"],
        unique=True,
        postgresql_where=ACTIVE_WHERE,
        sqlite_where=ACTIVE_WHERE,
    )
    op.create_index("ix_suppressions_history", "suppressions", ["recipient_hash", "channel", "id"])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("reply_to_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("reply_to_id")
    op.drop_index("ix_suppressions_history", table_name="suppressions")
    op.drop_index("ix_suppressions_active", table_name="suppressions")
    op.drop_table("suppressions")
