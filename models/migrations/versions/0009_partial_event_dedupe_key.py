"""The receipts' dedupe key indexes only the events that carry a provider event id.

The unique constraint on (provider, provider_event_id) indexed every event, though the
dispatch path's own events (about two in three) have no event id: 44 bytes per event for
nothing. A partial unique index enforces exactly the same rule, since NULLs never collided,
at about a third of the size.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_interaction_events_provider_event"
COLUMNS = ["provider", "provider_event_id"]
WHERE = sa.text("provider_event_id IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("interaction_events") as batch:
            batch.drop_constraint(NAME, type_="unique")
        op.create_index(NAME, "interaction_events", COLUMNS, unique=True, sqlite_where=WHERE)
        return
    # The new index is built beside the old constraint, so the rule holds at every moment.
    with op.get_context().autocommit_block():
        op.create_index(
            f"{NAME}_partial",
            "interaction_events",
            COLUMNS,
            unique=True,
            postgresql_where=WHERE,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
    op.drop_constraint(NAME, "interaction_events", type_="unique")
    op.execute(f"ALTER INDEX {NAME}_partial RENAME TO {NAME}")


def downgrade() -> None:
    op.drop_index(NAME, table_name="interaction_events")
    op.create_unique_constraint(NAME, "interaction_events", COLUMNS)
