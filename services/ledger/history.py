"""A customer's timeline: newest first, keyset-paginated with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models.enums import ChannelType, InteractionStatus, parse_enum, parse_status
from models.interaction import CustomerInteraction
from services.errors import InvalidInput
from services.records import HistoryPage, InteractionRecord

BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last row's creation time and id."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        """The opaque cursor for this position."""
        raw = json.dumps({"t": self.created_at.isoformat(), "i": self.id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position a cursor names, or InvalidInput when it was not made here."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            data = json.loads(raw)
            created_at = datetime.fromisoformat(data["t"])
            ident = data["i"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidInput("cursor", "is not a cursor this service issued") from None
        # A boolean is an int to Python, and a year-1 time with an offset has no UTC instant.
        if type(ident) is not int or not 0 < ident <= BIGINT_MAX or created_at.tzinfo is None:
            raise InvalidInput("cursor", "is not a cursor this service issued")
        try:
            instant = created_at.astimezone(UTC)
        except (OverflowError, ValueError):
            raise InvalidInput("cursor", "is not a cursor this service issued") from None
        return cls(instant, ident)


@dataclass(frozen=True)
class HistoryQuery:
    """A validated request for one page of a customer's timeline."""

    customer_id: str
    limit: int
    after: Position | None
    channel: ChannelType | None
    status: InteractionStatus | None

    @classmethod
    def build(
        cls,
        customer_id: str,
        limit: int,
        max_limit: int,
        cursor: str | None,
        channel: ChannelType | str | None,
        status: InteractionStatus | str | None,
    ) -> HistoryQuery:
        """Check every argument; nothing unchecked reaches the query."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= max_limit:
            raise InvalidInput("limit", f"must be an integer from 1 to {max_limit}")
        try:
            parsed_channel = parse_enum(ChannelType, channel) if channel is not None else None
            parsed_status = parse_status(status) if status is not None else None
        except ValueError as exc:
            raise InvalidInput("filter", str(exc)) from None
        after = Position.decode(cursor) if cursor else None
        return cls(customer_id, limit, after, parsed_channel, parsed_status)


def read_page(session: Session, query: HistoryQuery) -> HistoryPage:
    """One page of the timeline, served by the (customer_id, created_at DESC, id DESC) index."""
    table = CustomerInteraction
    statement = sa.select(table).where(table.customer_id == query.customer_id)
    if query.channel is not None:
        statement = statement.where(table.channel == query.channel)
    if query.status is not None:
        statement = statement.where(table.status == query.status)
    if query.after is not None:
        statement = statement.where(
            sa.tuple_(table.created_at, table.id) < (query.after.created_at, query.after.id)
        )
    statement = statement.order_by(table.created_at.desc(), table.id.desc()).limit(query.limit + 1)
    rows = list(session.execute(statement).scalars())
    items = [InteractionRecord.of(row) for row in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        next_cursor = Position(last.created_at, last.id).encode()
    return HistoryPage(items, next_cursor)
