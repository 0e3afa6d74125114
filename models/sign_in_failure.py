"""The ``staff_sign_in_failures`` table: failed console sign-ins, counted to throttle guessing."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId


class SignInFailure(Base):
    """One failed sign-in, counted against one subject: a user name or a client address."""

    __tablename__ = "staff_sign_in_failures"
    __table_args__ = (sa.Index("ix_staff_sign_in_failures_subject", "subject", "failed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Hex SHA-256 of "user:<name>" or "address:<client address>", never the name or address.
    subject: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    failed_at: Mapped[datetime] = mapped_column(nullable=False)
