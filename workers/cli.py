"""The ``interactions`` command line: each subcommand is imported only when it runs."""

from __future__ import annotations

import importlib
import logging
import textwrap
from typing import Any

import click

# name -> (module:attribute, one-line help). Importing a command loads the service (SQLAlchemy,
# Celery, pydantic), so ``--help`` answers from this table without importing any of them;
# tests/unit/test_cli_lazy.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": (
        "workers.cli_ledger:migrate",
        "Upgrade the database schema to the newest revision.",
    ),
    "dispatch": (
        "workers.cli_ledger:dispatch",
        "Send one message, at most once per key; exit 1 when it ends FAILED.",
    ),
    "timeline": (
        "workers.cli_ledger:timeline",
        "Show a customer's interactions, newest first.",
    ),
    "note": (
        "workers.cli_ledger:note",
        "Record a phone call or manual notation on a customer's timeline.",
    ),
    "contact": (
        "workers.cli_ledger:contact",
        "Put a customer's email address or phone number (or both) in the contact directory.",
    ),
    "sent-to": (
        "workers.cli_ledger:sent_to",
        "Show everything sent to ADDRESS (read from stdin, or asked, when omitted or '-').",
    ),
    "demo": (
        "workers.cli_ledger:demo",
        "Run the demonstration on the configured (or embedded) services.",
    ),
    "send-batch": (
        "workers.cli_batches:send_batch",
        "Enqueue one dispatch per recipient of CSV_FILE that has not been sent yet.",
    ),
    "batch-status": (
        "workers.cli_batches:batch_status_command",
        "Show a batch's totals by status and its progress.",
    ),
    "reconcile": (
        "workers.cli_batches:reconcile_command",
        "Run one reconciliation pass now (beat runs it every minute).",
    ),
    "keys": (
        "workers.cli_keys:keys",
        "Manage the keys that seal personal data.",
    ),
    "doctor": (
        "workers.doctor:doctor_command",
        "Check every dependency the running stack needs; exit 1 naming each failure.",
    ),
    "flower": (
        "workers.flower:flower_command",
        "Run Flower on the configured broker, with basic auth from the environment.",
    ),
    "metrics": (
        "workers.metrics:metrics_command",
        "Print this host's metrics in Prometheus' text format, or write them to a file.",
    ),
    "console": (
        "workers.cli_console:console",
        "The support console for staff (a web app).",
    ),
    "provider": (
        "workers.cli_providers:provider",
        "What holds each provider's sends (a limit, a refused key, an outage), and lifting it.",
    ),
    "archive": (
        "workers.cli_archive:archive",
        "Move interactions past the hot retention to cold storage, and read them back.",
    ),
    "batch": (
        "workers.cli_batch_controls:batch",
        "Steer a bulk send: pause, resume or cancel it, and list recent batches.",
    ),
    "api": (
        "workers.cli_api:api",
        "The HTTP API for other services: send, steer batches, read timelines, add notes.",
    ),
    "api-keys": (
        "workers.cli_api:api_keys",
        "Keys that calling services use on the HTTP API.",
    ),
    "suppression": (
        "workers.cli_suppression:suppression",
        "Addresses no message goes to after a permanent delivery failure, and their lifting.",
    ),
}

EXIT_CODES = """\b
Exit codes: 0 done; 1 it ran and reports a failure (a FAILED message, rejected rows, no such
batch, a failed check); 2 refused arguments or input, nothing done; 3 nothing done for now
(the provider is busy or down, a run is already going): the same command later may succeed."""


class LazyGroup(click.Group):
    """A group whose subcommands are imported when one is run or asked for its help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, sorted."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand, imported now."""
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The subcommands and their one-line help, from the table: nothing is imported."""
        with formatter.section("Commands"):
            limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
            rows = [
                (name, textwrap.shorten(COMMANDS[name][1], limit, placeholder="..."))
                for name in COMMANDS
            ]
            formatter.write_dl(sorted(rows))

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a misspelt setting is one line, not a traceback."""
        try:
            return super().invoke(ctx)
        except ValueError as exc:
            from config.settings import UnknownSetting  # noqa: PLC0415 - pydantic only when run

            if isinstance(exc, UnknownSetting):
                raise click.ClickException(str(exc)) from None
            raise


@click.group(
    cls=LazyGroup,
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="interaction-service", prog_name="interactions")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """Log and dispatch outbound communications with customers."""
    from config.logging import configure_logging  # noqa: PLC0415 - settings load on first run

    configure_logging(logging.DEBUG if verbose else logging.WARNING)
