"""The ``queued_messages`` table: what a producer published and nobody has claimed yet.

A dispatch message lives in the broker until a worker claims its key. If the broker loses it
first (Redis restarted empty), nothing in the ledger says it existed: the producer therefore
writes each message here, sealed, before publishing it, and reconciliation publishes again
the ones whose key was never claimed. A claimed key's row goes: the ledger takes over.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.crypto import SealedText
from models.interaction import IDEMPOTENCY_KEY_MAX


class QueuedMessage(Base):
    """One published dispatch message whose key no worker has claimed yet."""

    __tablename__ = "queued_messages"
    __table_args__ = (sa.Index("ix_queued_messages_epoch", "broker_epoch"),)

    idempotency_key: Mapped[str] = mapped_column(sa.String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(sa.String(100))
    published_at: Mapped[datetime] = mapped_column(nullable=False)
    # The broker's lifetime it was published into (broker.epoch); None on a broker without one.
    broker_epoch: Mapped[str | None] = mapped_column(sa.String(32))
    # The task's arguments as JSON: an address and a payload, so sealed.
    message: Mapped[str] = mapped_column(SealedText("queued_messages.message"), nullable=False)
