"""The ``interactions`` command line."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from config.logging import configure_logging
from models.migrate import upgrade
from services.container import container
from services.errors import Deferred, InvalidInput, TransientDispatchError
from workers import display
from workers.cli_api import api, api_keys
from workers.cli_archive import archive
from workers.cli_batch_controls import batch
from workers.cli_batches import batch_status_command, reconcile_command, send_batch
from workers.cli_console import console
from workers.cli_keys import keys
from workers.cli_options import ANY_CHANNEL, SENT_CHANNEL, STATUS
from workers.cli_providers import provider
from workers.doctor import doctor_command
from workers.flower import flower_command
from workers.metrics import metrics_command


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """Log and dispatch outbound communications with customers."""
    configure_logging(logging.DEBUG if verbose else logging.WARNING)


@main.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    upgrade(container().engine)
    click.echo("database is at the newest revision")


@main.command()
@click.option("--customer", "customer_id", required=True, help="The customer's id.")
@click.option("--channel", type=SENT_CHANNEL, required=True)
@click.option("--template", "template_key", required=True, help="The template key.")
@click.option("--key", "idempotency_key", required=True, help="The idempotency key.")
@click.option("--recipient", default=None, help="Address; the contact directory when omitted.")
@click.option("--payload", default="{}", help="Personalisation, as a JSON object.")
def dispatch(
    customer_id: str,
    channel: str,
    template_key: str,
    idempotency_key: str,
    recipient: str | None,
    payload: str,
) -> None:
    """Send one message, at most once per key."""
    try:
        data: Any = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--payload is not JSON: {exc.msg}") from None
    try:
        result = container().communication.dispatch(
            customer_id, channel, template_key, data, idempotency_key, recipient
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    except TransientDispatchError as exc:
        raise click.ClickException(f"the provider failed, try again later: {exc.reason}") from None
    except Deferred as exc:
        raise click.ClickException(
            f"not sent: the provider cannot take it yet ({exc.hold}); "
            f"the same command again in {exc.wait:.0f} s sends it once"
        ) from None
    record = result.interaction
    line = f"{result.outcome.value}: {record.idempotency_key} is {record.status.value}"
    if record.failure_reason:
        line += f" ({record.failure_reason})"
    click.echo(line)


@main.command()
@click.argument("customer_id")
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--channel", type=ANY_CHANNEL, default=None)
@click.option("--status", type=STATUS, default=None)
@click.option("--cursor", default=None, help="The cursor printed under a previous page.")
def timeline(
    customer_id: str, limit: int, channel: str | None, status: str | None, cursor: str | None
) -> None:
    """Show a customer's interactions, newest first."""
    try:
        page = container().communication.get_history(
            customer_id, limit, cursor=cursor, channel=channel, status=status
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if not page.items:
        click.echo(f"no interactions for {customer_id}")
        return
    click.echo(display.timeline(page.items))
    if page.next_cursor:
        click.echo(f"\nmore: --cursor {page.next_cursor}")


@main.command()
@click.argument("customer_id")
@click.argument("content")
@click.option("--author", required=True, help="Who made the call or the notation.")
def note(customer_id: str, content: str, author: str) -> None:
    """Record a phone call or manual notation on a customer's timeline."""
    try:
        record = container().communication.add_note(customer_id, content, author)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"note {record.interaction_uuid} recorded for {record.customer_id}")


@main.command()
@click.argument("customer_id")
@click.option("--email", default=None)
@click.option("--phone", default=None)
def contact(customer_id: str, email: str | None, phone: str | None) -> None:
    """Put a customer's email address or phone number (or both) in the contact directory."""
    try:
        container().communication.upsert_contact(customer_id, email, phone)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"contact saved for {customer_id}")


@main.command("sent-to")
@click.argument("address")
@click.option("--channel", type=SENT_CHANNEL, default="email", show_default=True)
@click.option("--limit", default=50, show_default=True, type=int)
def sent_to(address: str, channel: str, limit: int) -> None:
    """Show everything sent to ADDRESS, found by its blind index without decrypting."""
    try:
        records = container().communication.find_by_recipient(channel, address, limit)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if not records:
        click.echo("nothing was sent to that address")
        return
    click.echo(display.timeline(records))


@main.command()
def demo() -> None:
    """Run the demonstration on the configured (or embedded) services."""
    try:
        from devtools.demo import run_demo  # noqa: PLC0415 - absent from production installs
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "devtools":
            raise
        raise click.ClickException(
            "the demo needs the development tools: run it from a checkout installed with "
            "the dev extra (pip install -e '.[test,dev]', or make install)"
        ) from None
    run_demo()


def _register() -> None:
    for command in (send_batch, batch_status_command, reconcile_command, keys, api, api_keys):
        main.add_command(command)
    for command in (doctor_command, flower_command, metrics_command, console, provider, batch):
        main.add_command(command)

    main.add_command(archive)


_register()
