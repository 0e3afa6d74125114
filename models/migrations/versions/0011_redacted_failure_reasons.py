"""Failure reasons stored before redaction lose the addresses and phone numbers they quote.

A provider's bounce reason can quote the recipient ("550 5.1.1 <address>: Recipient address
rejected"). The column types now redact such text as it is written; this revision cleans what
was written before, in ``interactions.failure_reason`` and in the events' detail. It reads only
rows whose text could hold either (an "@", or seven digits in a row of digits and separators),
a batch at a time, and rewrites a row only where redaction changed it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from models.redaction import redact_personal

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The detail keys holding a provider's free text at this revision, named here, not read from
# the live set, which may grow.
FREE_TEXT_HERE = frozenset({"failure_reason", "reason"})

BATCH = 1000
SUSPECT = "(%(text)s LIKE '%%@%%' OR %(text)s ~ '[0-9][0-9 ().-]{5,}[0-9]')"


def _suspect(column: str, dialect: str) -> str:
    if dialect == "postgresql":
        return SUSPECT % {"text": column}
    return f"({column} LIKE '%@%' OR {column} GLOB '*[0-9][0-9]*[0-9][0-9]*[0-9]*')"


def _clean_failure_reasons(bind: sa.Connection) -> None:
    where = _suspect("failure_reason", bind.dialect.name)
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                f"SELECT id, failure_reason FROM interactions WHERE id > :last AND {where} "  # noqa: S608 - constant SQL
                "ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        for row_id, reason in rows:
            cleaned = redact_personal(reason)
            if cleaned != reason:
                bind.execute(
                    sa.text("UPDATE interactions SET failure_reason = :reason WHERE id = :id"),
                    {"reason": cleaned, "id": row_id},
                )
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def _cleaned(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        key: redact_personal(value) if key in FREE_TEXT_HERE and isinstance(value, str) else value
        for key, value in detail.items()
    }


def _clean_event_details(bind: sa.Connection) -> None:
    events = sa.table("interaction_events", sa.column("id"), sa.column("detail", sa.JSON))
    if bind.dialect.name == "postgresql":
        where = "(detail ? 'failure_reason' OR detail ? 'reason')"
    else:
        where = (
            "(json_extract(detail, '$.failure_reason') IS NOT NULL "
            "OR json_extract(detail, '$.reason') IS NOT NULL)"
        )
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                f"SELECT id FROM interaction_events WHERE id > :last AND {where} "  # noqa: S608 - constant SQL
                "ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        ids = [row[0] for row in rows]
        if ids:
            found = bind.execute(
                sa.select(events.c.id, events.c.detail).where(events.c.id.in_(ids))
            )
            for event_id, detail in found:
                if isinstance(detail, dict) and (cleaned := _cleaned(detail)) != detail:
                    bind.execute(
                        events.update().where(events.c.id == event_id).values(detail=cleaned)
                    )
        if len(rows) < BATCH:
            return
        last = ids[-1]


def upgrade() -> None:
    bind = op.get_bind()
    _clean_failure_reasons(bind)
    _clean_event_details(bind)


def downgrade() -> None:
    """Nothing to undo: what was taken out is not kept anywhere."""
