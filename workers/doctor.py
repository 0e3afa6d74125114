"""``interactions doctor``: checks that everything the running stack needs is here."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
import sqlalchemy as sa
from kombu import Connection
from pydantic import ValidationError

from config.settings import Settings, get_settings
from models.migrate import current_revision, head_revision
from models.session import build_engine
from workers.doctor_checks import (
    Check,
    check_archive_storage,
    check_beat_schedule,
    check_encryption_keys,
    check_flower,
    check_metrics,
    check_provider_holds,
    check_providers,
    check_webhook_secrets,
)


def _redacted(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url


def check_database(settings: Settings) -> list[Check]:
    """Whether the database answers and is migrated to head."""
    url = settings.resolved_database_url
    try:
        engine = build_engine(url, settings)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
                current = current_revision(connection)
        finally:
            engine.dispose()
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


CHECKS: tuple[Callable[[Settings], list[Check]], ...] = (
    check_database,
    lambda settings: [check_broker(settings)],
    check_encryption_keys,
    check_providers,
    check_provider_holds,
    check_webhook_secrets,
    check_beat_schedule,
    check_archive_storage,
    check_metrics,
    check_flower,
)


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return [check for run in CHECKS for check in run(settings)]


def settings_problems(exc: ValidationError) -> list[Check]:
    """One failed check per setting the environment gets wrong."""
    checks = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        name = f"INTERACTIONS_{field.upper()}" if field else "the settings"
        checks.append(Check("settings", False, f"{name}: {error['msg']}"))
    return checks


@click.command("doctor")
def doctor_command() -> None:
    """Check every dependency the running stack needs; exit 1 naming each failure."""
    try:
        checks = run_checks(get_settings())
    except ValidationError as exc:
        checks = settings_problems(exc)
    for check in checks:
        click.echo(f"[{check.label}] {check.name}: {check.message}")
    failures = sum(1 for check in checks if not check.ok)
    if failures:
        click.echo(f"{failures} check(s) failed.", err=True)
        sys.exit(1)
