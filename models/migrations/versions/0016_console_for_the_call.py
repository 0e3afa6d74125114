"""The console for a call: the directory's blind index, email subjects, disclosures of data.

Schema only: the contacts written before this revision get their blind index from
``interactions keys reindex`` (which ``interactions migrate`` runs after upgrading), in
batches committed one by one, so no lock taken here is held while the directory is hashed.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("contacts", sa.Column("email_hash", sa.String(length=64), nullable=True))
    op.add_column("contacts", sa.Column("phone_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_contacts_email_hash", "contacts", ["email_hash"])
    op.create_index("ix_contacts_phone_hash", "contacts", ["phone_hash"])
    op.add_column("interactions", sa.Column("subject", sa.Text(), nullable=True))
    op.create_table(
        "staff_disclosures",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("page", sa.String(length=32), nullable=False),
        sa.Column("shown", JSON_DOCUMENT, nullable=False),
        sa.Column("interactions", JSON_DOCUMENT, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_disclosures")),
    )
    op.create_index("ix_staff_disclosures_customer", "staff_disclosures", ["customer_id", "at"])
    op.create_index("ix_staff_disclosures_actor", "staff_disclosures", ["actor", "at"])


def downgrade() -> None:
    op.drop_index("ix_staff_disclosures_actor", table_name="staff_disclosures")
    op.drop_index("ix_staff_disclosures_customer", table_name="staff_disclosures")
    op.drop_table("staff_disclosures")
    op.drop_column("interactions", "subject")
    op.drop_index("ix_contacts_phone_hash", table_name="contacts")
    op.drop_index("ix_contacts_email_hash", table_name="contacts")
    op.drop_column("contacts", "email_hash")
    op.drop_column("contacts", "phone_hash")
