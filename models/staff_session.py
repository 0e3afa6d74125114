"""The ``staff_sessions`` table: who is signed in to the support console, held server-side.

The browser's cookie carries a random token; only its SHA-256 is stored, so a copy of the
table signs no one in. A row ends at sign-out, after an idle spell, or at its absolute limit.
A provider's id_token is kept sealed while the session lives, to end the provider's session
too at sign-out; it never goes to the browser's cookie.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JsonDocument
from models.crypto import SealedText


class StaffSession(Base):
    """One sign-in of one member of staff."""

    __tablename__ = "staff_sessions"
    __table_args__ = (sa.Index("ix_staff_sessions_expires_at", "expires_at"),)

    # Hex SHA-256 of the token in the cookie.
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # What history records as the actor: a local user name, or "oidc:<subject>".
    actor: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    # The name shown on the page (a provider's preferred_username); the actor when NULL.
    display_name: Mapped[str | None] = mapped_column(sa.String(100))
    # The roles a provider granted at sign-in; local users' roles are read from the settings.
    roles: Mapped[list[str]] = mapped_column(JsonDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column()
    # The id_token the provider issued at sign-in (its id_token_hint at sign-out); cleared
    # when the session ends.
    id_token: Mapped[str | None] = mapped_column(SealedText("staff_sessions.id_token"))
