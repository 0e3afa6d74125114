"""Command line for the key ring: ``keys generate``, ``keys status`` and ``keys rotate``."""

from __future__ import annotations

import click

from config.settings import get_settings
from models.crypto import keyring
from services.container import container
from services.keys.rotation import (
    PLAINTEXT,
    archive_keys,
    generate_key,
    keys_in_use,
    rotate,
    values_to_rotate,
)


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
    used = keys_in_use(container().engine)
    click.echo(f"active key: {ring.active}")
    for key_id in sorted(set(ring.keys) | set(used)):
        where = "" if key_id in ring.keys else "  (NOT IN THE KEY RING)"
        mark = "  <- active" if key_id == ring.active else ""
        click.echo(f"  {key_id}: {used.get(key_id, 0)} values{mark}{where}")
    _report_archive(ring.active)
    if used.get(PLAINTEXT):
        raise click.ClickException(f"{used[PLAINTEXT]} values are stored in clear")


def _report_archive(active: str) -> None:
    settings = get_settings()
    files = archive_keys(container().sessions, settings)
    older = {key: ids for key, ids in files.items() if set(ids) - {active}}
    click.echo(f"archive: {len(files)} files, {len(older)} with values under other keys")
    for key, ids in sorted(older.items()):
        under = ", ".join(f"{k}: {n}" for k, n in sorted(ids.items()) if k != active)
        click.echo(f"  {key}: {under} (keep these keys until the file is purged)")


@keys.command("rotate")
def rotate_command() -> None:
    """Re-seal every value under the active key; stop and run again at any time."""
    engine = container().engine
    ring = keyring()
    with click.progressbar(
        length=values_to_rotate(engine), label=f"re-sealing under {ring.active}"
    ) as bar:
        changed = rotate(engine, ring, bar.update)
    for column, count in changed.items():
        click.echo(f"  {column}: {count} re-sealed")
    _report_archive(ring.active)
    left = {k: n for k, n in keys_in_use(engine).items() if k != ring.active}
    if left:
        raise click.ClickException(f"values still under other keys: {left}")
    click.echo(f"every value is sealed under {ring.active}; older keys can be removed")
