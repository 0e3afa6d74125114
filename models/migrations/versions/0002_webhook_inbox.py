"""The webhook inbox, and a mark for interactions whose outcome never became known.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("received", "applied", "orphan", "rejected", name="inbound_state"),
            nullable=False,
        ),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
        sa.UniqueConstraint("provider", "event_id", name="uq_inbound_events_provider_event"),
    )
    op.create_index(
        "ix_inbound_events_unsettled",
        "inbound_events",
        ["state", "received_at"],
        unique=False,
        postgresql_where=sa.text("state IN ('received', 'orphan')"),
        sqlite_where=sa.text("state IN ('received', 'orphan')"),
    )
    op.add_column(
        "interactions", sa.Column("outcome_unknown_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("interactions", "outcome_unknown_at")
    op.drop_index(
        "ix_inbound_events_unsettled",
        table_name="inbound_events",
        postgresql_where=sa.text("state IN ('received', 'orphan')"),
        sqlite_where=sa.text("state IN ('received', 'orphan')"),
    )
    op.drop_table("inbound_events")
    sa.Enum(name="inbound_state").drop(op.get_bind(), checkfirst=True)
