"""The ``batches`` table: one row per bulk send, with its totals and progress."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow, value_enum
from models.enums import ChannelType


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
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow, onupdate=utcnow)
