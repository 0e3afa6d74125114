"""Reading one id window of expired interactions, with their events, into compressed files.

The window is read inside a REPEATABLE READ transaction that stays open until its rows are
deleted: the delete then removes exactly the rows that were read, and PostgreSQL refuses
(a serialization failure) if any of them, or any of their events, changed in between.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import zstandard
from sqlalchemy.engine import Connection, Engine

from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from services.archive import format
from services.archive.bloom import CustomerFilter

INTERACTIONS = CustomerInteraction.__tablename__
EVENTS = InteractionEvent.__tablename__
FETCH_ROWS = 2_000
LINES_PER_FEED = 1_000

# Table names come from the models, never from input; values are always bound.
_SELECT_INTERACTIONS = f"""
SELECT i.id, i.customer_id, i.created_at, row_to_json(i)::text
FROM {INTERACTIONS} AS i
WHERE i.id > %(lo)s AND i.id <= %(hi)s AND i.created_at < %(cutoff)s AND i.status <> 'pending'
ORDER BY i.id
"""  # noqa: S608
_SELECT_EVENTS = f"""
SELECT e.interaction_id, row_to_json(e)::text
FROM {EVENTS} AS e
WHERE e.interaction_id > %(lo)s AND e.interaction_id <= %(hi)s
ORDER BY e.interaction_id, e.id
"""  # noqa: S608


@dataclass(frozen=True)
class Window:
    """Interaction ids ``lo < id <= hi``: a bounded slice of the primary key."""

    lo: int
    hi: int


@dataclass
class ChunkFile:
    """One month's part of a window: its compressed JSON Lines and what vouches for them."""

    month: date
    first_id: int
    last_id: int
    rows: int
    events: int
    first_created_at: datetime
    last_created_at: datetime
    data: bytes
    sha256: str
    content_sha256: str
    customer_filter: bytes

    @property
    def key(self) -> str:
        """The file's deterministic key in the store."""
        return format.object_key(self.month, self.first_id, self.last_id)


@dataclass
class _MonthWriter:
    """Compresses one month's lines as they arrive, hashing the content on the way."""

    month: date
    level: int
    first_id: int = 0
    last_id: int = 0
    rows: int = 0
    events: int = 0
    first_created_at: datetime | None = None
    last_created_at: datetime | None = None
    customers: set[str] = field(default_factory=set)
    _lines: list[str] = field(default_factory=list)
    _pieces: list[bytes] = field(default_factory=list)
    _content: Any = field(default_factory=hashlib.sha256)
    _compressor: Any = None

    def add(self, ident: int, customer: str, created: datetime, text: str, events: int) -> None:
        if not self.rows:
            self.first_id = ident
            # The frame carries a checksum of its content, so any zstd tool can test a file.
            compressor = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
            self._compressor = compressor.compressobj()
        self.last_id = ident
        self.rows += 1
        self.events += events
        self.customers.add(customer)
        if self.first_created_at is None or created < self.first_created_at:
            self.first_created_at = created
        if self.last_created_at is None or created > self.last_created_at:
            self.last_created_at = created
        self._lines.append(text)
        if len(self._lines) >= LINES_PER_FEED:
            self._feed()

    def _feed(self) -> None:
        raw = "".join(self._lines).encode()
        self._lines.clear()
        self._content.update(raw)
        self._pieces.append(self._compressor.compress(raw))

    def finish(self) -> ChunkFile:
        self._feed()
        self._pieces.append(self._compressor.flush())
        data = b"".join(self._pieces)
        self._pieces.clear()
        assert self.first_created_at is not None and self.last_created_at is not None
        return ChunkFile(
            month=self.month,
            first_id=self.first_id,
            last_id=self.last_id,
            rows=self.rows,
            events=self.events,
            first_created_at=self.first_created_at,
            last_created_at=self.last_created_at,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            content_sha256=self._content.hexdigest(),
            customer_filter=CustomerFilter.of(self.customers).to_bytes(),
        )


@dataclass
class ExportedWindow:
    """A window read into files, with its transaction still open on ``connection``."""

    window: Window
    connection: Connection
    files: list[ChunkFile]

    def close(self) -> None:
        """Roll back the window's transaction (when it was not committed) and let it go."""
        self.connection.close()


def open_snapshot(engine: Engine) -> Connection:
    """A connection in a REPEATABLE READ transaction, printing timestamps in UTC."""
    connection = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    connection.begin()
    connection.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
    return connection


def export_window(engine: Engine, window: Window, cutoff: datetime, level: int) -> ExportedWindow:
    """Read the window's expired, settled interactions and their events into one file a month."""
    connection = open_snapshot(engine)
    try:
        files = _read(connection, window, cutoff, level)
    except BaseException:
        connection.close()
        raise
    return ExportedWindow(window, connection, files)


def _read(connection: Connection, window: Window, cutoff: datetime, level: int) -> list[ChunkFile]:
    raw: Any = connection.connection.dbapi_connection
    params = {"lo": window.lo, "hi": window.hi, "cutoff": cutoff}
    suffix = uuid.uuid4().hex
    # Two server-side cursors walk both tables in interaction id order, merged as they go,
    # so memory holds a fetch of each and the compressed output, never the window's rows.
    interactions = raw.cursor(name=f"archive_i_{suffix}")
    events = raw.cursor(name=f"archive_e_{suffix}")
    interactions.itersize = events.itersize = FETCH_ROWS
    try:
        interactions.execute(_SELECT_INTERACTIONS, params)
        events.execute(_SELECT_EVENTS, params)
        writers: dict[date, _MonthWriter] = {}
        event_rows = iter(events)
        event = next(event_rows, None)
        for ident, customer, created, document in interactions:
            own: list[str] = []
            while event is not None and event[0] < ident:
                event = next(event_rows, None)
            while event is not None and event[0] == ident:
                own.append(event[1])
                event = next(event_rows, None)
            month = date(created.year, created.month, 1)
            writer = writers.get(month)
            if writer is None:
                writer = writers[month] = _MonthWriter(month, level)
            writer.add(ident, customer, created, format.line(document, own), len(own))
    finally:
        interactions.close()
        events.close()
    return [writers[month].finish() for month in sorted(writers)]
