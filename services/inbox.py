"""The webhook inbox: callbacks stored before they are acknowledged, then applied once.

A callback is acknowledged only after its row is committed, so a 2xx never covers an event
that could be lost; applying it is a separate step that can be retried, and an event whose
interaction is not known yet waits as an orphan until reconciliation matches it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.inbound import InboundEvent, InboundState
from models.session import SessionFactory
from services import status_events
from services.callbacks import MalformedCallback, ParsedCallback, parse
from services.transitions import Outcome


class Receipt(enum.StrEnum):
    """What storing a callback found."""

    NEW = "new"
    UNSETTLED = "unsettled"
    ALREADY_SETTLED = "already_settled"


@dataclass(frozen=True)
class Stored:
    """The inbox row a callback is in, and whether it still needs applying."""

    inbound_id: int
    receipt: Receipt

    @property
    def needs_applying(self) -> bool:
        """A settled event was applied before; a replay must not enqueue it again."""
        return self.receipt is not Receipt.ALREADY_SETTLED


def _insert(session: Session) -> object:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(InboundEvent)


def store(
    sessions: SessionFactory, provider: str, parsed: ParsedCallback, body: bytes, now: datetime
) -> Stored:
    """Commit the raw callback, once per (provider, event id)."""
    with sessions() as session, session.begin():
        inserted = session.execute(
            _insert(session)  # type: ignore[attr-defined]
            .values(
                provider=provider,
                event_id=parsed.event_id,
                body=body.decode("utf-8"),
                state=InboundState.RECEIVED,
                attempts=0,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["provider", "event_id"])
            .returning(InboundEvent.id)
        ).scalar_one_or_none()
        if inserted is not None:
            return Stored(inserted, Receipt.NEW)
        existing = session.execute(
            sa.select(InboundEvent.id, InboundEvent.state).where(
                InboundEvent.provider == provider, InboundEvent.event_id == parsed.event_id
            )
        ).one()
    settled = existing.state in (InboundState.APPLIED, InboundState.REJECTED)
    return Stored(existing.id, Receipt.ALREADY_SETTLED if settled else Receipt.UNSETTLED)


def apply(sessions: SessionFactory, inbound_id: int, final: bool, now: datetime) -> Outcome:
    """Apply a stored callback; UNKNOWN_REFERENCE means try later, unless ``final``."""
    with sessions() as session:
        row = session.get(InboundEvent, inbound_id)
        if row is None or row.state in (InboundState.APPLIED, InboundState.REJECTED):
            return Outcome.DUPLICATE
        provider, event_id, body = row.provider, row.event_id, row.body.encode()
    try:
        parsed = parse(provider, body, event_id)
    except MalformedCallback:
        _settle(sessions, inbound_id, InboundState.REJECTED, "malformed", now)
        return Outcome.STALE
    event = replace(parsed.event, keep_orphan=final)
    update = status_events.apply(sessions, event, now)
    if update.outcome is Outcome.UNKNOWN_REFERENCE:
        state = InboundState.ORPHAN if final else InboundState.RECEIVED
    else:
        state = InboundState.APPLIED
    _settle(sessions, inbound_id, state, update.outcome.value, now)
    return update.outcome


def _settle(
    sessions: SessionFactory, inbound_id: int, state: InboundState, outcome: str, now: datetime
) -> None:
    settled_at = now if state in (InboundState.APPLIED, InboundState.REJECTED) else None
    with sessions() as session, session.begin():
        session.execute(
            sa.update(InboundEvent)
            .where(InboundEvent.id == inbound_id)
            .values(
                state=state,
                outcome=outcome,
                attempts=InboundEvent.attempts + 1,
                settled_at=settled_at,
            )
        )


def unsettled(
    sessions: SessionFactory, older_than: timedelta, now: datetime, limit: int
) -> list[int]:
    """Orphans, and received events nobody applied (a lost task), oldest first."""
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(InboundEvent.id)
                .where(
                    InboundEvent.state.in_([InboundState.RECEIVED, InboundState.ORPHAN]),
                    InboundEvent.received_at < now - older_than,
                )
                .order_by(InboundEvent.received_at)
                .limit(limit)
            )
        )
