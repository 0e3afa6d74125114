"""Purging archive files past the cold retention, except what a legal hold covers.

The same run deletes the staff disclosures made before the hot retention's cutoff, whose
messages have left the database (``disclosure_purge``).

Purging cannot be undone, so the cold years are counted from when a month left the hot
database, not from the month itself: a file is purged once its month is more than
``archive_hot_months`` plus ``archive_cold_years`` old (24 months + 7 years by default).
"""

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
from services.archive.fileformat.months import months_back, next_month
from services.archive.fileformat.names import manifest_key
from services.archive.jobs import legal_holds
from services.archive.jobs.disclosure_purge import purge_disclosures
from services.archive.jobs.run_plan import default_cutoff
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


@dataclass(frozen=True)
class WaitingFile:
    """An archived file not yet past the retention, and the day it becomes eligible."""

    key: str
    month: date
    rows: int
    eligible_on: date


@dataclass
class PurgeReport:
    """What a purge found past the retention and what it deleted."""

    before_month: date
    dry_run: bool
    decisions: list[PurgeDecision] = field(default_factory=list)
    waiting: list[WaitingFile] = field(default_factory=list)
    purged: int = 0
    # Staff disclosures made before the hot retention's cutoff, deleted (or, dry, found).
    disclosures: int = 0

    @property
    def kept(self) -> list[PurgeDecision]:
        """The files kept, each with its reason."""
        return [d for d in self.decisions if not d.purge]


def retention_months(settings: Settings) -> int:
    """How many months a month's interactions are kept in all: hot, then cold."""
    return settings.archive_hot_months + settings.archive_cold_years * 12


def describe_retention(settings: Settings) -> str:
    """The retention rule in words, for reasons and reports."""
    return f"{settings.archive_hot_months} months hot + {settings.archive_cold_years} years cold"


def purge_before(now: datetime, months: int) -> date:
    """Files of months before this one are wholly past a retention of ``months``."""
    threshold = months_back(now, months)
    return date(threshold.year, threshold.month, 1)


def eligible_on(month: date, months: int) -> date:
    """The first day a file of ``month`` may be purged under a retention of ``months``."""
    index = month.year * 12 + month.month - 1 + months
    return next_month(date(index // 12, index % 12 + 1, 1))


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
    months = retention_months(settings)
    report = PurgeReport(purge_before(clock(), months), dry_run)
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
            reason or f"past the retention ({describe_retention(settings)})",
        )
        report.decisions.append(decision)
        if decision.purge and not dry_run:
            _purge(store, sessions, row, clock())
            report.purged += 1
    if dry_run:
        report.waiting = _waiting(sessions, report.before_month, months)
    hot_cutoff = default_cutoff(clock(), settings.archive_hot_months)
    report.disclosures = purge_disclosures(engine, hot_cutoff, in_force, dry_run=dry_run)
    return report


def _waiting(sessions: Callable[[], Session], before: date, months: int) -> list[WaitingFile]:
    """The archived files still inside the retention, each with its first day of eligibility."""
    with sessions() as session:
        rows = session.execute(
            sa.select(ArchiveManifest.object_key, ArchiveManifest.month, ArchiveManifest.row_count)
            .where(ArchiveManifest.state == ArchiveState.ARCHIVED, ArchiveManifest.month >= before)
            .order_by(ArchiveManifest.month, ArchiveManifest.first_id)
        ).all()
    return [
        WaitingFile(key, month, count, eligible_on(month, months)) for key, month, count in rows
    ]


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
