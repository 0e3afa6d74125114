"""The manifests recorded in the database: recording an archived file, listing them back."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models.archive import ArchiveManifest, ArchiveState
from services.archive.fileformat.manifest import FORMAT_VERSION, Manifest


def manifest_from_row(row: ArchiveManifest) -> Manifest:
    """The manifest a database row records."""
    return Manifest(
        key=row.object_key,
        month=row.month,
        rows=row.row_count,
        events=row.event_count,
        first_id=row.first_id,
        last_id=row.last_id,
        first_created_at=row.first_created_at,
        last_created_at=row.last_created_at,
        byte_size=row.byte_size,
        sha256=row.sha256,
        content_sha256=row.content_sha256,
        schema_version=row.schema_version,
        created_at=row.created_at,
        format_version=row.format_version,
    )


def record_archived(
    connection: Connection, manifest: Manifest, store_url: str, customer_filter: bytes
) -> bool:
    """Record ``manifest`` as ARCHIVED in the caller's transaction; False if already archived.

    A RESTORED row for the same key (its rows were put back and are now archived again into
    the very same file) becomes ARCHIVED again.
    """
    values = {
        "object_key": manifest.key,
        "store_url": store_url,
        "month": manifest.month,
        "state": ArchiveState.ARCHIVED,
        "row_count": manifest.rows,
        "event_count": manifest.events,
        "first_id": manifest.first_id,
        "last_id": manifest.last_id,
        "first_created_at": manifest.first_created_at,
        "last_created_at": manifest.last_created_at,
        "byte_size": manifest.byte_size,
        "sha256": manifest.sha256,
        "content_sha256": manifest.content_sha256,
        "schema_version": manifest.schema_version,
        "format_version": FORMAT_VERSION,
        "customer_filter": customer_filter,
        "created_at": manifest.created_at,
    }
    statement = postgresql.insert(ArchiveManifest).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[ArchiveManifest.object_key],
        set_={**{k: statement.excluded[k] for k in values}, "restored_at": None, "purged_at": None},
        where=ArchiveManifest.state != ArchiveState.ARCHIVED,
    )
    return connection.execute(statement).rowcount == 1


def states_by_key(session: Session, month: date) -> dict[str, ArchiveManifest]:
    """Every manifest row of ``month``, by object key."""
    rows = session.scalars(sa.select(ArchiveManifest).where(ArchiveManifest.month == month))
    return {row.object_key: row for row in rows}


def listing(
    session: Session, month: date | None = None, state: ArchiveState | None = None
) -> list[ArchiveManifest]:
    """Manifest rows in month and id order, optionally of one month or state."""
    query = sa.select(ArchiveManifest).order_by(ArchiveManifest.month, ArchiveManifest.first_id)
    if month is not None:
        query = query.where(ArchiveManifest.month == month)
    if state is not None:
        query = query.where(ArchiveManifest.state == state)
    return list(session.scalars(query))
