"""Legal holds: a customer's or a month's archived files are kept past the cold retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models.archive import LegalHold
from models.base import utcnow
from services.errors import InvalidInput
from services.sending import validation

SessionFactory = Callable[[], Session]


def _who(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 100:
        raise InvalidInput(name, "must be 1-100 characters naming who acts")
    return value.strip()


def place(
    sessions: SessionFactory,
    *,
    customer_id: str | None,
    month: date | None,
    placed_by: str,
    reason: str,
    clock: Callable[[], datetime] = utcnow,
) -> LegalHold:
    """Record a hold on one customer or one month, with who placed it and why."""
    if (customer_id is None) == (month is None):
        raise InvalidInput("scope", "a hold covers either one customer or one month")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason", "must say why the hold is placed")
    hold = LegalHold(
        customer_id=validation.customer_id(customer_id) if customer_id is not None else None,
        month=month,
        reason=reason.strip(),
        placed_by=_who(placed_by, "placed_by"),
        placed_at=clock(),
    )
    with sessions() as session, session.begin():
        session.add(hold)
    return hold


def release(
    sessions: SessionFactory, hold_id: int, released_by: str, clock: Callable[[], datetime] = utcnow
) -> LegalHold:
    """Release a hold; the row stays as the record of it."""
    who = _who(released_by, "released_by")
    with sessions() as session, session.begin():
        hold = session.get(LegalHold, hold_id)
        if hold is None:
            raise InvalidInput("hold", f"there is no hold #{hold_id}")
        if hold.released_at is not None:
            raise InvalidInput("hold", f"hold #{hold_id} was already released")
        hold.released_by, hold.released_at = who, clock()
    return hold


def active(sessions: SessionFactory) -> list[LegalHold]:
    """Holds in force, oldest first."""
    with sessions() as session:
        query = sa.select(LegalHold).where(LegalHold.released_at.is_(None)).order_by(LegalHold.id)
        return list(session.scalars(query))


def every(sessions: SessionFactory) -> list[LegalHold]:
    """Every hold ever placed, released ones included, oldest first."""
    with sessions() as session:
        return list(session.scalars(sa.select(LegalHold).order_by(LegalHold.id)))


def describe(hold: LegalHold) -> str:
    """A hold as one line: its number, scope, who placed it and why."""
    scope = f"customer {hold.customer_id}" if hold.customer_id else f"month {hold.month:%Y-%m}"
    return f"legal hold #{hold.id} on {scope} by {hold.placed_by}: {hold.reason}"
