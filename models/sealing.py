"""Sealing whole tables: existing plaintext rows, and re-sealing under a new active key.

Both walk each table by primary key in bounded batches, each committed on its own, so a run
that crashes is simply run again: rows already done are recognised and skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.crypto import SEALED_KEYS, VERSION, KeyRing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SealedColumn:
    """A column whose values are sealed, with its table's key and the purpose it is bound to."""

    table: str
    key: str
    column: str
    purpose: str
    is_json: bool = False


SEALED_COLUMNS = (
    SealedColumn("interactions", "id", "body_content", "interactions.body_content"),
    SealedColumn("interactions", "id", "recipient", "interactions.recipient"),
    SealedColumn("interactions", "id", "subject", "interactions.subject"),
    SealedColumn("interactions", "id", "meta_data", "interactions.meta_data", is_json=True),
    SealedColumn("contacts", "customer_id", "email", "contacts.email"),
    SealedColumn("contacts", "customer_id", "phone", "contacts.phone"),
    SealedColumn("inbound_events", "id", "body", "inbound_events.body"),
    SealedColumn("interaction_events", "id", "reason", "interaction_events.reason"),
    SealedColumn("queued_messages", "idempotency_key", "message", "queued_messages.message"),
    SealedColumn("staff_sessions", "id", "id_token", "staff_sessions.id_token"),
)

# Given a stored value, the value to store instead, or None when it needs nothing.
Rewrite = Callable[[str], str | None]


def walk_values(
    connection: Connection, spec: SealedColumn, size: int
) -> Iterator[list[tuple[Any, Any]]]:
    """The column's stored (key, value) pairs, in primary-key order, one batch at a time."""
    after: Any = None
    while True:
        where = f"{spec.column} IS NOT NULL" + (
            f" AND {spec.key} > :after" if after is not None else ""
        )
        rows = connection.execute(
            sa.text(
                f"SELECT {spec.key}, {spec.column} FROM {spec.table} "  # noqa: S608 - names are ours
                f"WHERE {where} ORDER BY {spec.key} LIMIT :size"
            ),
            {"after": after, "size": size},
        ).all()
        if not rows:
            return
        yield [(r[0], r[1]) for r in rows]
        after = rows[-1][0]


def _rewrite_json(value: Any, purpose: str, make: Callable[[str], Rewrite]) -> str | None:
    document = json.loads(value) if isinstance(value, str) else value
    if not isinstance(document, dict):
        return None
    # A copy: the value read stays as read, to check the row still holds it when writing.
    document = dict(document)
    changed = False
    for name in SEALED_KEYS:
        if name not in document:
            continue
        rewrite = make(f"{purpose}.{name}")
        entry = document[name]
        if isinstance(entry, dict) and isinstance(entry.get("sealed"), str):
            new = rewrite(entry["sealed"])
        else:
            new = rewrite(json.dumps(entry, ensure_ascii=False))
        if new is not None:
            document[name] = {"sealed": new}
            changed = True
    return json.dumps(document) if changed else None


def rewrite_column(
    connection: Connection,
    spec: SealedColumn,
    make_rewrite: Callable[[str], Rewrite],
    size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply a rewrite to every value of one column, batch by batch; returns rows changed.

    A value is replaced only if it is still the one read: a write made meanwhile (a sign-out
    clearing an id_token, a resend correcting a recipient) is never overwritten with a re-seal
    of the old value. Such a row is read again and rewritten from what it now holds.
    """
    rewrite = make_rewrite(spec.purpose)

    def rewritten(value: Any) -> str | None:
        return _rewrite_json(value, spec.purpose, make_rewrite) if spec.is_json else rewrite(value)

    changed = 0
    skipped = 0
    for batch in walk_values(connection, spec, size):
        for key, value in batch:
            new = rewritten(value)
            if new is None:
                continue
            if _replace(connection, spec, key, value, new):
                changed += 1
                continue
            outcome = _retry(connection, spec, key, rewritten)
            changed += outcome is True
            skipped += outcome is None
        connection.commit()
        if progress:
            progress(len(batch))
    if skipped:
        log.warning(
            "%d %s.%s values changed at every attempt to rewrite them; run again",
            skipped,
            spec.table,
            spec.column,
        )
    return changed


RETRIES = 3


def _replace(connection: Connection, spec: SealedColumn, key: Any, old: Any, new: str) -> bool:
    """Store ``new`` in the row ``key`` if its value is still ``old``; whether it was stored."""
    json_pg = spec.is_json and connection.dialect.name == "postgresql"
    value, expected = (
        ("CAST(:value AS JSONB)", "CAST(:old AS JSONB)") if json_pg else (":value", ":old")
    )
    same = "IS NOT DISTINCT FROM" if connection.dialect.name == "postgresql" else "IS"
    update = sa.text(
        f"UPDATE {spec.table} SET {spec.column} = {value} "  # noqa: S608 - names are ours
        f"WHERE {spec.key} = :key AND {spec.column} {same} {expected}"
    )
    if spec.is_json and not isinstance(old, str):
        old = json.dumps(old)
    return bool(connection.execute(update, {"value": new, "key": key, "old": old}).rowcount)


def _retry(
    connection: Connection, spec: SealedColumn, key: Any, rewritten: Callable[[Any], str | None]
) -> bool | None:
    """Rewrite one row from its current value: True when done, False when nothing was left to
    do (the row went, or now holds a value that needs nothing), None when it kept changing."""
    select = sa.text(
        f"SELECT {spec.column} FROM {spec.table} WHERE {spec.key} = :key"  # noqa: S608
    )
    for _ in range(RETRIES):
        value = connection.execute(select, {"key": key}).scalar_one_or_none()
        new = None if value is None else rewritten(value)
        if new is None:
            return False
        if _replace(connection, spec, key, value, new):
            return True
    return None


def _is_sealed(value: str) -> bool:
    return value.startswith(f"{VERSION}:")


def sealer(ring: KeyRing) -> Callable[[str], Rewrite]:
    """Seal what is still plaintext; leave sealed values alone."""

    def make(purpose: str) -> Rewrite:
        def rewrite(value: str) -> str | None:
            return None if _is_sealed(value) else ring.seal(value, purpose)

        return rewrite

    return make


def resealer(ring: KeyRing) -> Callable[[str], Rewrite]:
    """Re-seal under the active key what another key sealed; plaintext is sealed too."""

    def make(purpose: str) -> Rewrite:
        def rewrite(value: str) -> str | None:
            if not _is_sealed(value):
                return ring.seal(value, purpose)
            if ring.key_id_of(value) == ring.active:
                return None
            return ring.seal(ring.open(value, purpose), purpose)

        return rewrite

    return make


def seal_plaintext_rows(
    connection: Connection, ring: KeyRing, columns: Sequence[SealedColumn] = SEALED_COLUMNS
) -> int:
    """Seal every plaintext personal value, for databases from before sealing existed."""
    make = sealer(ring)
    return sum(rewrite_column(connection, spec, make) for spec in columns)


def count_values(connection: Connection) -> int:
    """How many stored personal values there are, for a progress bar."""
    total = 0
    for spec in SEALED_COLUMNS:
        total += connection.execute(
            sa.text(f"SELECT count(*) FROM {spec.table} WHERE {spec.column} IS NOT NULL")  # noqa: S608
        ).scalar_one()
    return int(total)
