"""Command line for bulk sends: ``send-batch``, ``batch-status`` and ``reconcile``."""

from __future__ import annotations

import dataclasses
import functools
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from config.settings import get_settings
from models.base import utcnow
from models.batch import BatchState
from models.enums import ChannelType, InteractionStatus
from providers.base import NoProviderForChannel
from services.callbacks import inbox
from services.container import container
from services.errors import InvalidInput
from services.locks import AlreadyRunning, run_exclusively
from services.sending.batch_control import actions
from services.sending.batch_status import BatchStatus, batch_status
from services.sending.batches import BatchReport, read_csv
from services.sending.pacing import describe
from services.sending.parking import batch_lot, lot_of
from workers import display
from workers.cli_io import EXIT_FAILED, Failed, echo_json, json_option
from workers.cli_options import SENT_CHANNEL, operator

SHOWN_REJECTIONS = 20


def _count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return max(
            0, sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b"")) - 1
        )


def produce(
    batch_id: str,
    channel: str,
    template: str,
    path: Path,
    key_column: str | None,
    quiet: bool,
    not_before: datetime | None = None,
    reply_to_id: str | None = None,
    started_by: str | None = None,
) -> BatchReport:
    """Run the producer over a CSV file or stdin (``-``), with a progress bar unless ``quiet``.

    ``started_by`` is recorded in the batch's history; by default the operating-system user.
    """
    run = functools.partial(
        container().batch_producer.run,
        not_before=not_before,
        reply_to_id=reply_to_id,
        started_by=started_by or operator(),
    )
    if str(path) == "-":
        return run(
            batch_id, channel, template, read_csv(sys.stdin.buffer, key_column), source="stdin"
        )
    with path.open("rb") as stream:
        rows = read_csv(stream, key_column)
        if quiet:
            return run(batch_id, channel, template, rows, source=path.name)
        with click.progressbar(length=_count_lines(path), label=f"batch {batch_id}") as bar:
            return run(batch_id, channel, template, rows, source=path.name, on_progress=bar.update)


