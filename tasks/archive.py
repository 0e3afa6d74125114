"""The monthly janitor on the beat schedule: archive expired interactions, then purge."""

from __future__ import annotations

import logging

from celery import Task

from config.celery import TaskName
from config.settings import get_settings
from services.archive.jobs.janitor import Janitor
from services.archive.jobs.lock import ArchiveBusy, ArchiveUnsupported, archive_lock
from services.archive.jobs.retention_purge import purge_expired
from services.container import container
from tasks.base import project_task

log = logging.getLogger(__name__)
_LIMIT = get_settings().archive_task_time_limit_seconds


@project_task(TaskName.ARCHIVE_EXPIRED, time_limit=_LIMIT, soft_time_limit=_LIMIT - 30)
def archive_expired(self: Task) -> None:
    """Move interactions past the hot retention to the archive; purge files past the cold one."""
    here = container()
    settings, engine, store = here.settings, here.engine, here.archive_store
    try:
        with archive_lock(engine):
            report = Janitor(engine, store, settings).run()
            purged = purge_expired(engine, store, settings)
    except ArchiveBusy:
        log.info("archive_expired: another archive job holds the lock; skipped")
        return
    except ArchiveUnsupported as exc:
        log.warning("archive_expired: %s; skipped", exc)
        return
    log.info(
        "archive_expired: %d interactions and %d events archived in %.1f s, %d pending kept, "
        "%d blocked; %d files purged, %d kept by legal holds; %d staff disclosures purged",
        report.interactions,
        report.events,
        report.seconds,
        report.pending_kept,
        len(report.blocked),
        purged.purged,
        len(purged.kept),
        purged.disclosures,
    )
    for problem in report.blocked:
        log.error("archive_expired: blocked: %s", problem)
