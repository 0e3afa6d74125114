"""The janitor: moves interactions past the hot retention, with their events, to the archive.

Per window of primary keys, in this order, each step safe to die after:

1. read the window's rows in a REPEATABLE READ transaction (``exported``);
2. write one file a month, beside its manifest; never over an existing object (``written``);
3. read every file back and check its size, hashes and line count (``verified``);
4. delete the verified rows and record their manifests in the transaction of step 1
   (``deleted``), then commit (``committed``).

A file whose rows were not deleted has no ARCHIVED manifest row. The next run cuts the same
windows, finds the file under its deterministic name and reuses it when it is byte for byte
what it would write, and deletes it otherwise; files left in any other state are removed at
the end of the run by a sweep of the months it touched. So every row ends in the database or
in exactly one verified file.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from config.settings import Settings
from models.archive import ArchiveManifest, ArchiveState
from models.base import utcnow
from models.migrate import current_revision
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.manifest import Manifest
from services.archive.fileformat.months import month_bounds
from services.archive.fileformat.names import manifest_key
from services.archive.fileformat.readback import Unreadable, digest, problem
from services.archive.jobs.leftover_sweep import sweep_month
from services.archive.jobs.run_plan import MonthCount, Plan, default_cutoff, find_expired
from services.archive.jobs.window_export import (
    INTERACTIONS,
    ChunkFile,
    ExportedWindow,
    Window,
    export_window,
    manifest_of,
)
from services.archive.stores.port import ArchiveStore

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]
STEPS = ("exported", "written", "verified", "deleted", "committed")
SERIALIZATION_FAILURE = "40001"
# Windows read ahead of the one being settled; each holds a connection and its files.
READ_AHEAD = 2

_DELETE = f"""
DELETE FROM {INTERACTIONS} AS i
WHERE i.id > %(lo)s AND i.id <= %(hi)s
  AND i.created_at >= %(start)s AND i.created_at < %(end)s
  AND i.status <> 'pending'
"""  # noqa: S608


def _no_step(_step: str) -> None:
    """Production runs observe no steps."""


@dataclass
class JanitorReport:
    """What one run found and did."""

    cutoff: datetime
    dry_run: bool
    months: list[MonthCount]
    interactions: int = 0
    events: int = 0
    files_written: int = 0
    files_reused: int = 0
    bytes_written: int = 0
    leftovers_removed: int = 0
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def expired(self) -> int:
        """Interactions past the cutoff when the run began, PENDING ones aside."""
        return sum(m.settled for m in self.months)

    @property
    def pending_kept(self) -> int:
        """Interactions past the cutoff kept in the database because they are PENDING."""
        return sum(m.pending for m in self.months)


@dataclass
class _Prepared:
    """A window read, written and verified, waiting for its rows to be deleted."""

    exported: ExportedWindow
    now: datetime
    verified: list[tuple[ChunkFile, Manifest]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    reused: set[str] = field(default_factory=set)
    bytes_stored: int = 0


class _Changed(Exception):
    """A window's rows changed between reading and deleting them; left for the next run."""


