"""Staff disclosures past the hot retention: deleted once the messages they name have left.

A disclosure records that a member of staff was shown a customer's data, and which messages
held it; it is kept while those messages are in the database. A disclosure made before the hot
retention's cutoff names only messages created before that cutoff, which the janitor has moved
to the archive, so it goes. A legal hold keeps what it covers: the disclosures of a held
customer, and those made in a held month.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.archive import LegalHold
from models.disclosure import StaffDisclosure
from services.archive.fileformat.months import month_bounds

BATCH = 5000


def _expired(cutoff: datetime, holds: Sequence[LegalHold]) -> sa.ColumnElement[bool]:
    """Disclosures made before ``cutoff`` that no hold in force covers."""
    at = StaffDisclosure.at
    conditions = [at < cutoff]
    customers = sorted({h.customer_id for h in holds if h.customer_id is not None})
    if customers:
        conditions.append(StaffDisclosure.customer_id.not_in(customers))
    for hold in holds:
        if hold.month is not None:
            start, end = month_bounds(hold.month)
            conditions.append(sa.or_(at < start, at >= end))
    return sa.and_(*conditions)


def purge_disclosures(
    engine: Engine,
    cutoff: datetime,
    holds: Sequence[LegalHold],
    *,
    dry_run: bool = False,
    batch: int = BATCH,
) -> int:
    """Delete (or, dry, count) the disclosures past ``cutoff`` not held, a batch per commit."""
    expired = _expired(cutoff, holds)
    if dry_run:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(StaffDisclosure).where(expired)
            return int(connection.execute(query).scalar_one())
    ids = sa.select(StaffDisclosure.id).where(expired).order_by(StaffDisclosure.id).limit(batch)
    deleted = 0
    while True:
        with engine.begin() as connection:
            gone = connection.execute(
                sa.delete(StaffDisclosure).where(StaffDisclosure.id.in_(ids.scalar_subquery()))
            ).rowcount
        deleted += gone
        if gone < batch:
            return deleted
