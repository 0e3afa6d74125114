"""The ``interactions`` table: one row per outbound communication or manual notation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, utcnow, value_enum
from models.crypto import SealedJSON, SealedText
from models.enums import ChannelType, InteractionStatus
from models.redaction import RedactedText

IDEMPOTENCY_KEY_MAX = 255
CUSTOMER_ID_MAX = 64


class CustomerInteraction(Base):
    """An interaction with a customer and where it stands; the unit of idempotency."""

    __tablename__ = "interactions"
    __table_args__ = (
        sa.Index(
            "ix_interactions_timeline",
            "customer_id",
            sa.text("created_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index("ix_interactions_provider_reference", "provider_reference"),
        sa.Index("ix_interactions_recipient_hash", "recipient_hash"),
        sa.Index("ix_interactions_batch_status", "batch_id", "status"),
        sa.Index(
            "ix_interactions_pending_claims",
            "claim_expires_at",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
        # poll_unfinished: the few SENT rows still waiting for a receipt, oldest first.
        sa.Index(
            "ix_interactions_unfinished",
            "sent_at",
            postgresql_where=sa.text("status = 'sent' AND outcome_unknown_at IS NULL"),
            sqlite_where=sa.text("status = 'sent' AND outcome_unknown_at IS NULL"),
        ),
        # batch-status counts the outcomes never known without reading the batch's rows.
        sa.Index(
            "ix_interactions_outcome_unknown",
            "batch_id",
            postgresql_where=sa.text("outcome_unknown_at IS NOT NULL"),
            sqlite_where=sa.text("outcome_unknown_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    interaction_uuid: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, unique=True, nullable=False, default=uuid.uuid4
    )
    customer_id: Mapped[str] = mapped_column(sa.String(CUSTOMER_ID_MAX), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(
        sa.String(IDEMPOTENCY_KEY_MAX), unique=True, nullable=False
    )
    channel: Mapped[ChannelType] = mapped_column(
        value_enum(ChannelType, "channel_type"), nullable=False
    )
    status: Mapped[InteractionStatus] = mapped_column(
        value_enum(InteractionStatus, "interaction_status"), nullable=False
    )
    body_content: Mapped[str | None] = mapped_column(SealedText("interactions.body_content"))
    # An email's subject line as the provider rendered it, when it said.
    subject: Mapped[str | None] = mapped_column(SealedText("interactions.subject"))
    # The reference we handed the provider (our interaction UUID), as the RFC names it.
    notify_reference: Mapped[str | None] = mapped_column(sa.String(255))
    # The provider's own id for the message, once it accepted it.
    provider_reference: Mapped[str | None] = mapped_column(sa.String(255))
    provider: Mapped[str | None] = mapped_column(sa.String(32))
    meta_data: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON("interactions.meta_data"))

    recipient: Mapped[str | None] = mapped_column(SealedText("interactions.recipient"))
    # HMAC of the normalised address: "everything we sent to this address" without decrypting.
    recipient_hash: Mapped[str | None] = mapped_column(sa.String(64))
    template_key: Mapped[str | None] = mapped_column(sa.String(100))
    batch_id: Mapped[str | None] = mapped_column(sa.String(100))
    author: Mapped[str | None] = mapped_column(sa.String(100))
    attempt_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # A live lease means a worker holds the claim; NULL on a PENDING row means released.
    claim_expires_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(RedactedText)

    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    # Set when the provider still could not say, long after sending, what became of it.
    outcome_unknown_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return (
            f"<CustomerInteraction id={self.id} key={self.idempotency_key!r} "
            f"channel={self.channel} status={self.status}>"
        )