class Janitor:
    """Moves expired interactions to the archive store, one verified window at a time."""

    def __init__(
        self,
        engine: Engine,
        store: ArchiveStore,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        on_step: StepHook = _no_step,
    ) -> None:
        self._engine = engine
        self._store = store
        self._settings = settings
        self._clock = clock
        self._on_step = on_step

    def cutoff(self) -> datetime:
        """The default cutoff: now less the hot retention."""
        return default_cutoff(self._clock(), self._settings.archive_hot_months)

    def plan(self, cutoff: datetime) -> Plan:
        """What a run with ``cutoff`` would move, by month."""
        return find_expired(self._engine, cutoff, self._settings.archive_plan_timeout_seconds)

    def run(
        self,
        cutoff: datetime | None = None,
        *,
        dry_run: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> JanitorReport:
        """Archive the settled interactions created before ``cutoff``; the caller holds the lock."""
        started = time.monotonic()
        plan = self.plan(cutoff or self.cutoff())
        report = JanitorReport(plan.cutoff, dry_run, plan.months)
        if dry_run:
            return report
        with self._engine.connect() as connection:
            schema_version = current_revision(connection) or "unknown"
        touched = {m.month for m in plan.months}
        windows = plan.windows(self._settings.archive_chunk_rows)
        # Worker threads read, write and verify the next windows while this thread deletes
        # the current one: PostgreSQL builds one window's JSON while another is compressed
        # or read back and a third is deleted, which keeps both cores of a small machine busy.
        # Every window still goes through the steps in order; only windows overlap.
        with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="archive") as workers:

            def prepare(index: int) -> Future[_Prepared]:
                return workers.submit(self._prepare, windows[index], plan.cutoff, schema_version)

            ahead = deque(prepare(index) for index in range(min(READ_AHEAD, len(windows))))
            for index in range(len(windows)):
                try:
                    prepared = ahead.popleft().result()
                except BaseException:
                    _discard(ahead)
                    raise
                if index + READ_AHEAD < len(windows):
                    ahead.append(prepare(index + READ_AHEAD))
                try:
                    self._settle(prepared, plan.cutoff, report)
                except BaseException:
                    _discard(ahead)
                    raise
                finally:
                    prepared.exported.close()
                if on_progress:
                    on_progress(sum(f.rows for f in prepared.exported.files))
        for month in sorted(touched):
            report.leftovers_removed += sweep_month(self._engine, self._store, month)
        report.seconds = time.monotonic() - started
        log.info(
            "archive run: %d interactions, %d events, %d files (%d reused), %d blocked",
            report.interactions,
            report.events,
            report.files_written + report.files_reused,
            report.files_reused,
            len(report.blocked),
        )
        return report

    def _prepare(self, window: Window, cutoff: datetime, schema_version: str) -> _Prepared:
        """Read one window, write its files and read them back; its transaction stays open."""
        level = self._settings.archive_zstd_level
        exported = export_window(self._engine, window, cutoff, level)
        try:
            self._on_step("exported")
            prepared = _Prepared(exported, self._clock())
            stored: list[tuple[ChunkFile, Manifest]] = []
            for chunk in exported.files:
                manifest = manifest_of(chunk, schema_version, prepared.now)
                kept = self._store_file(chunk, manifest)
                if kept is None:
                    prepared.blocked.append(
                        f"{chunk.key}: an archived file already holds these ids"
                    )
                    continue
                stored.append((chunk, kept[0]))
                if kept[1]:
                    prepared.reused.add(chunk.key)
                prepared.bytes_stored += len(chunk.data)
            self._on_step("written")
            # The read-back proves the store holds exactly the bytes this run compressed (their
            # SHA-256 and size), that they decompress as one whole zstd frame whose own checksum
            # of the content holds, and that they hold the manifest's number of lines. The
            # content's SHA-256 was taken from the very bytes given to the compressor, so it is
            # not taken again here; `archive verify` re-hashes the content of every file.
            for chunk, manifest in stored:
                found = problem(self._store, manifest, content_hash=False)
                if found is not None:
                    log.error("archive file failed verification; its rows stay: %s", found)
                    prepared.blocked.append(found)
                    continue
                prepared.verified.append((chunk, manifest))
            self._on_step("verified")
        except BaseException:
            exported.close()
            raise
        return prepared

    def _settle(self, prepared: _Prepared, cutoff: datetime, report: JanitorReport) -> None:
        """Delete and record one prepared window's verified files, and commit."""
        report.blocked.extend(prepared.blocked)
        report.bytes_written += prepared.bytes_stored
        verified = prepared.verified
        if not verified:
            return
        exported = prepared.exported
        try:
            self._delete_and_record(exported, verified, cutoff)
        except _Changed as exc:
            exported.connection.rollback()
            report.blocked.append(str(exc))
            log.warning("%s", exc)
            return
        self._on_step("deleted")
        exported.connection.commit()
        self._on_step("committed")
        for chunk, _manifest in verified:
            report.interactions += chunk.rows
            report.events += chunk.events
            if chunk.key in prepared.reused:
                report.files_reused += 1
            else:
                report.files_written += 1

    def _store_file(self, chunk: ChunkFile, manifest: Manifest) -> tuple[Manifest, bool] | None:
        """Put the file and its manifest in the store, reusing an earlier run's identical file.

        Returns the manifest the file is recorded under and whether the file was already
        there, or None when an ARCHIVED file already holds these ids (which only a bug or a
        hand-made change could cause).
        """
        key = chunk.key
        reused = False
        if self._store.exists(key):
            if self._state_of(key) is ArchiveState.ARCHIVED:
                return None
            try:
                reused = digest(self._store, key, content_hash=False).sha256 == chunk.sha256
            except Unreadable:
                reused = False
            if not reused:
                # Never recorded as archived, so its rows are all still in the database.
                self._store.delete(manifest_key(key))
                self._store.delete(key)
                self._store.put_new(key, chunk.data)
        else:
            self._store.put_new(key, chunk.data)
        return self._store_manifest(manifest), reused

    def _store_manifest(self, manifest: Manifest) -> Manifest:
        key = manifest_key(manifest.key)
        if self._store.exists(key):
            try:
                earlier = Manifest.from_json(b"".join(self._store.read(key)))
            except (ValueError, KeyError, TypeError):
                earlier = None
            if earlier is not None and _same_file(earlier, manifest):
                return earlier
            self._store.delete(key)
        self._store.put_new(key, manifest.to_json())
        return manifest

    def _state_of(self, key: str) -> ArchiveState | None:
        with Session(self._engine) as session:
            return session.scalar(
                sa.select(ArchiveManifest.state).where(ArchiveManifest.object_key == key)
            )

    def _delete_and_record(
        self,
        exported: ExportedWindow,
        verified: list[tuple[ChunkFile, Manifest]],
        cutoff: datetime,
    ) -> None:
        """Delete the files' rows (their events by cascade) and record their manifests."""
        connection = exported.connection
        window = exported.window
        try:
            for chunk, manifest in verified:
                start, end = month_bounds(chunk.month)
                bounds = {"lo": window.lo, "hi": window.hi, "start": start, "end": min(cutoff, end)}
                deleted = connection.exec_driver_sql(_DELETE, bounds).rowcount
                if deleted != chunk.rows:
                    raise _Changed(
                        f"{chunk.key}: {deleted} rows to delete, {chunk.rows} archived; "
                        "left for the next run"
                    )
                if not manifest_rows.record_archived(
                    connection, manifest, self._store.url, chunk.customer_filter
                ):
                    raise _Changed(f"{chunk.key}: already recorded as archived")
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) != SERIALIZATION_FAILURE:
                raise
            raise _Changed(
                f"window {window.lo + 1}-{window.hi}: rows or events changed while archiving; "
                "left for the next run"
            ) from None


def _same_file(earlier: Manifest, current: Manifest) -> bool:
    """Whether two manifests describe the same bytes and rows (their creation times aside)."""
    fields = ("key", "rows", "events", "first_id", "last_id", "sha256", "content_sha256")
    return all(getattr(earlier, name) == getattr(current, name) for name in fields)


def _discard(ahead: deque[Future[_Prepared]]) -> None:
    """Release the windows prepared ahead when the run stops early."""
    for upcoming in ahead:
        try:
            upcoming.result().exported.close()
        except Exception:  # the run is already failing for another reason
            log.debug("discarding a window read ahead failed", exc_info=True)
