"""Failed console sign-ins, counted per user name and per client address to throttle guessing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "staff_sign_in_failures",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sign_in_failures")),
    )
    op.create_index(
        "ix_staff_sign_in_failures_subject", "staff_sign_in_failures", ["subject", "failed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_staff_sign_in_failures_subject", table_name="staff_sign_in_failures")
    op.drop_table("staff_sign_in_failures")
