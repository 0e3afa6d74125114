"""The one lock every archive job takes, so a run, a purge and a restore never overlap."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from services.locks import exclusive

ARCHIVE_LOCK = "archive"


class ArchiveBusy(Exception):
    """Another archive job holds the lock."""


class ArchiveUnsupported(Exception):
    """The archive needs PostgreSQL; the embedded SQLite database is for trying the service."""


@contextmanager
def archive_lock(engine: Engine) -> Iterator[None]:
    """Hold the archive lock for the block, or raise ArchiveBusy at once."""
    if engine.dialect.name != "postgresql":
        raise ArchiveUnsupported("the archive needs PostgreSQL (INTERACTIONS_DATABASE_URL)")
    with exclusive(engine, ARCHIVE_LOCK) as mine:
        if not mine:
            raise ArchiveBusy("another archive job (run, purge or restore) is running")
        yield
