"""A database lock that keeps two runs of one maintenance job apart, and running a job under it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from telemetry import metrics

R = TypeVar("R")


def _lock_id(name: str) -> int:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Hold a PostgreSQL advisory lock named ``name`` for the block; yields whether we got it.

    SQLite allows one writer at a time already and serves a single machine, so there the
    lock is always granted.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        got = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": _lock_id(name)}
        ).scalar_one()
        connection.commit()
        try:
            yield bool(got)
        finally:
            if got:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _lock_id(name)}
                )
                connection.commit()


class AlreadyRunning(RuntimeError):
    """Another run of the job holds its lock."""


def run_exclusively(engine: Engine, name: str, job: Callable[[], R]) -> R:
    """Run ``job`` under the lock named ``name``, counting the run; raise if another holds it."""
    with exclusive(engine, name) as mine:
        metrics.maintenance_run(name, mine)
        if not mine:
            raise AlreadyRunning(f"{name} is already running elsewhere")
        return job()
