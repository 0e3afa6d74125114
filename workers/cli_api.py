"""``interactions api`` (serve the HTTP API, write its document) and ``interactions api-keys``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from services.clients.identity import parse_scopes
from services.container import container
from services.errors import InvalidInput
from workers.api import create_app
from workers.api_openapi import document
from workers.gunicorn_commands import api_command


@click.group()
def api() -> None:
    """The HTTP API for other services: send, steer batches, read timelines, add notes."""


@api.command()
@click.option("--bind", default="127.0.0.1:8002", show_default=True, help="host:port to serve.")
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per process.")
def serve(bind: str, workers: int, threads: int) -> None:
    """Serve the API with gunicorn (put it behind your TLS reverse proxy)."""
    command = api_command(bind, workers, threads)
    os.execv(command[0], command)  # noqa: S606 - our own gunicorn, argv built above


@api.command("openapi")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the document to this file instead of standard output.",
)
def openapi_command(output: Path | None) -> None:
    """Write the OpenAPI document (to stdout, or to --output)."""
    text = openapi_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


def openapi_text() -> str:
    """The document as checked in at docs/openapi.json."""
    return json.dumps(document(create_app()), indent=2, sort_keys=False) + "\n"


@click.group("api-keys")
def api_keys() -> None:
    """Keys that calling services use on the HTTP API."""


@api_keys.command()
@click.argument("client")
@click.option("--scope", "scopes", required=True, help="Comma-separated: send,read,notes.")
def create(client: str, scopes: str) -> None:
    """Make a key for CLIENT; it is shown once and stored only as a hash."""
    try:
        made = container().api_keys.create(client, parse_scopes(scopes))
    except (ValueError, InvalidInput) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(made.secret)
    click.echo(
        f"key {made.key_id} for {made.client} ({','.join(sorted(made.scopes))}); "
        "it is shown this once",
        err=True,
    )


@api_keys.command("list")
@click.option("--client", default=None, help="Only this client's keys.")
def list_command(client: str | None) -> None:
    """Every key with its client, scopes, creation, last use and revocation."""
    rows = container().api_keys.listing(client)
    if not rows:
        click.echo("no keys")
        return
    for row in rows:
        used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "live"
        click.echo(
            f"{row.key_id}  {row.client}  {','.join(row.scopes)}  "
            f"created {row.created_at:%Y-%m-%d}  last used {used}  {state}"
        )


@api_keys.command()
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke the key KEY_ID at once (its client's other keys keep working)."""
    if not container().api_keys.revoke(key_id):
        raise click.ClickException(f"no live key {key_id}")
    click.echo(f"key {key_id} revoked")
