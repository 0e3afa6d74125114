"""The ``suppressions`` table: addresses no message goes to, by blind index, with their history."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, utcnow, value_enum
from models.crypto import SealedText
from models.enums import ChannelType

# At most one suppression in force per address; lifted ones stay as history beside it.
ACTIVE_WHERE = "lifted_at IS NULL"


class Suppression(Base):
    """One suppression of an address on a channel; lifting it keeps the row, with who and why."""

    __tablename__ = "suppressions"
    __table_args__ = (
        sa.Index(
            "ix_suppressions_active",
            "recipient_hash",
            "channel",
            unique=True,
            postgresql_where=sa.text(ACTIVE_WHERE),
            sqlite_where=sa.text(ACTIVE_WHERE),
        ),
        sa.Index("ix_suppressions_history", "recipient_hash", "channel", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[ChannelType] = mapped_column(
        value_enum(ChannelType, "channel_type"), nullable=False
    )
    # The keyed blind index of the normalised address: the address itself is never stored here.
    recipient_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # Written by the service ("permanent failure", "added by an operator"), never free text.
    reason: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    # What suppressed it: a provider's callback, a send refused, the command line, the console.
    source: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    source_interaction_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    added_by: Mapped[str | None] = mapped_column(sa.String(100))
    suppressed_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(sa.String(100))
    # Staff's own words may name the customer: sealed like every other staff reason.
    lift_reason: Mapped[str | None] = mapped_column(SealedText("suppressions.lift_reason"))
