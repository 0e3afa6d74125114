"""Command line for the suppression list: ``suppression list|check|add|remove``.

An address is read from standard input or a hidden prompt, never from the arguments, so it
stays out of the shell's history and the process list.
"""

from __future__ import annotations

import sys

import click

from services.container import container
from services.errors import InvalidInput
from services.sending.suppression import SuppressionRecord
from workers import display
from workers.cli_options import operator

ACTOR_HELP = "Who does it, for the suppression's history (default: the signed-in user)."
CHANNEL_OPTION = click.option(
    "--channel",
    type=click.Choice(["email", "sms"]),
    default="email",
    show_default=True,
    help="The channel the address is suppressed for.",
)


@click.group("suppression")
def suppression() -> None:
    """Addresses no message goes to after a permanent delivery failure, and their lifting."""


def read_address() -> str:
    """The address from standard input when it is piped in, else from a hidden prompt."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if not line:
            raise click.UsageError("no address on standard input")
        return line
    return str(click.prompt("Address", hide_input=True)).strip()


def describe(record: SuppressionRecord) -> str:
    """One suppression in a sentence, without the address."""
    source = (
        f" (interaction {record.source_interaction_uuid})" if record.source_interaction_uuid else ""
    )
    by = f" by {record.added_by}" if record.added_by else ""
    return (
        f"suppressed on {record.channel.value} since {record.suppressed_at:%Y-%m-%d %H:%M} UTC: "
        f"{record.reason}{by}{source}; until {record.expires_at:%Y-%m-%d}"
    )


@suppression.command("list")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many, newest first.",
)
def list_command(limit: int) -> None:
    """The suppressions in force, newest first (addresses are kept only as a blind index)."""
    records = container().suppressions.in_force(limit)
    if not records:
        click.echo("no address is suppressed")
        return
    rows = [
        (
            r.channel.value,
            f"{r.suppressed_at:%Y-%m-%d %H:%M}",
            f"{r.expires_at:%Y-%m-%d}",
            r.reason,
            r.source,
            str(r.source_interaction_uuid or r.added_by or ""),
        )
        for r in records
    ]
    headers = ("channel", "since (UTC)", "until", "reason", "source", "interaction or by")
    click.echo(display.table(headers, rows))


@suppression.command("check")
@CHANNEL_OPTION
def check_command(channel: str) -> None:
    """Say whether the address read from standard input (or a prompt) is suppressed."""
    try:
        record = container().suppressions.status(channel, read_address())
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(describe(record) if record else "not suppressed")


@suppression.command("add")
@CHANNEL_OPTION
@click.option("--by", "actor", default=None, help=ACTOR_HELP)
def add_command(channel: str, actor: str | None) -> None:
    """Suppress the address read from standard input (or a prompt) for the configured days."""
    try:
        record = container().suppressions.add(channel, read_address(), actor or operator())
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(describe(record))


@suppression.command("remove")
@CHANNEL_OPTION
@click.option("--reason", required=True, help="Why it is lifted, kept (sealed) in its history.")
@click.option("--by", "actor", default=None, help=ACTOR_HELP)
def remove_command(channel: str, reason: str, actor: str | None) -> None:
    """Lift the suppression of the address read from standard input (or a prompt)."""
    try:
        lifted = container().suppressions.lift(channel, read_address(), actor or operator(), reason)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if not lifted:
        raise click.ClickException("that address is not suppressed")
    click.echo("suppression lifted; messages go to the address again")
