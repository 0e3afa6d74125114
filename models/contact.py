"""The ``contacts`` table: the directory ``dispatch`` asks when no recipient is given."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from models.base import Base, utcnow
from models.crypto import KeyRing, SealedText, keyring
from models.enums import ChannelType
from models.interaction import CUSTOMER_ID_MAX


def address_index(channel: ChannelType, normalised: str, ring: KeyRing | None = None) -> str:
    """The blind index of an address already normalised for ``channel``.

    Email addresses are compared without regard to case, as every provider treats them. The
    interactions' recipient index and the directory's share it, so one search finds both.
    """
    key = normalised.lower() if channel is ChannelType.EMAIL else normalised
    return (ring or keyring()).blind_index(f"{channel.value}:{key}")


class Contact(Base):
    """How to reach one customer, by channel; each address found by its blind index."""

    __tablename__ = "contacts"
    __table_args__ = (
        sa.Index("ix_contacts_email_hash", "email_hash"),
        sa.Index("ix_contacts_phone_hash", "phone_hash"),
    )

    customer_id: Mapped[str] = mapped_column(sa.String(CUSTOMER_ID_MAX), primary_key=True)
    email: Mapped[str | None] = mapped_column(SealedText("contacts.email"))
    phone: Mapped[str | None] = mapped_column(SealedText("contacts.phone"))
    # Keyed hashes of the addresses: "who has this address on file" without decrypting.
    email_hash: Mapped[str | None] = mapped_column(sa.String(64))
    phone_hash: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow, onupdate=utcnow)

    @validates("email", "phone")
    def _index(self, name: str, value: str | None) -> str | None:
        """Keep each address's blind index in step with the address, whoever writes it."""
        channel = ChannelType.EMAIL if name == "email" else ChannelType.SMS
        setattr(self, f"{name}_hash", address_index(channel, value) if value else None)
        return value
