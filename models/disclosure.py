"""The ``staff_disclosures`` table: which member of staff was shown a customer's personal data.

A console page that shows an address, a subject or a body in full records one row: who, when,
which customer, what kind of data and which messages. The row names the data, never holds it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JsonDocument, utcnow
from models.interaction import CUSTOMER_ID_MAX


class StaffDisclosure(Base):
    """One page served to one member of staff that showed personal data in full."""

    __tablename__ = "staff_disclosures"
    __table_args__ = (
        sa.Index("ix_staff_disclosures_customer", "customer_id", "at"),
        sa.Index("ix_staff_disclosures_actor", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    customer_id: Mapped[str] = mapped_column(sa.String(CUSTOMER_ID_MAX), nullable=False)
    # The page that showed it: "timeline" or "interaction".
    page: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    # What was shown in full: "address", "subject", "body", "rejected_address".
    shown: Mapped[list[str]] = mapped_column(JsonDocument, nullable=False)
    # The interactions (UUIDs as text) whose data the page held.
    interactions: Mapped[list[str]] = mapped_column(JsonDocument, nullable=False)
    at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
