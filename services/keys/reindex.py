"""The contact directory's blind indexes, filled in for addresses that have none.

Contacts written before the directory had an index (revision 0016) carry their addresses
sealed and no index. Indexing them means decrypting and hashing every row, so it is done
here, outside the migration's DDL transaction and its table locks: in bounded batches, each
committed on its own, so a run that stops is simply run again. Each address is normalised as a
send normalises it, so the index matches what a search computes; an address the validator
refuses is indexed as stored, and found when searched exactly as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.contact import address_index
from models.crypto import KeyRing
from models.enums import ChannelType
from services.errors import InvalidRecipient
from services.sending import validation


@dataclass(frozen=True)
class IndexedColumn:
    """A directory column and the index column that finds it."""

    column: str
    index: str
    channel: ChannelType


DIRECTORY = (
    IndexedColumn("email", "email_hash", ChannelType.EMAIL),
    IndexedColumn("phone", "phone_hash", ChannelType.SMS),
)


def normalised(channel: ChannelType, address: str, default_region: str) -> str:
    """``address`` as a send would normalise it, or as given when the validator refuses it."""
    try:
        return validation.recipient(channel, address, default_region)
    except InvalidRecipient:
        return address


def reindex_contacts(
    engine: Engine, ring: KeyRing, default_region: str, batch: int = 500
) -> dict[str, int]:
    """Index every directory address that has no index yet; returns rows indexed per column."""
    done: dict[str, int] = {}
    with engine.connect() as connection:
        for spec in DIRECTORY:
            done[f"contacts.{spec.index}"] = _index_column(
                connection, spec, ring, default_region, batch
            )
    return done


def _index_column(
    connection: Connection, spec: IndexedColumn, ring: KeyRing, default_region: str, batch: int
) -> int:
    select = sa.text(
        f"SELECT customer_id, {spec.column} FROM contacts "  # noqa: S608 - names are ours
        f"WHERE {spec.column} IS NOT NULL AND {spec.index} IS NULL AND customer_id > :after "
        "ORDER BY customer_id LIMIT :size"
    )
    # Only the value read is indexed: a contact changed meanwhile keeps the writer's index.
    update = sa.text(
        f"UPDATE contacts SET {spec.index} = :hash WHERE customer_id = :id "  # noqa: S608
        f"AND {spec.column} = :sealed AND {spec.index} IS NULL"
    )
    purpose = f"contacts.{spec.column}"
    indexed, after = 0, ""
    while True:
        rows = connection.execute(select, {"after": after, "size": batch}).all()
        if not rows:
            return indexed
        for customer_id, sealed in rows:
            address = normalised(spec.channel, ring.open(sealed, purpose), default_region)
            hashed = address_index(spec.channel, address, ring)
            result = connection.execute(
                update, {"hash": hashed, "id": customer_id, "sealed": sealed}
            )
            indexed += result.rowcount
        connection.commit()
        after = rows[-1][0]
