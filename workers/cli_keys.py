"""Command line for the key ring: ``keys generate``, ``status``, ``rotate`` and ``reindex``."""

from __future__ import annotations

import click

from config.settings import get_settings
from models.crypto import keyring
from services.container import container
from services.keys.reindex import reindex_contacts
from services.keys.rotation import (
    PLAINTEXT,
    archive_keys,
    generate_key,
    keys_in_use,
    rotate,
    values_to_rotate,
)
from workers.cli_io import EXIT_FAILED, echo_json, json_option


@click.group("keys")
def keys() -> None:
    """Manage the keys that seal personal data."""


@keys.command("generate")
def generate() -> None:
    """Print a new random key to add to INTERACTIONS_ENCRYPTION_KEYS."""
    click.echo(generate_key())


@keys.command("status")
@json_option
def status(as_json: bool) -> None:
    """Show how many stored values each key seals; a key sealing none can be removed."""
    ring = keyring()
    used = keys_in_use(container().engine)
    if as_json:
        echo_json(status_document(ring.active, set(ring.keys), used))
        if used.get(PLAINTEXT):
            raise SystemExit(EXIT_FAILED)
        return
    click.echo(f"active key: {ring.active}")
    for key_id in sorted(set(ring.keys) | set(used)):
        where = "" if key_id in ring.keys else "  (NOT IN THE KEY RING)"
        mark = "  <- active" if key_id == ring.active else ""
        click.echo(f"  {key_id}: {used.get(key_id, 0)} values{mark}{where}")
    _report_archive(ring.active)
    if used.get(PLAINTEXT):
        raise click.ClickException(f"{used[PLAINTEXT]} values are stored in clear")


def status_document(active: str, ring: set[str], used: dict[str, int]) -> dict[str, object]:
    """The key status as JSON fields: each key's values, and the archive files by key."""
    files = archive_keys(container().sessions, get_settings())
    return {
        "active": active,
        "keys": [
            {"id": key_id, "values": used.get(key_id, 0), "in_ring": key_id in ring}
            for key_id in sorted(ring | set(used))
        ],
        "archive_files": {key: dict(ids) for key, ids in sorted(files.items())},
    }


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


@keys.command("reindex")
def reindex_command() -> None:
    """Give every directory address without a blind index its index; safe to run again."""
    report_reindex()


def report_reindex() -> None:
    """Index the directory's unindexed addresses, batch by batch, and say how many."""
    settings = get_settings()
    done = reindex_contacts(container().engine, keyring(), settings.default_phone_region)
    for column, count in done.items():
        click.echo(f"  {column}: {count} indexed")
