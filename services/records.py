"""Plain, detached views of what the service read or wrote, safe to hand across layers."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from models.enums import ChannelType, InteractionStatus
from models.interaction import CustomerInteraction
from services.ledger.transitions import Outcome


@dataclass(frozen=True)
class InteractionRecord:
    """One interaction as stored; personal fields are left out of its repr."""

    id: int
    interaction_uuid: uuid.UUID
    customer_id: str
    idempotency_key: str
    channel: ChannelType
    status: InteractionStatus
    template_key: str | None
    batch_id: str | None
    attempt_count: int
    provider: str | None
    provider_reference: str | None
    failure_reason: str | None
    author: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    failed_at: datetime | None
    recipient: str | None = field(repr=False)
    body_content: str | None = field(repr=False)
    subject: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, row: CustomerInteraction) -> InteractionRecord:
        """A record of ``row`` as it stands."""
        return cls(
            id=row.id,
            interaction_uuid=row.interaction_uuid,
            customer_id=row.customer_id,
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            status=row.status,
            template_key=row.template_key,
            batch_id=row.batch_id,
            attempt_count=row.attempt_count,
            provider=row.provider,
            provider_reference=row.provider_reference,
            failure_reason=row.failure_reason,
            author=row.author,
            created_at=row.created_at,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            opened_at=row.opened_at,
            failed_at=row.failed_at,
            recipient=row.recipient,
            body_content=row.body_content,
            subject=row.subject,
        )


class DispatchOutcome(enum.StrEnum):
    """What one call of ``dispatch`` did."""

    SENT = "sent"
    ALREADY_SENT = "already_sent"
    IN_FLIGHT = "in_flight"
    FAILED = "failed"


@dataclass(frozen=True)
class DispatchResult:
    """The outcome of a dispatch and the interaction as it stands afterwards."""

    outcome: DispatchOutcome
    interaction: InteractionRecord

    @property
    def status(self) -> InteractionStatus:
        """The interaction's status after the dispatch."""
        return self.interaction.status


@dataclass(frozen=True)
class StatusUpdate:
    """What ``update_status`` did; ``interaction`` is None for an unknown reference."""

    outcome: Outcome
    previous: InteractionStatus | None
    current: InteractionStatus | None
    interaction: InteractionRecord | None


@dataclass(frozen=True)
class HistoryPage:
    """One page of a customer's timeline, newest first, and the cursor for the next."""

    items: list[InteractionRecord]
    next_cursor: str | None

    def __iter__(self) -> Iterator[InteractionRecord]:
        """The page's records, newest first."""
        return iter(self.items)

    def __len__(self) -> int:
        """How many records the page holds."""
        return len(self.items)

    def __reversed__(self) -> Iterator[InteractionRecord]:
        """The page's records, oldest first."""
        return reversed(self.items)
