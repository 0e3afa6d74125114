"""The demonstration: a few dispatches, a callback, a phone note and a customer's timeline."""

from __future__ import annotations

import click

from config.settings import get_settings
from models.migrate import upgrade
from models.session import get_engine
from workers import display
from workers.runtime import build_service


def run_demo() -> None:
    """Dispatch a handful of interactions synchronously and print a timeline."""
    settings = get_settings()
    where = "embedded SQLite under ./var" if settings.embedded else "the configured database"
    click.echo(f"running on {where}")
    upgrade(get_engine(settings))
    service = build_service(settings)
    service.upsert_contact("C-1001", "ada@example.org", "+1 613 555 0101")
    service.upsert_contact("C-1002", None, None)

    sends = [
        ("C-1001", "email", "welcome", "demo:welcome:C-1001", None),
        ("C-1001", "sms", "reminder", "demo:reminder:C-1001", None),
        ("C-1001", "email", "welcome", "demo:welcome:C-1001", None),
        ("C-1002", "email", "welcome", "demo:welcome:C-1002", None),
        ("C-1001", "email", "receipt", "demo:receipt:C-1001", "not-an-address"),
    ]
    for customer, channel, template, key, recipient in sends:
        result = service.dispatch(customer, channel, template, {"name": "Ada"}, key, recipient)
        reason = (
            f" ({result.interaction.failure_reason})" if result.interaction.failure_reason else ""
        )
        click.echo(f"dispatch {key}: {result.outcome.value}, {result.status.value}{reason}")

    first = service.get_history("C-1001", 10, channel="email", status="sent").items
    if first and first[0].provider_reference:
        update = service.update_status(first[0].provider_reference, "delivered")
        click.echo(f"callback delivered for {first[0].idempotency_key}: {update.outcome.value}")
    service.add_note("C-1001", "Called to confirm the new mailing address.", "agent.smith")
    click.echo("\ntimeline of C-1001:")
    click.echo(display.timeline(service.get_history("C-1001", 20).items))
