"""Engines and sessions: how one is built for each dialect; the process container holds them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, get_settings

SessionFactory = Callable[[], Session]


def build_engine(url: str, settings: Settings | None = None, autocommit: bool = False) -> Engine:
    """A new engine for ``url``, tuned for the dialect it names.

    ``autocommit`` (PostgreSQL): every statement commits on its own, for callers that write
    with single statements and want no COMMIT round trip.
    """
    settings = settings or get_settings()
    # No pre-ping: it costs a round trip per checkout. A connection found dead fails its
    # statement, the pool is invalidated, and the caller retries (tasks do so by design).
    # Statement errors would otherwise quote their parameters (recipients, bodies) into
    # exception messages, which reach logs and Flower's task details.
    options: dict[str, Any] = {"pool_recycle": 1800, "hide_parameters": True}
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        engine = sa.create_engine(url, **options)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    options["pool_size"] = settings.database_pool_size
    options["max_overflow"] = settings.database_pool_size
    if url.startswith("postgresql") and settings.database_statement_timeout_ms:
        timeout = settings.database_statement_timeout_ms
        options["connect_args"] = {"options": f"-c statement_timeout={timeout}"}
    if autocommit and url.startswith("postgresql"):
        options["isolation_level"] = "AUTOCOMMIT"
    return sa.create_engine(url, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the demo's producer and worker processes read while one writes."""
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    """Take the write lock when a transaction begins, not halfway through it.

    A deferred transaction that reads and then writes fails at once if another process
    wrote in between; an immediate one waits its turn (busy_timeout) instead.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> SessionFactory:
    """A factory of short-lived sessions; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)
