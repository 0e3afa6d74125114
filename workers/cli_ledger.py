"""Command line for the ledger: migrate, dispatch, timeline, note, contact, sent-to, demo."""

from __future__ import annotations

import json
from typing import Any

import click

from models.migrate import upgrade
from services.container import container
from services.errors import Deferred, InvalidInput, TransientDispatchError
from services.records import DispatchOutcome
from services.sending.communication import AUTHOR_NOT_GIVEN
from workers import display
from workers.cli_io import (
    EXIT_FAILED,
    TryLater,
    echo_json,
    json_option,
    read_value,
    record_document,
)
from workers.cli_keys import report_reindex
from workers.cli_options import ANY_CHANNEL, SENT_CHANNEL, STATUS


@click.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    upgrade(container().engine)
    click.echo("database is at the newest revision")
    # Data that the schema changes leave to fill in, outside their locks, committed per batch.
    report_reindex()


@click.command()
@click.option("--customer", "customer_id", required=True, help="The customer's id.")
@click.option("--channel", type=SENT_CHANNEL, required=True, help="The channel to send on.")
@click.option("--template", "template_key", required=True, help="The template key.")
@click.option("--key", "idempotency_key", required=True, help="The idempotency key.")
@click.option(
    "--recipient",
    default=None,
    help="The address; '-' reads it from stdin (or asks); the contact directory when omitted.",
)
@click.option("--payload", default="{}", help="Personalisation, as a JSON object.")
@json_option
def dispatch(
    customer_id: str,
    channel: str,
    template_key: str,
    idempotency_key: str,
    recipient: str | None,
    payload: str,
    as_json: bool,
) -> None:
    """Send one message, at most once per key; exit 1 when it ends FAILED."""
    try:
        data: Any = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--payload is not JSON: {exc.msg}") from None
    address = read_value(recipient, "recipient") if recipient == "-" else recipient
    try:
        result = container().communication.dispatch(
            customer_id, channel, template_key, data, idempotency_key, address
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    except TransientDispatchError as exc:
        raise TryLater(f"the provider failed, try again later: {exc.reason}") from None
    except Deferred as exc:
        raise TryLater(
            f"not sent: the provider cannot take it yet ({exc.hold}); "
            f"the same command again in {exc.wait:.0f} s sends it once"
        ) from None
    record = result.interaction
    if as_json:
        echo_json(
            {"outcome": result.outcome.value, "interaction": record_document(record, display.mask)}
        )
    else:
        line = f"{result.outcome.value}: {record.idempotency_key} is {record.status.value}"
        if record.failure_reason:
            line += f" ({record.failure_reason})"
        click.echo(line)
    if result.outcome is DispatchOutcome.FAILED:
        raise SystemExit(EXIT_FAILED)


@click.command()
@click.argument("customer_id")
@click.option("--limit", default=50, show_default=True, type=int, help="At most this many.")
@click.option("--channel", type=ANY_CHANNEL, default=None, help="Only this channel.")
@click.option("--status", type=STATUS, default=None, help="Only this status.")
@click.option("--cursor", default=None, help="The cursor printed under a previous page.")
@json_option
def timeline(
    customer_id: str,
    limit: int,
    channel: str | None,
    status: str | None,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Show a customer's interactions, newest first."""
    try:
        page = container().communication.get_history(
            customer_id, limit, cursor=cursor, channel=channel, status=status
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        items = [record_document(record, display.mask) for record in page]
        echo_json({"items": items, "next_cursor": page.next_cursor})
        return
    if not page.items:
        click.echo(f"no interactions for {customer_id}")
        return
    click.echo(display.timeline(page.items))
    if page.next_cursor:
        click.echo(f"\nmore: --cursor {page.next_cursor}")


@click.command()
@click.argument("customer_id")
@click.argument("content")
@click.option(
    "--author", default=None, help="Who made the call or the notation; recorded as not given."
)
def note(customer_id: str, content: str, author: str | None) -> None:
    """Record a phone call or manual notation on a customer's timeline."""
    try:
        record = container().communication.add_note(
            customer_id, content, author=author or AUTHOR_NOT_GIVEN
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"note {record.interaction_uuid} recorded for {record.customer_id}")


@click.command()
@click.argument("customer_id")
@click.option("--email", default=None, help="The email address; '-' reads it from stdin.")
@click.option("--phone", default=None, help="The phone number; '-' reads it from stdin.")
def contact(customer_id: str, email: str | None, phone: str | None) -> None:
    """Put a customer's email address or phone number (or both) in the contact directory."""
    email = read_value(email, "email") if email == "-" else email
    phone = read_value(phone, "phone") if phone == "-" else phone
    try:
        container().communication.upsert_contact(customer_id, email, phone)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"contact saved for {customer_id}")


@click.command("sent-to")
@click.argument("address", required=False)
@click.option(
    "--channel",
    type=SENT_CHANNEL,
    default="email",
    show_default=True,
    help="The channel the address belongs to.",
)
@click.option("--limit", default=50, show_default=True, type=int, help="At most this many.")
@json_option
def sent_to(address: str | None, channel: str, limit: int, as_json: bool) -> None:
    """Show everything sent to ADDRESS (read from stdin, or asked, when omitted or '-')."""
    wanted = read_value(address, "address")
    try:
        records = container().communication.find_by_recipient(channel, wanted, limit)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        echo_json({"items": [record_document(record, display.mask) for record in records]})
        return
    if not records:
        click.echo("nothing was sent to that address")
        return
    click.echo(display.timeline(records))


@click.command()
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
