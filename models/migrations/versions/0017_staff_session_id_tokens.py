"""A provider's id_token kept, sealed, with the console session it signed in.

Sign-out sends it back to the provider as the id_token_hint of RP-initiated logout, so the
provider's session ends too. No existing row has one: sessions opened before this revision
sign out locally only.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("staff_sessions", sa.Column("id_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_sessions") as batch:
        batch.drop_column("id_token")
