"""The ``inbound_events`` table: every provider callback as received, before it is applied."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, utcnow, value_enum
from models.crypto import SealedText


class InboundState(enum.StrEnum):
    """How far a received callback has got."""

    RECEIVED = "received"
    APPLIED = "applied"
    ORPHAN = "orphan"
    REJECTED = "rejected"


class InboundEvent(Base):
    """A provider callback stored durably before it is acknowledged; the webhook inbox."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        sa.UniqueConstraint("provider", "event_id", name="uq_inbound_events_provider_event"),
        sa.Index(
            "ix_inbound_events_unsettled",
            "state",
            "received_at",
            postgresql_where=sa.text("state IN ('received', 'orphan')"),
            sqlite_where=sa.text("state IN ('received', 'orphan')"),
        ),
        sa.Index(
            "ix_inbound_events_rejected",
            "settled_at",
            postgresql_where=sa.text("state = 'rejected'"),
            sqlite_where=sa.text("state = 'rejected'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    # The provider's id for the event (a Standard Webhooks id), or one derived from it.
    event_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # The raw callback, sealed: providers echo the recipient's address in it.
    body: Mapped[str] = mapped_column(SealedText("inbound_events.body"), nullable=False)
    state: Mapped[InboundState] = mapped_column(
        value_enum(InboundState, "inbound_state"), nullable=False, default=InboundState.RECEIVED
    )
    outcome: Mapped[str | None] = mapped_column(sa.String(32))
    # Why a rejected callback could not be applied: the field and the problem, not the value.
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    received_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    settled_at: Mapped[datetime | None]
