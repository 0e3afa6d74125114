"""Command line for bulk sends: ``send-batch``, ``batch-status`` and ``reconcile``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from config.settings import get_settings
from models.base import utcnow
from models.enums import ChannelType
from providers.base import NoProviderForChannel
from services.container import container
from services.errors import InvalidInput
from services.locks import AlreadyRunning, run_exclusively
from services.sending.batch_status import BatchStatus, batch_status
from services.sending.batches import BatchReport, read_csv
from services.sending.pacing import describe
from services.sending.parking import lot_of
from workers import display
from workers.cli_io import EXIT_FAILED, Failed, echo_json, json_option
from workers.cli_options import SENT_CHANNEL

SHOWN_REJECTIONS = 20


def _count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return max(
            0, sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b"")) - 1
        )


def produce(
    batch_id: str, channel: str, template: str, path: Path, key_column: str | None, quiet: bool
) -> BatchReport:
    """Run the producer over a CSV file or stdin (``-``), with a progress bar unless ``quiet``."""
    producer = container().batch_producer
    if str(path) == "-":
        rows = read_csv(sys.stdin.buffer, key_column)
        return producer.run(batch_id, channel, template, rows, source="stdin")
    with path.open("rb") as stream:
        rows = read_csv(stream, key_column)
        if quiet:
            return producer.run(batch_id, channel, template, rows, source=path.name)
        with click.progressbar(length=_count_lines(path), label=f"batch {batch_id}") as bar:
            return producer.run(
                batch_id, channel, template, rows, source=path.name, on_progress=bar.update
            )


@click.command("send-batch")
@click.option("--batch-id", required=True, help="Names the batch; the same id resumes it.")
@click.option("--channel", type=SENT_CHANNEL, required=True, help="The channel to send on.")
@click.option("--template", "template_key", required=True, help="The template key.")
@click.option("--key-column", default=None, help="A column holding each row's idempotency key.")
@click.argument(
    "csv_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
def send_batch(
    batch_id: str, channel: str, template_key: str, key_column: str | None, csv_file: Path
) -> None:
    """Enqueue one dispatch per recipient of CSV_FILE that has not been sent yet.

    CSV_FILE may be ``-`` for standard input. Exits 1 when any row was rejected (the others
    are enqueued all the same).
    """
    try:
        report = produce(batch_id, channel, template_key, csv_file, key_column, quiet=False)
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
    click.echo(
        f"batch {status.batch_id} ({status.channel}, template {status.template_key}), "
        f"{status.runs} run(s): {status.rows} rows, {status.rejected} rejected"
    )
    rows = [(s.value, str(n)) for s, n in sorted(status.by_status.items())]
    click.echo(display.table(("status", "count"), rows))
    click.echo(
        f"progress: {status.finished}/{status.expected} ({status.progress:.0%}); "
        f"in flight {status.in_flight}, released for retry {status.released}, "
        f"held for reconciliation or a person {status.held}; "
        f"no outcome after {get_settings().unknown_after_hours:g} h {status.outcome_unknown}"
    )
    held = provider_hold(status.channel)
    if held:
        click.echo(held)


def status_document(status: BatchStatus) -> dict[str, object]:
    """A batch's status as JSON fields, with its progress and what holds its provider."""
    document = dataclasses.asdict(status)
    document["by_status"] = {s.value: n for s, n in sorted(status.by_status.items())}
    document.update(
        finished=status.finished,
        progress=status.progress,
        provider_hold=provider_hold(status.channel),
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
