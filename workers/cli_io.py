"""What the command line shares: exit codes, ``--json`` output, values read from stdin."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# The exit codes every command keeps (documented in docs/cli.md).
EXIT_OK = 0
EXIT_FAILED = 1  # it ran, and what it reports is a failure: FAILED, rejected rows, no batch
EXIT_USAGE = 2  # the arguments or the input were refused; nothing was done
EXIT_TRY_LATER = 3  # nothing was done; the same command later may succeed


class TryLater(click.ClickException):
    """Nothing was done, for a reason that passes: the same command later may succeed."""

    exit_code = EXIT_TRY_LATER


class Failed(click.ClickException):
    """The command ran and what it reports is a failure."""

    exit_code = EXIT_FAILED


def json_option(command: F) -> F:
    """The ``--json`` flag: print one JSON document on standard output instead of text."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(command)


def _plain(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def echo_json(document: object) -> None:
    """Print ``document`` as indented JSON; dates, enums and UUIDs as strings."""
    click.echo(json.dumps(document, default=_plain, indent=2, ensure_ascii=False))


def record_document(record: Any, mask: Callable[[str | None], str]) -> dict[str, Any]:
    """An interaction record as JSON fields: the address masked, a note's text kept."""
    fields = dataclasses.asdict(record)
    fields["recipient"] = mask(record.recipient) or None
    return fields


def read_value(given: str | None, label: str, *, hide: bool = False) -> str:
    """``given``, or when it is ``-`` or absent, a line from stdin or a prompt at a terminal.

    Addresses and passwords read this way stay out of the shell's history and ``ps``.
    """
    if given is not None and given != "-":
        return given
    if sys.stdin.isatty():
        return str(click.prompt(label, hide_input=hide))
    line = sys.stdin.readline().strip()
    if not line:
        raise click.UsageError(f"{label}: expected on standard input, and none came")
    return line
