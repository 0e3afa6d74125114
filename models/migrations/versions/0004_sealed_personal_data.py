"""Personal data sealed at rest: wider columns for ciphertext, a blind index, existing rows sealed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.crypto import keyring
from models.sealing import SealedColumn, seal_plaintext_rows

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WIDENED = (
    ("interactions", "recipient", sa.String(320)),
    ("contacts", "email", sa.String(320)),
    ("contacts", "phone", sa.String(32)),
)

# The columns sealed as of this revision, named here and never read from the live list: later
# revisions add sealed columns (and seal their own rows) that do not exist yet at this one.
SEALED_HERE = (
    SealedColumn("interactions", "id", "body_content", "interactions.body_content"),
    SealedColumn("interactions", "id", "recipient", "interactions.recipient"),
    SealedColumn("interactions", "id", "meta_data", "interactions.meta_data", is_json=True),
    SealedColumn("contacts", "customer_id", "email", "contacts.email"),
    SealedColumn("contacts", "customer_id", "phone", "contacts.phone"),
    SealedColumn("inbound_events", "id", "body", "inbound_events.body"),
)


def upgrade() -> None:
    for table, column, old in WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.Text(), existing_type=old)
    op.add_column("interactions", sa.Column("recipient_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_interactions_recipient_hash", "interactions", ["recipient_hash"])
    # Rows written before this revision hold personal data in clear: seal them now.
    seal_plaintext_rows(op.get_bind(), keyring(), SEALED_HERE)


def downgrade() -> None:
    raise NotImplementedError("sealed data is not unsealed by a downgrade")
