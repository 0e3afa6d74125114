"""The interactions ledger: interactions, their events, batches and the contact directory.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ENUMS = {
    "channel_type": ("email", "sms", "phone", "system"),
    "interaction_status": ("pending", "sent", "delivered", "opened", "failed"),
    "event_kind": (
        "attempt_started",
        "attempt_released",
        "status_changed",
        "provider_event",
        "staff_action",
    ),
}


def _enum(name: str) -> sa.types.TypeEngine[str]:
    """A column type for one enum; on PostgreSQL the type is created once, up front."""
    values = ENUMS[name]
    return sa.Enum(*values, name=name).with_variant(
        postgresql.ENUM(*values, name=name, create_type=False), "postgresql"
    )


CHANNEL = _enum("channel_type")
STATUS = _enum("interaction_status")
EVENT_KIND = _enum("event_kind")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, values in ENUMS.items():
            postgresql.ENUM(*values, name=name).create(bind, checkfirst=True)
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("channel", CHANNEL, nullable=False),
        sa.Column("template_key", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("enqueued", sa.Integer(), nullable=False),
        sa.Column("already_sent", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_table(
        "contacts",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_contacts")),
    )
    op.create_table(
        "interactions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("interaction_uuid", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("channel", CHANNEL, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("body_content", sa.Text(), nullable=True),
        sa.Column("notify_reference", sa.String(length=255), nullable=True),
        sa.Column("provider_reference", sa.String(length=255), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("meta_data", JSON_DOC, nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("template_key", sa.String(length=100), nullable=True),
        sa.Column("batch_id", sa.String(length=100), nullable=True),
        sa.Column("author", sa.String(length=100), nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_interactions_idempotency_key")),
        sa.UniqueConstraint("interaction_uuid", name=op.f("uq_interactions_interaction_uuid")),
    )
    op.create_index(
        "ix_interactions_batch_status", "interactions", ["batch_id", "status"], unique=False
    )
    op.create_index(
        "ix_interactions_pending_claims",
        "interactions",
        ["claim_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_interactions_provider_reference", "interactions", ["provider_reference"], unique=False
    )
    op.create_index(
        "ix_interactions_timeline",
        "interactions",
        ["customer_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "interaction_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("interaction_id", BIG_ID, nullable=True),
        sa.Column("kind", EVENT_KIND, nullable=False),
        sa.Column("from_status", STATUS, nullable=True),
        sa.Column("to_status", STATUS, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("provider_event_id", sa.String(length=255), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_interaction_events_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction_events")),
        sa.UniqueConstraint(
            "provider", "provider_event_id", name="uq_interaction_events_provider_event"
        ),
    )
    op.create_index(
        "ix_interaction_events_interaction",
        "interaction_events",
        ["interaction_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_interaction_events_orphans",
        "interaction_events",
        ["reference"],
        unique=False,
        postgresql_where=sa.text("interaction_id IS NULL"),
        sqlite_where=sa.text("interaction_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_interaction_events_orphans",
        table_name="interaction_events",
        postgresql_where=sa.text("interaction_id IS NULL"),
        sqlite_where=sa.text("interaction_id IS NULL"),
    )
    op.drop_index("ix_interaction_events_interaction", table_name="interaction_events")
    op.drop_table("interaction_events")
    op.drop_index("ix_interactions_timeline", table_name="interactions")
    op.drop_index("ix_interactions_provider_reference", table_name="interactions")
    op.drop_index(
        "ix_interactions_pending_claims",
        table_name="interactions",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_interactions_batch_status", table_name="interactions")
    op.drop_table("interactions")
    op.drop_table("contacts")
    op.drop_table("batches")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in ENUMS:
            postgresql.ENUM(name=name).drop(bind, checkfirst=True)
