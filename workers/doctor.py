"""Checks that the service can run here: database, migrations, broker."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from kombu import Connection

from config.settings import Settings
from models.migrate import current_revision, head_revision
from models.session import get_engine


@dataclass(frozen=True)
class Check:
    """One check and what it found."""

    name: str
    ok: bool
    message: str


def _redacted(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url


def check_database(settings: Settings) -> list[Check]:
    """Whether the database answers and is migrated to head."""
    url = settings.resolved_database_url
    try:
        with get_engine(settings).connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            current = current_revision(connection)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0]
        return [Check("database", False, f"{_redacted(url)} does not answer: {reason}")]
    checks = [Check("database", True, f"{_redacted(url)} answers")]
    head = head_revision()
    if current == head:
        checks.append(Check("migrations", True, f"at head ({head})"))
    else:
        checks.append(
            Check(
                "migrations",
                False,
                f"at {current or 'nothing'}, head is {head}: run `interactions migrate`",
            )
        )
    return checks


def check_broker(settings: Settings) -> Check:
    """Whether the Celery broker accepts a connection."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem"):
        folder = settings.broker_folder
        folder.mkdir(parents=True, exist_ok=True)
        return Check("broker", True, f"filesystem transport under {folder}")
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises transport-specific errors
        return Check(
            "broker", False, f"{_redacted(url)} does not answer: {type(exc).__name__}: {exc}"
        )
    return Check("broker", True, f"{_redacted(url)} answers")


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return [*check_database(settings), check_broker(settings)]