def _moment(_: click.Context, __: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time with its zone (2026-12-24T09:00-08:00), kept in UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise click.BadParameter("say the time zone, e.g. 2026-12-24T09:00-08:00 or ...Z")
    return moment.astimezone(UTC)


@click.command("send-batch")
@click.option("--batch-id", required=True, help="Names the batch; the same id resumes it.")
@click.option("--channel", type=SENT_CHANNEL, required=True, help="The channel to send on.")
@click.option("--template", "template_key", required=True, help="The template key.")
@click.option("--key-column", default=None, help="A column holding each row's idempotency key.")
@click.option(
    "--not-before",
    callback=_moment,
    help="Send nothing before this time (ISO 8601 with its zone); the batch waits, parked.",
)
@click.option(
    "--reply-to-id",
    default=None,
    help="Notify's email reply-to id (or SMS sender id) for this batch, over the template's.",
)
@click.option(
    "--by",
    "started_by",
    default=None,
    help="Who runs it, for the batch's history (default: the operating-system user).",
)
@click.argument(
    "csv_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
def send_batch(
    batch_id: str,
    channel: str,
    template_key: str,
    key_column: str | None,
    not_before: datetime | None,
    reply_to_id: str | None,
    started_by: str | None,
    csv_file: Path,
) -> None:
    """Enqueue one dispatch per recipient of CSV_FILE that has not been sent yet.

    CSV_FILE may be ``-`` for standard input. Exits 1 when any row was rejected (the others
    are enqueued all the same). Running it again with the same batch id resumes the batch; each
    run is recorded with who ran it.
    """
    try:
        report = produce(
            batch_id,
            channel,
            template_key,
            csv_file,
            key_column,
            False,
            not_before,
            reply_to_id,
            started_by,
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(
        f"batch {report.batch_id}: {report.rows} rows, {report.enqueued} enqueued, "
        f"{report.already_sent} already sent, {report.duplicates} duplicate, "
        f"{report.rejected} rejected"
    )
    for rejection in report.rejections[:SHOWN_REJECTIONS]:
        click.echo(f"  line {rejection.line}: {rejection.reason}", err=True)
    if report.rejected > SHOWN_REJECTIONS:
        click.echo(f"  ... and {report.rejected - SHOWN_REJECTIONS} more", err=True)
    if report.rejected:
        raise SystemExit(EXIT_FAILED)


@click.command("batch-status")
@click.argument("batch_id")
@json_option
def batch_status_command(batch_id: str, as_json: bool) -> None:
    """Show a batch's totals by status and its progress."""
    sessions = container().sessions
    try:
        status = batch_status(sessions, batch_id, utcnow())
    except InvalidInput as exc:
        if exc.field == "batch_id":
            raise Failed(str(exc)) from None  # exit 1: no such batch
        raise click.UsageError(str(exc)) from None
    if as_json:
        echo_json(status_document(status))
        return
    starter = status.started_by or "not recorded"
    click.echo(
        f"batch {status.batch_id} ({status.channel}, template {status.template_key}), "
        f"started by {starter}, {status.runs} run(s): {status.rows} rows, "
        f"{status.rejected} rejected"
    )
    rows = [(s.value, str(n)) for s, n in sorted(status.by_status.items())]
    click.echo(display.table(("status", "count"), rows))
    click.echo(
        f"progress: {status.finished}/{status.expected} ({status.progress:.0%}); "
        f"in flight {status.in_flight}, released for retry {status.released}, "
        f"held for reconciliation or a person {status.held}; "
        f"no outcome after {get_settings().unknown_after_hours:g} h {status.outcome_unknown}"
    )
    if status.suppressed:
        click.echo(f"failed as suppressed (the provider never called): {status.suppressed}")
    for line in steering_lines(status.batch_id, status.expected, status.by_status):
        click.echo(line)
    held = provider_hold(status.channel)
    if held:
        click.echo(held)
    rejected = inbox.rejected_count(sessions)
    if rejected:
        click.echo(
            f"provider callbacks rejected (all batches; kept with the reason, never applied): "
            f"{rejected}"
        )


def steering_lines(
    batch_id: str, expected: int, by_status: dict[InteractionStatus, int]
) -> list[str]:
    """What an operator did to the batch: its state, its schedule, what was cancelled."""
    here = container()
    steering = here.batch_gate.steering(batch_id)
    lines = []
    if steering is not None:
        lines.append(f"state: {steering.state.value}")
        if steering.not_before is not None and steering.not_before > utcnow():
            lines.append(f"scheduled for {steering.not_before:%Y-%m-%d %H:%M:%S} UTC")
        if steering.state is BatchState.CANCELLED:
            claimed = sum(by_status.values())
            lines.append(f"cancelled, never sent: {max(0, expected - claimed)}")
    lots = here.parking
    waiting = lots.count(batch_lot(batch_id)) if lots is not None else 0
    if waiting:
        lines.append(f"parked until resumed or due: {waiting}")
    for action in actions(here.sessions, batch_id):
        why = f": {action.reason}" if action.reason else ""
        lines.append(f"  {action.at:%Y-%m-%d %H:%M:%S} UTC {action.action} by {action.actor}{why}")
    return lines


def status_document(status: BatchStatus) -> dict[str, object]:
    """A batch's status as JSON fields, with its progress and what holds its provider."""
    document = dataclasses.asdict(status)
    document["by_status"] = {s.value: n for s, n in sorted(status.by_status.items())}
    document.update(
        finished=status.finished,
        progress=status.progress,
        provider_hold=provider_hold(status.channel),
        steering=steering_lines(status.batch_id, status.expected, status.by_status),
    )
    return document


def provider_hold(channel: str) -> str | None:
    """What holds the sends of the provider behind ``channel``, with the messages parked."""
    here = container()
    try:
        paced = here.providers.for_channel(ChannelType(channel))
    except (ValueError, NoProviderForChannel):
        return None
    if paced.credential is None:
        return None
    held = describe(paced.name, here.pacer.state(paced.credential), channel)
    if held is None:
        return None
    lots = here.parking
    parked = lots.count(lot_of(paced.credential, channel)) if lots is not None else 0
    return f"{held}; {parked} messages parked until then" if parked else held


@click.command("reconcile")
def reconcile_command() -> None:
    """Run one reconciliation pass now (beat runs it every minute)."""
    here = container()
    try:
        report = run_exclusively(here.engine, "reconcile_claims", here.reconciler().run)
    except AlreadyRunning:
        raise click.ClickException("a reconciliation is already running") from None
    click.echo(
        f"confirmed sent {report.confirmed_sent}, released {report.released}, "
        f"requeued {report.requeued}, held {report.held}, lookup errors {report.lookup_errors}"
    )
