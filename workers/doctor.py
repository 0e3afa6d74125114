"""``interactions doctor``: checks that everything the running stack needs is here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click
import sqlalchemy as sa
from kombu import Connection
from pydantic import ValidationError

from config.settings import Settings, UnknownSetting, get_settings
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
from workers.doctor_setup import check_console, check_variable_names, send_test


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
    check_variable_names,
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
    check_console,
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


def as_json(checks: list[Check]) -> str:
    """The checks as one JSON document: ``ok`` overall, then each check with its status."""
    return json.dumps(
        {
            "ok": all(check.ok for check in checks),
            "checks": [
                {"name": c.name, "status": c.label.lower(), "message": c.message} for c in checks
            ],
        },
        indent=2,
    )


@click.command("doctor")
@click.option("--json", "as_document", is_flag=True, help="Print the checks as a JSON document.")
@click.option(
    "--send-test",
    "send_test_to",
    metavar="ADDRESS",
    default=None,
    help="Also send one real message to ADDRESS (use the provider's test key).",
)
@click.option(
    "--channel",
    type=click.Choice(["email", "sms"]),
    default="email",
    show_default=True,
    help="The channel of the --send-test message.",
)
@click.option(
    "--template",
    "template_key",
    default="welcome",
    show_default=True,
    help="The template key of the --send-test message.",
)
def doctor_command(
    as_document: bool, send_test_to: str | None, channel: str, template_key: str
) -> None:
    """Check every dependency the running stack needs; exit 1 naming each failure."""
    try:
        settings = get_settings()
        checks = run_checks(settings)
        if send_test_to:
            checks.append(send_test(settings, channel, send_test_to, template_key))
    except ValidationError as exc:
        checks = settings_problems(exc)
    except UnknownSetting:
        checks = check_variable_names()
    failures = sum(1 for check in checks if not check.ok)
    if as_document:
        click.echo(as_json(checks))
    else:
        for check in checks:
            click.echo(f"[{check.label}] {check.name}: {check.message}")
    if failures:
        click.echo(f"{failures} check(s) failed.", err=True)
        sys.exit(1)
