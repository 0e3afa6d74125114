"""Purging archive files past the cold retention, except what a legal hold covers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker, undefer

from config.settings import Settings
from models.archive import ArchiveManifest, ArchiveState, LegalHold
from models.base import utcnow
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.checked_lines import Corrupt, lines
from services.archive.fileformat.customer_filter import CustomerFilter
from services.archive.fileformat.months import months_back
from services.archive.fileformat.names import manifest_key
from services.archive.jobs import legal_holds
from services.archive.stores.port import ArchiveStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeDecision:
    """One file past the cold retention: whether it goes, and if not, why."""

    key: str
    month: date
    rows: int
    purge: bool
    reason: str


@dataclass
class PurgeReport:
    """What a purge found past the retention and what it deleted."""

    before_month: date
    dry_run: bool
    decisions: list[PurgeDecision] = field(default_factory=list)
    purged: int = 0

    @property
    def kept(self) -> list[PurgeDecision]:
        """The files kept, each with its reason."""
        return [d for d in self.decisions if not d.purge]


def purge_before(now: datetime, cold_years: int) -> date:
    """Files of months before this one are wholly past the cold retention."""
    threshold = months_back(now, cold_years * 12)
    return date(threshold.year, threshold.month, 1)


def purge_expired(
    engine: Engine,
    store: ArchiveStore,
    settings: Settings,
    *,
    dry_run: bool = False,
    clock: Callable[[], datetime] = utcnow,
) -> PurgeReport:
    """Delete archived files past the cold retention unless held; the caller holds the lock."""
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    report = PurgeReport(purge_before(clock(), settings.archive_cold_years), dry_run)
    in_force = legal_holds.active(sessions)
    with sessions() as session:
        candidates = list(
            session.scalars(
                sa.select(ArchiveManifest)
                .options(undefer(ArchiveManifest.customer_filter))
                .where(
                    ArchiveManifest.state == ArchiveState.ARCHIVED,
                    ArchiveManifest.month < report.before_month,
                )
                .order_by(ArchiveManifest.month, ArchiveManifest.first_id)
            )
        )
    for row in candidates:
        reason = _held_by(store, row, in_force)
        decision = PurgeDecision(
            row.object_key,
            row.month,
            row.row_count,
            reason is None,
            reason or f"past the {settings.archive_cold_years}-year retention",
        )
        report.decisions.append(decision)
        if decision.purge and not dry_run:
            _purge(store, sessions, row, clock())
            report.purged += 1
    return report


def _held_by(store: ArchiveStore, row: ArchiveManifest, in_force: list[LegalHold]) -> str | None:
    """Why the file must be kept, or None when it may go."""
    for hold in in_force:
        if hold.month is not None and hold.month == row.month:
            return legal_holds.describe(hold)
    customers = [h for h in in_force if h.customer_id is not None]
    if not customers:
        return None
    bloom = CustomerFilter.from_bytes(row.customer_filter)
    maybe = [h for h in customers if bloom.might_contain(str(h.customer_id))]
    if not maybe:
        return None
    try:
        present = _customers_in(store, row, {str(h.customer_id) for h in maybe})
    except Corrupt as exc:
        return f"cannot be checked for held customers: {exc}"
    for hold in maybe:
        if hold.customer_id in present:
            return legal_holds.describe(hold)
    return None


def _customers_in(store: ArchiveStore, row: ArchiveManifest, wanted: set[str]) -> set[str]:
    """Which of ``wanted`` have an interaction in the file (read whole, so it is verified)."""
    needles = {c: f'"customer_id":{json.dumps(c)}'.encode() for c in wanted}
    found: set[str] = set()
    for text in lines(store, manifest_rows.manifest_from_row(row)):
        for customer, needle in needles.items():
            if needle in text and json.loads(text)["interaction"]["customer_id"] == customer:
                found.add(customer)
    return found


def _purge(
    store: ArchiveStore, sessions: Callable[[], Session], row: ArchiveManifest, now: datetime
) -> None:
    # The objects go first: a crash before the row is marked leaves a row whose file is
    # gone, which the next purge completes; never a file that nothing records.
    store.delete(row.object_key)
    store.delete(manifest_key(row.object_key))
    with sessions() as session, session.begin():
        session.execute(
            sa.update(ArchiveManifest)
            .where(ArchiveManifest.id == row.id)
            .values(state=ArchiveState.PURGED, purged_at=now)
        )
    log.info("purged archive file %s (%d rows)", row.object_key, row.row_count)
