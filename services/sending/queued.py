"""Published and not yet claimed: the producer's record of each message, and finding lost ones.

The producer writes every message here before it publishes it, with the broker's epoch
(broker.epoch); a claim makes the ledger responsible for the key, and reconciliation then drops
its row here. A row whose epoch is not the broker's present one was published into a broker
that has since lost everything (Redis restarted empty): reconciliation publishes it again, and
the claim keeps it to one send. Nothing is published twice while the broker keeps its messages,
however long a big batch waits in the queue.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from models.crypto import SealedText
from models.interaction import CustomerInteraction
from models.queued import QueuedMessage
from models.session import SessionFactory


class Message(Protocol):
    """A dispatch task's arguments."""

    def as_kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments."""


class Publisher(Protocol):
    """Puts dispatch messages on the broker."""

    def publish(self, messages: Sequence[Message]) -> None:
        """Enqueue one dispatch task per message."""


@dataclass(frozen=True)
class Unclaimed:
    """A recorded message, to publish again."""

    kwargs: dict[str, Any]

    def as_kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments."""
        return self.kwargs


# One statement for a whole chunk: the rows travel as three arrays, so PostgreSQL parses one
# short statement and the driver sends one round trip, where an executemany sent one per row.
_RECORD_UNNEST = sa.text(
    "INSERT INTO queued_messages (idempotency_key, batch_id, published_at, broker_epoch, message)"
    " SELECT key, batch, :now, :epoch, message"
    " FROM unnest(CAST(:keys AS text[]), CAST(:batches AS text[]), CAST(:messages AS text[]))"
    " AS given(key, batch, message)"
    " ON CONFLICT (idempotency_key) DO UPDATE SET published_at = excluded.published_at,"
    " broker_epoch = excluded.broker_epoch, message = excluded.message"
)


def record(session: Session, messages: Sequence[Message], now: datetime, epoch: str | None) -> None:
    """Write (or refresh) the messages about to be published, in one statement."""
    if not messages:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        # Sealed by the column's own type, as the ORM would have done it row by row.
        column = cast(SealedText, QueuedMessage.__table__.c.message.type)
        keys, batches, sealed = [], [], []
        for message in messages:
            kwargs = message.as_kwargs()
            keys.append(kwargs["idempotency_key"])
            batches.append(kwargs.get("batch_id"))
            text = json.dumps(kwargs, separators=(",", ":"))
            sealed.append(column.process_bind_param(text, dialect))
        session.execute(
            _RECORD_UNNEST,
            {"now": now, "epoch": epoch, "keys": keys, "batches": batches, "messages": sealed},
        )
        return
    rows = []
    for message in messages:
        kwargs = message.as_kwargs()
        rows.append(
            {
                "idempotency_key": kwargs["idempotency_key"],
                "batch_id": kwargs.get("batch_id"),
                "published_at": now,
                "broker_epoch": epoch,
                "message": json.dumps(kwargs, separators=(",", ":")),
            }
        )
    insert = sqlite.insert(QueuedMessage)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["idempotency_key"],
            set_={
                "published_at": insert.excluded.published_at,
                "broker_epoch": insert.excluded.broker_epoch,
                "message": insert.excluded.message,
            },
        ),
        rows,
    )


def forget_claimed(sessions: SessionFactory, limit: int) -> int:
    """Drop up to ``limit`` rows whose key the ledger now holds; how many went."""
    claimed = (
        sa.select(QueuedMessage.idempotency_key)
        .join(
            CustomerInteraction,
            CustomerInteraction.idempotency_key == QueuedMessage.idempotency_key,
        )
        .limit(limit)
        .scalar_subquery()
    )
    with sessions() as session, session.begin():
        gone = session.execute(
            sa.delete(QueuedMessage).where(QueuedMessage.idempotency_key.in_(claimed))
        )
        return int(gone.rowcount or 0)  # type: ignore[attr-defined]


def publish_lost(
    sessions: SessionFactory, publisher: Publisher, epoch: str, now: datetime, limit: int
) -> int:
    """Publish again what a broker that lost its contents held, unclaimed; how many."""
    table = QueuedMessage
    with sessions() as session, session.begin():
        rows = list(
            session.scalars(
                sa.select(table)
                .outerjoin(
                    CustomerInteraction,
                    CustomerInteraction.idempotency_key == table.idempotency_key,
                )
                .where(
                    table.broker_epoch.is_not(None),
                    table.broker_epoch != epoch,
                    CustomerInteraction.id.is_(None),
                )
                .order_by(table.published_at)
                .limit(limit)
                .with_for_update(of=table, skip_locked=True)
            )
        )
        messages = [Unclaimed(json.loads(row.message)) for row in rows]
        for row in rows:
            row.published_at, row.broker_epoch = now, epoch
    if messages:
        publisher.publish(messages)
    return len(messages)
