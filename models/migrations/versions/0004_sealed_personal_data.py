"""Personal data sealed at rest: wider columns for ciphertext, a blind index, existing rows sealed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.crypto import keyring
from models.sealing import SEALED_COLUMNS, seal_plaintext_rows

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WIDENED = (
    ("interactions", "recipient", sa.String(320)),
    ("contacts", "email", sa.String(320)),
    ("contacts", "phone", sa.String(32)),
)


def upgrade() -> None:
    for table, column, old in WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.Text(), existing_type=old)
    op.add_column("interactions", sa.Column("recipient_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_interactions_recipient_hash", "interactions", ["recipient_hash"])
    # Rows written before this revision hold personal data in clear: seal them now (the
    # columns that exist at this revision; later ones seal their own).
    existing = [
        spec
        for spec in SEALED_COLUMNS
        if spec.table not in ("interaction_events", "queued_messages")
        and spec.purpose != "interactions.subject"
    ]
    # staff_sessions arrives at 0005, and its sealed id_token at 0017 with nothing to seal.
    existing = [spec for spec in existing if spec.table != "staff_sessions"]
    seal_plaintext_rows(op.get_bind(), keyring(), existing)


def downgrade() -> None:
    raise NotImplementedError("sealed data is not unsealed by a downgrade")
