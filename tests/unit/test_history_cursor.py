"""Keyset cursors and history arguments, with no database."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from services.errors import InvalidInput
from services.ledger.history import HistoryQuery, Position


def test_a_cursor_round_trips() -> None:
    position = Position(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), 42)
    assert Position.decode(position.encode()) == position


@pytest.mark.parametrize("cursor", ["garbage", "e30", "!!!!", "eyJ0IjogMSwgImkiOiAiMSJ9"])
def test_a_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        Position.decode(cursor)


@pytest.mark.parametrize("limit", [0, -1, 501, True])
def test_limits_are_bounded(limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        HistoryQuery.build("C-1", limit, 500, None, None, None)


def test_filters_must_be_known_values() -> None:
    with pytest.raises(InvalidInput, match="filter"):
        HistoryQuery.build("C-1", 10, 500, None, "EMAIL", None)
    with pytest.raises(InvalidInput, match="filter"):
        HistoryQuery.build("C-1", 10, 500, None, None, "sent' OR '1'='1")


def _cursor(data: object) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "data",
    [
        {"t": "0001-01-01T00:00:00+05:00", "i": 1},  # no UTC instant
        {"t": "2026-01-01T00:00:00+00:00", "i": True},  # a boolean is not an id
        {"t": "2026-01-01T00:00:00+00:00", "i": 2**63},  # past bigint
        {"t": "2026-01-01T00:00:00+00:00", "i": 0},
        {"t": "2026-01-01T00:00:00", "i": 5},  # no offset
    ],
)
def test_a_crafted_cursor_is_invalid_input(data: object) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        Position.decode(_cursor(data))
