"""The enumerations the ledger enforces, stored in the database by value."""

from __future__ import annotations

import enum
from typing import TypeVar

E = TypeVar("E", bound=enum.Enum)


class ChannelType(enum.StrEnum):
    """How an interaction reached, or came from, the customer."""

    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    SYSTEM = "system"


class InteractionStatus(enum.StrEnum):
    """Where an interaction stands; it only ever moves forward (see services.ledger.transitions)."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    FAILED = "failed"


class EventKind(enum.StrEnum):
    """What an entry in the append-only event history records."""

    ATTEMPT_STARTED = "attempt_started"
    ATTEMPT_RELEASED = "attempt_released"
    STATUS_CHANGED = "status_changed"
    PROVIDER_EVENT = "provider_event"
    STAFF_ACTION = "staff_action"


# The channels a message is sent on; a phone call is only ever recorded, as a note.
SENT_CHANNELS = tuple(channel for channel in ChannelType if channel is not ChannelType.PHONE)

SENT_OR_BEYOND = frozenset(
    {InteractionStatus.SENT, InteractionStatus.DELIVERED, InteractionStatus.OPENED}
)


class InvalidEnumValue(ValueError):
    """A string that is not one of an enumeration's values."""


def parse_enum(enum_type: type[E], value: object) -> E:
    """Return the member whose value is exactly ``value``, or raise with the accepted values."""
    if isinstance(value, enum_type):
        return value
    for member in enum_type:
        if member.value == value:
            return member
    accepted = ", ".join(repr(m.value) for m in enum_type)
    raise InvalidEnumValue(
        f"{value!r} is not a valid {enum_type.__name__}; expected one of {accepted}"
    )


def parse_status(value: object) -> InteractionStatus:
    """A status by its value in any case: ``"SENT"`` (the RFC's spelling) is ``sent``."""
    folded = value.lower() if isinstance(value, str) else value
    return parse_enum(InteractionStatus, folded)
