"""Two small partial indexes, so poll_unfinished and batch-status stop reading every row.

poll_unfinished looked for SENT rows with no outcome by reading the whole table (a sequential
scan: 0.3 s at a million rows, growing with the table), and batch-status counted a batch's
unknown outcomes by reading each of the batch's rows. Each index holds only the rows its
query wants, so it stays small however large the table grows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_interactions_unfinished", "sent_at", "status = 'sent' AND outcome_unknown_at IS NULL"),
    ("ix_interactions_outcome_unknown", "batch_id", "outcome_unknown_at IS NOT NULL"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, column, where in INDEXES:
            op.create_index(name, "interactions", [column], sqlite_where=sa.text(where))
        return
    # Built concurrently, so a live ledger keeps taking writes while the indexes are made.
    with op.get_context().autocommit_block():
        for name, column, where in INDEXES:
            op.create_index(
                name,
                "interactions",
                [column],
                postgresql_where=sa.text(where),
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.drop_index(name, table_name="interactions")
