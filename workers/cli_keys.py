"""Command line for the key ring: ``keys generate``, ``keys status`` and ``keys rotate``."""

from __future__ import annotations

import click

from config.settings import get_settings
from models.crypto import keyring
from models.session import get_engine
from services.keys import PLAINTEXT, generate_key, keys_in_use, rotate, values_to_rotate


@click.group("keys")
def keys() -> None:
    """Manage the keys that seal personal data."""


@keys.command("generate")
def generate() -> None:
    """Print a new random key to add to INTERACTIONS_ENCRYPTION_KEYS."""
    click.echo(generate_key())


@keys.command("status")
def status() -> None:
    """Show how many stored values each key seals; a key sealing none can be removed."""
    ring = keyring()
    used = keys_in_use(get_engine(get_settings()))
    click.echo(f"active key: {ring.active}")
    for key_id in sorted(set(ring.keys) | set(used)):
        where = "" if key_id in ring.keys else "  (NOT IN THE KEY RING)"
        mark = "  <- active" if key_id == ring.active else ""
        click.echo(f"  {key_id}: {used.get(key_id, 0)} values{mark}{where}")
    if used.get(PLAINTEXT):
        raise click.ClickException(f"{used[PLAINTEXT]} values are stored in clear")


@keys.command("rotate")
def rotate_command() -> None:
    """Re-seal every value under the active key; stop and run again at any time."""
    engine = get_engine(get_settings())
    ring = keyring()
    with click.progressbar(
        length=values_to_rotate(engine), label=f"re-sealing under {ring.active}"
    ) as bar:
        changed = rotate(engine, ring, bar.update)
    for column, count in changed.items():
        click.echo(f"  {column}: {count} re-sealed")
    left = {k: n for k, n in keys_in_use(engine).items() if k != ring.active}
    if left:
        raise click.ClickException(f"values still under other keys: {left}")
    click.echo(f"every value is sealed under {ring.active}; older keys can be removed")
