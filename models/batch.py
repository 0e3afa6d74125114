"""The ``batches`` table: one row per bulk send, its totals, progress and state; its history."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, utcnow, value_enum
from models.enums import ChannelType


class BatchState(enum.StrEnum):
    """Whether a batch's messages may go: sending, held by an operator, or dropped."""

    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class Batch(Base):
    """A bulk send; running its producer again with the same id resumes it."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    channel: Mapped[ChannelType] = mapped_column(
        value_enum(ChannelType, "channel_type"), nullable=False
    )
    template_key: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    source: Mapped[str | None] = mapped_column(sa.String(255))
    total_rows: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    enqueued: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    already_sent: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    runs: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    state: Mapped[BatchState] = mapped_column(
        value_enum(BatchState, "batch_state"),
        nullable=False,
        default=BatchState.SENDING,
        server_default=BatchState.SENDING.value,
    )
    # Nothing of the batch goes before this moment (a scheduled send); None: at once.
    not_before: Mapped[datetime | None]
    # The Notify reply-to (email) or sender (SMS) id this batch's messages go out with.
    reply_to_id: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow, onupdate=utcnow)


class BatchAction(Base):
    """An action on a batch: who started it (or ran it again), paused, resumed or cancelled it."""

    __tablename__ = "batch_actions"
    __table_args__ = (sa.Index("ix_batch_actions_batch", "batch_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(
        sa.String(100), sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
    )
    action: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    actor: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
