"""Restoring an archived month into the tables, every column written back as it was stored."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from models.archive import ArchiveManifest, ArchiveState
from models.base import utcnow
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.checked_lines import Corrupt, lines
from services.archive.jobs.window_export import EVENTS, INTERACTIONS
from services.archive.stores.port import ArchiveStore

log = logging.getLogger(__name__)
BATCH_LINES = 2_000

# json_populate_record turns each value back into its column's type with the type's own input
# function, the inverse of the row_to_json that wrote it. Rows already present are left alone.
_INSERT_INTERACTIONS = f"""
INSERT INTO {INTERACTIONS}
SELECT r.* FROM unnest(%(lines)s::text[]) AS l(line),
     json_populate_record(NULL::{INTERACTIONS}, l.line::json -> 'interaction') AS r
ON CONFLICT (id) DO NOTHING
"""  # noqa: S608
_INSERT_EVENTS = f"""
INSERT INTO {EVENTS}
SELECT r.* FROM unnest(%(lines)s::text[]) AS l(line),
     json_array_elements(l.line::json -> 'events') AS e(event),
     json_populate_record(NULL::{EVENTS}, e.event) AS r
ON CONFLICT (id) DO NOTHING
"""  # noqa: S608
# Restoring into an empty database (a rebuild) must not leave the id sequences behind.
_CATCH_UP_SEQUENCE = """
SELECT setval(pg_get_serial_sequence(%(table)s, 'id'), m)
FROM (SELECT max(id) AS m FROM {table}) AS t
WHERE m > coalesce(pg_sequence_last_value(pg_get_serial_sequence(%(table)s, 'id')::regclass), 0)
"""


@dataclass
class RestoreReport:
    """What a restore put back."""

    month: date
    files: int = 0
    interactions: int = 0
    events: int = 0
    already_present: int = 0
    already_restored: int = 0
    failed: list[str] = field(default_factory=list)


def restore_month(
    engine: Engine,
    store: ArchiveStore,
    month: date,
    clock: Callable[[], datetime] = utcnow,
) -> RestoreReport:
    """Put every archived file of ``month`` back into the tables, one transaction a file.

    Idempotent: a file already restored is skipped, and a row already present is kept.
    A file that fails its check is reported and changes nothing. The caller holds the lock.
    """
    report = RestoreReport(month)
    with Session(engine) as session:
        rows = manifest_rows.listing(session, month)
    for row in rows:
        if row.state is ArchiveState.RESTORED:
            report.already_restored += 1
            continue
        if row.state is not ArchiveState.ARCHIVED:
            continue
        try:
            _restore_file(engine, store, row, report, clock())
        except Corrupt as exc:
            log.error("restore refused a file: %s", exc)
            report.failed.append(str(exc))
        except sa.exc.IntegrityError as exc:
            # A live row took one of the archived keys since: nothing of the file is written.
            problem = f"{row.object_key}: conflicts with a row in the database ({exc.orig})"
            log.error("restore refused a file: %s", row.object_key)
            report.failed.append(problem)
    with engine.begin() as connection:
        for table in (INTERACTIONS, EVENTS):
            connection.exec_driver_sql(_CATCH_UP_SEQUENCE.format(table=table), {"table": table})
    return report


def _restore_file(
    engine: Engine, store: ArchiveStore, row: ArchiveManifest, report: RestoreReport, now: datetime
) -> None:
    manifest = manifest_rows.manifest_from_row(row)
    with engine.begin() as connection:
        inserted = events = 0
        for batch in _batches(lines(store, manifest)):
            inserted += _execute(connection, _INSERT_INTERACTIONS, batch)
            events += _execute(connection, _INSERT_EVENTS, batch)
        connection.execute(
            sa.update(ArchiveManifest)
            .where(ArchiveManifest.id == row.id, ArchiveManifest.state == ArchiveState.ARCHIVED)
            .values(state=ArchiveState.RESTORED, restored_at=now)
        )
    report.files += 1
    report.interactions += inserted
    report.events += events
    report.already_present += manifest.rows - inserted


def _execute(connection: Connection, sql: str, batch: list[str]) -> int:
    return int(connection.exec_driver_sql(sql, {"lines": batch}).rowcount)


def _batches(source: Iterator[bytes]) -> Iterator[list[str]]:
    while batch := [line.decode() for line in islice(source, BATCH_LINES)]:
        yield batch
