"""Key rotation: re-seal every personal value under the active key, and say what is left."""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections import Counter
from collections.abc import Callable

from sqlalchemy.engine import Engine

from config.settings import Settings
from models.crypto import KeyRing, Undecryptable
from models.sealing import SEALED_COLUMNS, count_values, resealer, rewrite_column, walk_values
from models.session import SessionFactory
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.checked_lines import lines
from services.archive.stores.factory import open_store

PLAINTEXT = "(plaintext)"


def generate_key() -> str:
    """A new 256-bit key, base64, for INTERACTIONS_ENCRYPTION_KEYS."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def rotate(
    engine: Engine, ring: KeyRing, progress: Callable[[int], None] | None = None, batch: int = 1000
) -> dict[str, int]:
    """Re-seal under the active key every value another key sealed; returns rows changed per column.

    Safe to stop at any moment and run again: each batch commits, and values already under the
    active key are skipped.
    """
    changed: dict[str, int] = {}
    with engine.connect() as connection:
        for spec in SEALED_COLUMNS:
            name = f"{spec.table}.{spec.column}"
            changed[name] = rewrite_column(connection, spec, resealer(ring), batch, progress)
    return changed


def values_to_rotate(engine: Engine) -> int:
    """How many values a rotation will read, for its progress bar."""
    with engine.connect() as connection:
        return count_values(connection)


def keys_in_use(engine: Engine, batch: int = 5000) -> Counter[str]:
    """How many stored values each key id seals (and how many are in clear, which is a fault)."""
    used: Counter[str] = Counter()
    with engine.connect() as connection:
        for spec in SEALED_COLUMNS:
            for rows in walk_values(connection, spec, batch):
                for _, value in rows:
                    for sealed in _sealed_values(value, spec.is_json):
                        try:
                            used[KeyRing.key_id_of(sealed)] += 1
                        except Undecryptable:
                            used[PLAINTEXT] += 1
    return used


def _sealed_values(value: object, is_json: bool) -> list[str]:
    if not is_json:
        return [str(value)]
    document = json.loads(value) if isinstance(value, str) else value
    if not isinstance(document, dict):
        return []
    found = []
    for entry in document.values():
        if isinstance(entry, dict) and isinstance(entry.get("sealed"), str):
            found.append(entry["sealed"])
    return found


_SEALED_KEY_ID = re.compile(rb"v1:([A-Za-z0-9_.-]+):")


def archive_keys(sessions: SessionFactory, settings: Settings) -> dict[str, Counter[str]]:
    """Per archive file, how many sealed values each key id seals.

    Archive files are never rewritten, so a rotation cannot re-seal them: their keys stay
    in the ring (for reading) until the files are purged.
    """
    store = open_store(settings)
    with sessions() as session:
        manifests = [manifest_rows.manifest_from_row(row) for row in manifest_rows.listing(session)]
    found: dict[str, Counter[str]] = {}
    for manifest in manifests:
        used: Counter[str] = Counter()
        for line in lines(store, manifest):
            used.update(m.decode() for m in _SEALED_KEY_ID.findall(line))
        found[manifest.key] = used
    return found
