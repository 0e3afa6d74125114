"""A sealed column for the reasons staff give, moved out of interaction_events.detail.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.crypto import keyring
from models.sealing import SealedColumn, seal_plaintext_rows

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVE = {
    "postgresql": (
        "UPDATE interaction_events SET reason = detail->>'reason', detail = detail - 'reason' "
        "WHERE kind = 'staff_action' AND detail ? 'reason'"
    ),
    "sqlite": (
        "UPDATE interaction_events SET reason = json_extract(detail, '$.reason'), "
        "detail = json_remove(detail, '$.reason') "
        "WHERE kind = 'staff_action' AND json_extract(detail, '$.reason') IS NOT NULL"
    ),
}

# Named here, not read from the live list, which later revisions grow.
REASON = SealedColumn("interaction_events", "id", "reason", "interaction_events.reason")


def upgrade() -> None:
    op.add_column("interaction_events", sa.Column("reason", sa.Text(), nullable=True))
    bind = op.get_bind()
    # Staff reasons recorded before this revision sit in the JSON detail in clear: move, then
    # seal. Providers' failure reasons stay in the detail: they are redacted by construction.
    bind.execute(sa.text(MOVE[bind.dialect.name]))
    seal_plaintext_rows(bind, keyring(), [REASON])


def downgrade() -> None:
    raise NotImplementedError("sealed data is not unsealed by a downgrade")
