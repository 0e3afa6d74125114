"""The ``api_keys`` table: the credentials calling services use on the HTTP API.

A key is shown once, when it is made; only its SHA-256 is stored, so a copy of the table lets
no one in. A client may hold several live keys at once, which is how a key is rotated.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JsonDocument

CLIENT_NAME_MAX = 64


class ApiKey(Base):
    """One key of one calling service, with the scopes it grants."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.Index("ix_api_keys_client", "client"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The public part of the key, printed in listings to tell keys apart.
    key_id: Mapped[str] = mapped_column(sa.String(32), unique=True, nullable=False)
    # Hex SHA-256 of the whole key: the key is random, so a fast hash is enough.
    secret_sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The calling service; what every write it makes records as its actor.
    client: Mapped[str] = mapped_column(sa.String(CLIENT_NAME_MAX), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JsonDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
