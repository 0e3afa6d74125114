"""A rejected callback keeps why it was rejected, and rejected callbacks are cheap to count.

The reason names the field and the kind of problem, never the value. The partial index holds
only rejected rows (rare), so the console, ``batch-status`` and the metrics can count them
without reading the whole inbox.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_inbound_events_rejected"
WHERE = sa.text("state = 'rejected'")


def upgrade() -> None:
    op.add_column("inbound_events", sa.Column("reason", sa.String(length=200), nullable=True))
    op.create_index(
        INDEX, "inbound_events", ["settled_at"], postgresql_where=WHERE, sqlite_where=WHERE
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="inbound_events")
    with op.batch_alter_table("inbound_events") as batch:
        batch.drop_column("reason")
