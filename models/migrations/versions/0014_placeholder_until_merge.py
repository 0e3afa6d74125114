"""A placeholder for revision 0014, which another branch adds; delete this file at the merge.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12
"""

from collections.abc import Sequence

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing: the real 0014 takes this file's place when the branches meet."""


def downgrade() -> None:
    """Nothing to undo."""
