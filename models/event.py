"""The ``interaction_events`` table: the append-only history behind every interaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, utcnow, value_enum
from models.crypto import SealedText
from models.enums import EventKind, InteractionStatus
from models.redaction import RedactedDetail


class InteractionEvent(Base):
    """One thing that happened to an interaction: an attempt, a status change, a callback."""

    __tablename__ = "interaction_events"
    __table_args__ = (
        # Only provider receipts carry an event id; dispatch's own events (most rows) stay out.
        sa.Index(
            "uq_interaction_events_provider_event",
            "provider",
            "provider_event_id",
            unique=True,
            postgresql_where=sa.text("provider_event_id IS NOT NULL"),
            sqlite_where=sa.text("provider_event_id IS NOT NULL"),
        ),
        sa.Index("ix_interaction_events_interaction", "interaction_id", "id"),
        sa.Index(
            "ix_interaction_events_orphans",
            "reference",
            postgresql_where=sa.text("interaction_id IS NULL"),
            sqlite_where=sa.text("interaction_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # NULL for an orphan: a provider event whose reference matched no interaction yet.
    interaction_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("interactions.id", ondelete="CASCADE")
    )
    kind: Mapped[EventKind] = mapped_column(value_enum(EventKind, "event_kind"), nullable=False)
    from_status: Mapped[InteractionStatus | None] = mapped_column(
        value_enum(InteractionStatus, "interaction_status")
    )
    to_status: Mapped[InteractionStatus | None] = mapped_column(
        value_enum(InteractionStatus, "interaction_status")
    )
    outcome: Mapped[str | None] = mapped_column(sa.String(32))
    source: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    actor: Mapped[str | None] = mapped_column(sa.String(100))
    attempt: Mapped[int | None] = mapped_column(sa.Integer)
    provider: Mapped[str | None] = mapped_column(sa.String(32))
    provider_event_id: Mapped[str | None] = mapped_column(sa.String(255))
    reference: Mapped[str | None] = mapped_column(sa.String(255))
    detail: Mapped[dict[str, Any] | None] = mapped_column(RedactedDetail)
    # Free text a member of staff gave (why a message is sent again): it may hold personal data.
    reason: Mapped[str | None] = mapped_column(SealedText("interaction_events.reason"))
    occurred_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
