"""Command line to steer a batch: ``batch pause|resume|cancel ID`` and ``batch list``."""

from __future__ import annotations

import click
import sqlalchemy as sa

from models.batch import Batch
from models.interaction import CustomerInteraction
from services.container import container
from services.errors import InvalidInput
from services.sending.batch_control import change_state
from services.sending.parking import batch_lot, release_batch
from workers import display
from workers.cli_options import operator

ACTOR_HELP = "Who does it, for the batch's history (default: the signed-in user)."


@click.group("batch")
def batch() -> None:
    """Steer a bulk send: pause, resume or cancel it, and list recent batches."""


def _steer(action: str, batch_id: str, reason: str | None, actor: str | None) -> None:
    here = container()
    try:
        change = change_state(
            here.sessions, here.batch_gate, batch_id, action, actor or operator(), reason
        )
    except InvalidInput as exc:
        raise click.ClickException(exc.message) from None
    if not change.changed:
        click.echo(f"batch {batch_id} is already {change.after.value}")
        return
    click.echo(f"batch {batch_id}: {change.before.value} -> {change.after.value}")
    lots = here.parking
    if lots is None:
        return
    if action == "resume":
        released = release_batch(lots, batch_id, here.batch_gate, here.publisher)
        click.echo(f"{released} parked messages published again")
    elif action == "cancel":
        dropped = lots.count(batch_lot(batch_id))
        release_batch(lots, batch_id, here.batch_gate, here.publisher)
        click.echo(f"{dropped} parked messages dropped; queued ones are dropped as they come")


@batch.command("pause")
@click.argument("batch_id")
@click.option("--reason", default=None, help="Why, for the batch's history.")
@click.option("--by", "actor", default=None, help=ACTOR_HELP)
def pause(batch_id: str, reason: str | None, actor: str | None) -> None:
    """Hold a batch: its messages wait, parked, claimed by no one, until it is resumed."""
    _steer("pause", batch_id, reason, actor)


@batch.command("resume")
@click.argument("batch_id")
@click.option("--reason", default=None, help="Why, for the batch's history.")
@click.option("--by", "actor", default=None, help=ACTOR_HELP)
def resume(batch_id: str, reason: str | None, actor: str | None) -> None:
    """Let a paused batch send again; its parked messages go out at once."""
    _steer("resume", batch_id, reason, actor)


@batch.command("cancel")
@click.argument("batch_id")
@click.option("--reason", default=None, help="Why, for the batch's history.")
@click.option("--by", "actor", default=None, help=ACTOR_HELP)
def cancel(batch_id: str, reason: str | None, actor: str | None) -> None:
    """Stop a batch for good: what was not claimed yet is never sent."""
    _steer("cancel", batch_id, reason, actor)


@batch.command("list")
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
def list_command(limit: int) -> None:
    """Recent batches: id, channel, template, created, totals by status, state."""
    table = CustomerInteraction
    with container().sessions() as session:
        batches = session.scalars(
            sa.select(Batch).order_by(Batch.created_at.desc()).limit(limit)
        ).all()
        counts = session.execute(
            sa.select(table.batch_id, table.status, sa.func.count())
            .where(table.batch_id.in_([b.id for b in batches]))
            .group_by(table.batch_id, table.status)
        ).all()
    totals: dict[str, dict[str, int]] = {}
    for batch_id, status, count in counts:
        totals.setdefault(str(batch_id), {})[status.value] = int(count)
    rows = []
    for found in batches:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(totals.get(found.id, {}).items()))
        state = found.state.value
        if found.not_before is not None:
            state += f" (not before {found.not_before:%Y-%m-%d %H:%M} UTC)"
        created = f"{found.created_at:%Y-%m-%d %H:%M}"
        rows.append((found.id, found.channel.value, found.template_key, created, shown, state))
    header = ("batch", "channel", "template", "created", "by status", "state")
    click.echo(display.table(header, rows))
