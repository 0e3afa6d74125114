"""Retention: archive manifests, legal holds, and a BRIN index on interactions.created_at.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ARCHIVE_STATES = ("archived", "restored", "purged")
ARCHIVE_STATE = sa.Enum(*ARCHIVE_STATES, name="archive_state").with_variant(
    postgresql.ENUM(*ARCHIVE_STATES, name="archive_state", create_type=False), "postgresql"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        postgresql.ENUM(*ARCHIVE_STATES, name="archive_state").create(bind, checkfirst=True)
    op.create_table(
        "archive_manifests",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.Column("store_url", sa.String(length=1024), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("state", ARCHIVE_STATE, nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("first_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("byte_size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.String(length=32), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("customer_filter", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_manifests")),
        sa.UniqueConstraint("object_key", name=op.f("uq_archive_manifests_object_key")),
    )
    op.create_index(
        "ix_archive_manifests_month_state", "archive_manifests", ["month", "state"], unique=False
    )
    op.create_table(
        "archive_legal_holds",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("month", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=100), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(length=100), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(customer_id IS NULL) <> (month IS NULL)",
            name=op.f("ck_archive_legal_holds_one_scope"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_legal_holds")),
    )
    if bind.dialect.name != "postgresql":
        op.create_index("ix_interactions_created_at_brin", "interactions", ["created_at"])
        return
    # Built concurrently, so a live ledger keeps taking writes while the index is made.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_interactions_created_at_brin",
            "interactions",
            ["created_at"],
            unique=False,
            postgresql_using="brin",
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index(
        "ix_interactions_created_at_brin", table_name="interactions", postgresql_using="brin"
    )
    op.drop_table("archive_legal_holds")
    op.drop_index("ix_archive_manifests_month_state", table_name="archive_manifests")
    op.drop_table("archive_manifests")
    sa.Enum(name="archive_state").drop(op.get_bind(), checkfirst=True)
