"""The ``contacts`` table: the directory ``dispatch`` asks when no recipient is given."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.crypto import SealedText
from models.interaction import CUSTOMER_ID_MAX


class Contact(Base):
    """How to reach one customer, by channel."""

    __tablename__ = "contacts"

    customer_id: Mapped[str] = mapped_column(sa.String(CUSTOMER_ID_MAX), primary_key=True)
    email: Mapped[str | None] = mapped_column(SealedText("contacts.email"))
    phone: Mapped[str | None] = mapped_column(SealedText("contacts.phone"))
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow, onupdate=utcnow)
