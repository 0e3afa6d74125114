"""Applying provider status events: forward only, duplicates recorded, orphans kept."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.enums import EventKind, InteractionStatus
from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from services.ledger import writes
from services.ledger.transitions import Outcome
from services.records import InteractionRecord, StatusUpdate
from services.sending import suppression
from telemetry import metrics

# Notify's status for an address that does not exist or refuses mail for good.
PERMANENT_FAILURE = "permanent-failure"


@dataclass(frozen=True)
class StatusEvent:
    """A status reported for the message with ``reference`` (the provider's or our own)."""

    reference: str
    status: InteractionStatus
    provider: str | None = None
    provider_event_id: str | None = None
    occurred_at: datetime | None = None
    reason: str | None = None
    source: str = "provider"
    detail: dict[str, Any] | None = None
    # Our own reference (the interaction UUID), for when the provider's is not saved yet.
    own_reference: str | None = None
    # Whether an event matching nothing is kept as an orphan now, or left for a retry.
    keep_orphan: bool = True


def find_by_reference(
    session: Session, reference: str, own_reference: str | None = None
) -> CustomerInteraction | None:
    """The interaction the provider's reference names, or else our own (its UUID); locked."""
    query = sa.select(CustomerInteraction).with_for_update()
    row = session.execute(
        query.where(CustomerInteraction.provider_reference == reference)
    ).scalar_one_or_none()
    if row is not None:
        return row
    for candidate in (own_reference, reference):
        try:
            own = uuid.UUID(candidate or "")
        except ValueError:
            continue
        row = session.execute(
            query.where(CustomerInteraction.interaction_uuid == own)
        ).scalar_one_or_none()
        if row is not None:
            return row
    return None


def _seen(session: Session, event: StatusEvent) -> bool:
    if not event.provider_event_id:
        return False
    return (
        session.execute(
            sa.select(InteractionEvent.id).where(
                InteractionEvent.provider == event.provider,
                InteractionEvent.provider_event_id == event.provider_event_id,
            )
        ).first()
        is not None
    )


def apply(sessions: SessionFactory, event: StatusEvent, now: datetime) -> StatusUpdate:
    """Apply ``event`` in one transaction and say what it did."""
    try:
        with sessions() as session, session.begin():
            update = _apply(session, event, now)
    except IntegrityError:
        # Another delivery of the same provider event won the race and was applied once.
        return StatusUpdate(Outcome.DUPLICATE, None, None, None)
    if (record := update.interaction) is not None:
        provider = record.provider or event.provider  # a receipt can beat the SENT commit
        metrics.status_changed(update.previous, update.current, record.channel, provider)
    return update


def _apply(session: Session, event: StatusEvent, now: datetime) -> StatusUpdate:
    if _seen(session, event):
        return StatusUpdate(Outcome.DUPLICATE, None, None, None)
    when = event.occurred_at or now
    row = find_by_reference(session, event.reference, event.own_reference)
    if row is None:
        if event.keep_orphan:
            writes.report_orphan(session, event.status, when, now, _entry(event, orphan=True))
        return StatusUpdate(Outcome.UNKNOWN_REFERENCE, None, None, None)
    previous = row.status
    transition = writes.report(
        session,
        row,
        event.status,
        when,
        now,
        _entry(event, orphan=False),
        kind=EventKind.PROVIDER_EVENT,
        failure=event.reason,
    )
    if transition.changes and _permanent_failure(event) and row.recipient_hash:
        suppression.suppress(
            session,
            row.channel,
            row.recipient_hash,
            now,
            get_settings().suppression_days,
            reason=suppression.PERMANENT_FAILURE,
            source=event.source[:32],
            interaction_uuid=row.interaction_uuid,
        )
    session.flush()
    return StatusUpdate(transition.outcome, previous, row.status, InteractionRecord.of(row))


def _permanent_failure(event: StatusEvent) -> bool:
    """Whether the provider says the address can never be delivered to (Notify's word for it)."""
    detail = event.detail or {}
    return event.status is InteractionStatus.FAILED and (
        detail.get("provider_status") == PERMANENT_FAILURE
    )


def _entry(event: StatusEvent, orphan: bool) -> writes.Entry:
    """What the history keeps of ``event`` besides the status move."""
    detail = dict(event.detail or {})
    if event.reason:
        detail["reason"] = event.reason
    event_id = event.provider_event_id
    if orphan and event_id:
        # An orphan keeps its event id aside, so the event can still be applied once matched.
        detail["provider_event_id"] = event_id
        event_id = None
    return writes.Entry(
        source=event.source,
        provider=event.provider,
        provider_event_id=event_id,
        reference=event.reference,
        detail=detail or None,
    )
