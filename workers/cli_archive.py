"""Command line for retention: ``interactions archive run|list|verify|restore|purge|hold``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.archive import ArchiveState
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.months import parse_month
from services.archive.jobs import legal_holds
from services.archive.jobs.audit import verify_archive
from services.archive.jobs.janitor import Janitor
from services.archive.jobs.lock import ArchiveBusy, ArchiveUnsupported, archive_lock
from services.archive.jobs.restore import restore_month
from services.archive.jobs.retention_purge import describe_retention, purge_expired
from services.archive.stores.port import ArchiveStore
from services.container import container
from services.errors import InvalidInput
from workers import display
from workers.cli_io import echo_json, json_option


def _month(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_month(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


@contextmanager
def _locked() -> Iterator[tuple[Engine, ArchiveStore]]:
    """The engine and store, with the archive lock held; a clear error when it cannot be."""
    here = container()
    try:
        with archive_lock(here.engine):
            yield here.engine, here.archive_store
    except (ArchiveBusy, ArchiveUnsupported) as exc:
        raise click.ClickException(str(exc)) from None
    except sa.exc.DBAPIError as exc:
        # Each window commits or rolls back whole: what was moved stays moved, nothing is lost.
        raise click.ClickException(
            f"the database went away ({type(exc.orig).__name__}); nothing is lost: "
            "run the command again once it answers"
        ) from None


@click.group("archive")
def archive() -> None:
    """Move interactions past the hot retention to cold storage, and read them back."""


@archive.command("run")
@click.option("--dry-run", is_flag=True, help="Show what would move, and move nothing.")
@click.option("--before", callback=_moment, help="Cutoff (YYYY-MM-DD, UTC); default: retention.")
def run_command(dry_run: bool, before: datetime | None) -> None:
    """Archive every settled interaction created before the cutoff, with its events."""
    settings = get_settings()
    with _locked() as (engine, store):
        janitor = Janitor(engine, store, settings)
        cutoff = before or janitor.cutoff()
        plan = janitor.plan(cutoff)
        click.echo(
            f"cutoff {cutoff:%Y-%m-%d %H:%M:%S} UTC: {plan.expired:,} interactions to archive, "
            f"{plan.pending:,} pending kept in the database"
        )
        if dry_run:
            rows = [(f"{m.month:%Y-%m}", f"{m.settled:,}", f"{m.pending:,}") for m in plan.months]
            if rows:
                click.echo(display.table(("month", "would archive", "pending, kept"), rows))
            click.echo(f"dry run: nothing moved; files would go to {store.url}")
            return
        with click.progressbar(length=max(plan.expired, 1), label="archiving") as bar:
            report = janitor.run(cutoff, on_progress=bar.update)
    rate = report.interactions / report.seconds if report.seconds else 0.0
    click.echo(
        f"archived {report.interactions:,} interactions and {report.events:,} events into "
        f"{report.files_written + report.files_reused} files ({report.files_reused} reused from "
        f"an earlier run) in {report.seconds:.1f} s ({rate:,.0f} interactions/s)"
    )
    if report.leftovers_removed:
        click.echo(f"removed {report.leftovers_removed} files an interrupted run left behind")
    for problem in report.blocked:
        click.echo(f"blocked, rows kept in the database: {problem}", err=True)
    if report.blocked:
        sys.exit(1)


@archive.command("list")
@click.option("--month", callback=_month, help="Only this month (YYYY-MM).")
@click.option(
    "--state",
    type=click.Choice([s.value for s in ArchiveState]),
    default=None,
    help="Only files in this state.",
)
@json_option
def list_command(month: date | None, state: str | None, as_json: bool) -> None:
    """List the archived files and what each holds."""
    engine = container().engine
    with Session(engine) as session:
        rows = manifest_rows.listing(session, month, ArchiveState(state) if state else None)
    if as_json:
        fields = ("month", "state", "row_count", "event_count", "byte_size", "first_id", "last_id")
        echo_json(
            {"files": [{"key": r.object_key, **{f: getattr(r, f) for f in fields}} for r in rows]}
        )
        return
    if not rows:
        click.echo("no archived files")
        return
    table = [
        (
            f"{r.month:%Y-%m}",
            r.state.value,
            f"{r.row_count:,}",
            f"{r.event_count:,}",
            _size(r.byte_size),
            f"{r.first_id}-{r.last_id}",
            r.object_key,
        )
        for r in rows
    ]
    headers = ("month", "state", "rows", "events", "size", "ids", "key")
    click.echo(display.table(headers, table))
    archived = sum(r.row_count for r in rows if r.state is ArchiveState.ARCHIVED)
    click.echo(f"{len(rows)} files; {archived:,} interactions archived")


@archive.command("verify")
@click.option("--month", callback=_month, help="Only this month (YYYY-MM).")
def verify_command(month: date | None) -> None:
    """Re-hash every archived file against its manifest."""
    engine = container().engine

    def shown(key: str, problem: str | None) -> None:
        click.echo(f"ok      {key}" if problem is None else f"FAILED  {problem}")

    report = verify_archive(engine, container().archive_store, month, on_file=shown)
    for key in report.unrecorded:
        click.echo(f"unrecorded  {key} (an interrupted run's; the next run removes it)")
    click.echo(
        f"{report.checked} files, {report.rows:,} interactions checked: "
        f"{report.checked - len(report.failed)} ok, {len(report.failed)} failed"
    )
    if not report.ok:
        sys.exit(1)


@archive.command("restore")
@click.option("--month", callback=_month, required=True, help="The month to restore (YYYY-MM).")
def restore_command(month: date) -> None:
    """Put an archived month back into the tables (running it again changes nothing)."""
    with _locked() as (engine, store):
        report = restore_month(engine, store, month)
    click.echo(
        f"restored {report.files} files of {month:%Y-%m}: {report.interactions:,} interactions, "
        f"{report.events:,} events ({report.already_present:,} already present, "
        f"{report.already_restored} files restored before)"
    )
    for problem in report.failed:
        click.echo(f"not restored: {problem}", err=True)
    if report.failed:
        sys.exit(1)


@archive.command("purge")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, and delete nothing.")
def purge_command(dry_run: bool) -> None:
    """Delete archived files past the cold retention, except those under a legal hold."""
    settings = get_settings()
    with _locked() as (engine, store):
        report = purge_expired(engine, store, settings, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    for decision in report.decisions:
        action = verb if decision.purge else "keep"
        click.echo(f"{action:<12} {decision.key} ({decision.rows:,} rows): {decision.reason}")
    for waiting in report.waiting:
        click.echo(
            f"{'not yet':<12} {waiting.key} ({waiting.rows:,} rows): "
            f"eligible on {waiting.eligible_on:%Y-%m-%d}"
        )
    count = len(report.decisions) - len(report.kept)
    click.echo(
        f"{count} files {verb}, {len(report.kept)} kept by legal holds "
        f"(months before {report.before_month:%Y-%m} are past the retention: "
        f"{describe_retention(settings)})"
    )
    click.echo(
        f"{report.disclosures} staff disclosures {verb} (made before the "
        f"{settings.archive_hot_months} months hot, outside legal holds)"
    )


@archive.group("hold")
def hold() -> None:
    """Legal holds: keep a customer's or a month's archive past the cold retention."""


@hold.command("add")
@click.option("--customer", "customer_id", default=None, help="The customer to hold.")
@click.option("--month", callback=_month, help="The month to hold (YYYY-MM).")
@click.option("--by", "placed_by", required=True, help="Who places the hold.")
@click.option("--reason", required=True, help="Why, e.g. the case or request it serves.")
def hold_add(customer_id: str | None, month: date | None, placed_by: str, reason: str) -> None:
    """Place a legal hold."""
    sessions = container().sessions
    try:
        placed = legal_holds.place(
            sessions, customer_id=customer_id, month=month, placed_by=placed_by, reason=reason
        )
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"placed {legal_holds.describe(placed)}")


@hold.command("list")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
def hold_list(show_all: bool) -> None:
    """List the legal holds in force."""
    sessions = container().sessions
    found = legal_holds.every(sessions) if show_all else legal_holds.active(sessions)
    if not found:
        click.echo("no legal holds")
        return
    for placed in found:
        released = (
            f" (released by {placed.released_by} {placed.released_at:%Y-%m-%d})"
            if placed.released_at
            else ""
        )
        click.echo(f"{legal_holds.describe(placed)}; placed {placed.placed_at:%Y-%m-%d}{released}")


@hold.command("release")
@click.argument("hold_id", type=int)
@click.option("--by", "released_by", required=True, help="Who releases the hold.")
def hold_release(hold_id: int, released_by: str) -> None:
    """Release a legal hold; it stays on record."""
    sessions = container().sessions
    try:
        released = legal_holds.release(sessions, hold_id, released_by)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"released {legal_holds.describe(released)}")
