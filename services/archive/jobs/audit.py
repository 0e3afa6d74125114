"""Checking the archive: each recorded file against its manifest, and files nobody recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models.archive import ArchiveState
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.manifest import Manifest
from services.archive.fileformat.names import ROOT, data_key_of, manifest_key, month_prefix
from services.archive.fileformat.readback import problem
from services.archive.stores.port import ArchiveStore, ObjectMissing


@dataclass
class AuditReport:
    """What ``verify`` found."""

    checked: int = 0
    rows: int = 0
    failed: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every recorded file matched its manifest."""
        return not self.failed


def verify_archive(
    engine: Engine,
    store: ArchiveStore,
    month: date | None = None,
    on_file: Callable[[str, str | None], None] | None = None,
) -> AuditReport:
    """Re-hash every ARCHIVED and RESTORED file against its manifest row and stored manifest."""
    report = AuditReport()
    with Session(engine) as session:
        rows = [
            r
            for r in manifest_rows.listing(session, month)
            if r.state in (ArchiveState.ARCHIVED, ArchiveState.RESTORED)
        ]
    for row in rows:
        manifest = manifest_rows.manifest_from_row(row)
        found = problem(store, manifest) or _sidecar_problem(store, manifest)
        report.checked += 1
        report.rows += row.row_count
        if found:
            report.failed.append(found)
        if on_file:
            on_file(row.object_key, found)
    recorded = {r.object_key for r in rows}
    prefix = month_prefix(month) if month else f"{ROOT}/"
    report.unrecorded = [k for k in store.keys(prefix) if data_key_of(k) not in recorded]
    return report


def _sidecar_problem(store: ArchiveStore, manifest: Manifest) -> str | None:
    key = manifest_key(manifest.key)
    try:
        stored = Manifest.from_json(b"".join(store.read(key)))
    except ObjectMissing:
        return f"{key}: missing"
    except (ValueError, KeyError, TypeError):
        return f"{key}: not a readable manifest"
    fields = ("key", "rows", "events", "first_id", "last_id", "sha256", "content_sha256")
    if any(getattr(stored, name) != getattr(manifest, name) for name in fields):
        return f"{key}: differs from the manifest recorded in the database"
    return None
