"""Removing what a run left unfinished: files with no ARCHIVED manifest row in the database.

The manifest row is recorded in the transaction that deletes the file's rows, so a file
without one never became the only copy of anything: its rows are still in the database, or
in another, recorded file. Only the archive lock's holder sweeps, so no write is in flight.
"""

from __future__ import annotations

import logging
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models.archive import ArchiveManifest, ArchiveState
from models.interaction import CustomerInteraction
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.months import month_bounds
from services.archive.fileformat.names import data_key_of, month_prefix
from services.archive.stores.port import ArchiveStore

log = logging.getLogger(__name__)


def sweep_month(engine: Engine, store: ArchiveStore, month: date) -> int:
    """Delete the month's unrecorded files and temporary leftovers; how many went."""
    removed = 0
    with Session(engine) as session, session.begin():
        rows = manifest_rows.states_by_key(session, month)
        settled: set[str] = set()
        for key in list(store.keys(month_prefix(month))):
            data_key = data_key_of(key)
            row = rows.get(data_key) if data_key else None
            if row is not None and row.state is ArchiveState.ARCHIVED:
                continue
            if row is not None and row.state is ArchiveState.RESTORED:
                if _rows_remain(session, row):
                    continue
                settled.add(row.object_key)
            store.delete(key)
            removed += 1
        for object_key in settled:
            # Its rows were put back, then archived again into other files: it is history.
            session.delete(rows[object_key])
    if removed:
        log.info("archive sweep of %s removed %d unfinished files", f"{month:%Y-%m}", removed)
    return removed


def _rows_remain(session: Session, row: ArchiveManifest) -> bool:
    """Whether any interaction the restored file may hold is in the database."""
    table = CustomerInteraction
    start, end = month_bounds(row.month)
    query = sa.select(
        sa.exists().where(
            table.id.between(row.first_id, row.last_id),
            table.created_at >= start,
            table.created_at < end,
        )
    )
    return bool(session.scalar(query))
