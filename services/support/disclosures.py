"""The audit trail of personal data shown in full to staff (models.disclosure).

"Shown" means served: a console page that carried an address, a subject or a body in full to
a member of staff is one row, recorded as the page is rendered. A viewer's page, where every
address is masked and no content is shown, records nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import datetime

from models.base import utcnow
from models.disclosure import StaffDisclosure
from models.session import SessionFactory


class Shown(enum.StrEnum):
    """A kind of personal data a page can show in full."""

    ADDRESS = "address"
    REJECTED_ADDRESS = "rejected_address"
    SUBJECT = "subject"
    BODY = "body"


class Disclosures:
    """Records what staff were shown."""

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
    ) -> None:
        """Record a page that showed ``shown``; nothing when it showed nothing."""
        kinds = sorted({kind.value for kind in shown})
        if not kinds:
            return
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
