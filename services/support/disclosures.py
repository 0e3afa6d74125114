"""The audit trail of personal data shown in full to staff (models.disclosure).

"Shown" means served: a console page that carried an address, a subject or a body in full to
a member of staff is one row, recorded as the page is rendered. A viewer's page, where every
address is masked and no content is shown, records nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from models.base import utcnow
from models.disclosure import StaffDisclosure
from models.session import SessionFactory


class Shown(enum.StrEnum):
    """A kind of personal data a page can show in full."""

    ADDRESS = "address"
    REJECTED_ADDRESS = "rejected_address"
    SUBJECT = "subject"
    BODY = "body"


@dataclass(frozen=True)
class Disclosure:
    """One recorded disclosure, as read back for an audit."""

    actor: str
    customer_id: str
    page: str
    shown: tuple[str, ...]
    interactions: tuple[str, ...]
    at: datetime


class Disclosures:
    """Records, and reads back, what staff were shown."""

    def __init__(self, sessions: SessionFactory, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def record(
        self,
        actor: str,
        customer_id: str,
        page: str,
        shown: Iterable[Shown],
        interactions: Iterable[str],
    ) -> bool:
        """Record a page that showed ``shown``; nothing when it showed nothing. True if recorded."""
        kinds = sorted({kind.value for kind in shown})
        if not kinds:
            return False
        with self._sessions() as session, session.begin():
            session.add(
                StaffDisclosure(
                    actor=actor,
                    customer_id=customer_id,
                    page=page,
                    shown=kinds,
                    interactions=list(dict.fromkeys(interactions)),
                    at=self._clock(),
                )
            )
        return True

    def of_customer(self, customer_id: str, limit: int = 100) -> list[Disclosure]:
        """The customer's latest disclosures, newest first."""
        table = StaffDisclosure
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(table)
                .where(table.customer_id == customer_id)
                .order_by(table.at.desc(), table.id.desc())
                .limit(limit)
            )
            return [
                Disclosure(
                    row.actor,
                    row.customer_id,
                    row.page,
                    tuple(row.shown),
                    tuple(row.interactions),
                    row.at,
                )
                for row in rows
            ]
