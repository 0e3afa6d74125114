"""``interactions console``: serve the support console, and make entries for its user list."""

from __future__ import annotations

import json
import os

import click
from flask import Flask

from config.settings import ConsoleUser, get_settings
from services.support.staff import ROLE_PERMISSIONS, hash_password
from workers.console_auth import ConsoleMisconfigured, configure_session
from workers.gunicorn_commands import console_command


@click.group()
def console() -> None:
    """The support console for staff (a web app)."""


@console.command("add-user")
@click.argument("username")
@click.option(
    "--role",
    "roles",
    type=click.Choice(sorted(ROLE_PERMISSIONS)),
    multiple=True,
    required=True,
    help="viewer: read only; agent: also add phone notes; resender: also correct and resend.",
)
@click.password_option(help="Asked for (twice) when not given; 12 characters or more.")
def add_user(username: str, roles: tuple[str, ...], password: str) -> None:
    """Print the entry for USERNAME to add to INTERACTIONS_CONSOLE_USERS (a JSON list)."""
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    entry = {"username": username, "password_hash": hashed, "roles": sorted(set(roles))}
    try:
        ConsoleUser.model_validate(entry)
    except ValueError as exc:
        raise click.UsageError(f"not a valid console user: {exc}") from None
    click.echo(json.dumps(entry))


@console.command()
@click.option("--bind", default="127.0.0.1:8001", show_default=True, help="host:port to serve.")
@click.option(
    "--workers", default=2, show_default=True, type=int, help="Gunicorn worker processes."
)
def serve(bind: str, workers: int) -> None:
    """Serve the console with gunicorn (put it behind your TLS reverse proxy)."""
    try:
        configure_session(Flask(__name__), get_settings())
    except ConsoleMisconfigured as exc:
        raise click.ClickException(str(exc)) from None
    command = console_command(bind, workers)
    os.execv(command[0], command)  # noqa: S606 - our own gunicorn, argv built above
