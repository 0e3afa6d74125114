"""Reading one id window of expired interactions, with their events, into compressed files.

The window is read inside a REPEATABLE READ transaction that stays open until its rows are
deleted: the delete then removes exactly the rows that were read, and PostgreSQL refuses
(a serialization failure) if any of them, or any of their events, changed in between.

PostgreSQL writes each file's JSON Lines itself, through ``COPY ... TO STDOUT``: the lines
stream straight into the hash and the compressor, with no row ever becoming a Python object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import zstandard
from sqlalchemy.engine import Connection, Engine

from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from services.archive.fileformat import copytext, row_json_sql
from services.archive.fileformat.customer_filter import CustomerFilter
from services.archive.fileformat.manifest import Manifest
from services.archive.fileformat.months import month_bounds
from services.archive.fileformat.names import object_key

INTERACTIONS = CustomerInteraction.__tablename__
EVENTS = InteractionEvent.__tablename__
FEED_BYTES = 1 << 20

# Table names come from the models, never from input; values are always bound.
_MONTHS = f"""
SELECT date_trunc('month', i.created_at AT TIME ZONE 'UTC')::date,
       count(*), min(i.id), max(i.id), min(i.created_at), max(i.created_at),
       coalesce(sum(n.events), 0)::bigint, array_agg(i.customer_id)
FROM {INTERACTIONS} AS i
LEFT JOIN (
  SELECT e.interaction_id, count(*) AS events
  FROM {EVENTS} AS e
  WHERE e.interaction_id > %(lo)s AND e.interaction_id <= %(hi)s
  GROUP BY e.interaction_id
) AS n ON n.interaction_id = i.id
WHERE i.id > %(lo)s AND i.id <= %(hi)s AND i.created_at < %(cutoff)s AND i.status <> 'pending'
GROUP BY 1
ORDER BY 1
"""  # noqa: S608
# One line per interaction, exactly json_line.line() of row_to_json of the row and of its events;
# the JSON is spelled out by fileformat.row_json_sql, which writes the same bytes for less.
_LINES = """
SELECT '{{"interaction":' || {interaction} || ',"events":[' || coalesce(ev.json, '') || ']}}'
FROM {interactions} AS i
LEFT JOIN (
  SELECT e.interaction_id, string_agg({event}, ',' ORDER BY e.id) AS json
  FROM {events} AS e
  WHERE e.interaction_id >= %(first_id)s AND e.interaction_id <= %(last_id)s
  GROUP BY e.interaction_id
) AS ev ON ev.interaction_id = i.id
WHERE i.id > %(lo)s AND i.id <= %(hi)s AND i.created_at >= %(start)s AND i.created_at < %(end)s
  AND i.status <> 'pending'
ORDER BY i.id
"""


def lines_query(connection: Connection) -> str:
    """The query of one month's lines, for the tables' columns as the catalog has them now."""
    return _LINES.format(
        interaction=row_json_sql.row_json("i", row_json_sql.columns(connection, INTERACTIONS)),
        event=row_json_sql.row_json("e", row_json_sql.columns(connection, EVENTS)),
        interactions=INTERACTIONS,
        events=EVENTS,
    )


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
        return object_key(self.month, self.first_id, self.last_id)


def manifest_of(chunk: ChunkFile, schema_version: str, created_at: datetime) -> Manifest:
    """The manifest that describes ``chunk``."""
    return Manifest(
        key=chunk.key,
        month=chunk.month,
        rows=chunk.rows,
        events=chunk.events,
        first_id=chunk.first_id,
        last_id=chunk.last_id,
        first_created_at=chunk.first_created_at,
        last_created_at=chunk.last_created_at,
        byte_size=len(chunk.data),
        sha256=chunk.sha256,
        content_sha256=chunk.content_sha256,
        schema_version=schema_version,
        created_at=created_at,
    )


class _Compressing:
    """A file-like target for COPY: undoes its escapes, hashes the lines and compresses them."""

    def __init__(self, level: int) -> None:
        # The frame carries a checksum of its content, so any zstd tool can test a file.
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._compressor: Any = compressor.compressobj()
        self._content = hashlib.sha256()
        self._received: list[bytes] = []
        self._received_bytes = 0
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._received.append(data)
        self._received_bytes += len(data)
        if self._received_bytes >= FEED_BYTES:
            self._feed()
        return len(data)

    def _feed(self) -> None:
        received = b"".join(self._received)
        # Feed whole rows only, so an escape is never cut from what it escapes.
        end = received.rfind(b"\n") + 1
        rest = received[end:]
        self._received = [rest] if rest else []
        self._received_bytes = len(rest)
        text = copytext.unescape(received[:end])
        self._content.update(text)
        self._pieces.append(self._compressor.compress(text))

    def finish(self) -> tuple[bytes, str]:
        """The compressed file and the SHA-256 of its content."""
        self._feed()
        if self._received:
            raise ValueError("COPY output ended inside a row")
        self._pieces.append(self._compressor.flush())
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data, self._content.hexdigest()


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
    # A window's statements cost enough to be compiled by JIT, about 50 ms each, which the
    # function calls that make up their work do not win back.
    connection.exec_driver_sql("SET LOCAL jit = off")
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
    params = {"lo": window.lo, "hi": window.hi, "cutoff": cutoff}
    months = connection.exec_driver_sql(_MONTHS, params).all()
    # Read after _MONTHS, whose locks keep any ALTER TABLE waiting until this window's
    # transaction ends: the lines have the columns the tables have now, as row_to_json would.
    query = lines_query(connection)
    raw: Any = connection.connection.dbapi_connection
    files = []
    with raw.cursor() as cursor:
        for month, rows, first_id, last_id, first_at, last_at, events, customers in months:
            start, end = month_bounds(month)
            bounds = {
                **params,
                "start": start,
                "end": min(end, cutoff),
                "first_id": first_id,
                "last_id": last_id,
            }
            target = _Compressing(level)
            # COPY takes no bound parameters: psycopg2 quotes the values into the statement.
            statement = cursor.mogrify(query, bounds).decode()
            cursor.copy_expert(f"COPY ({statement}) TO STDOUT", target)
            if cursor.rowcount != rows:
                raise RuntimeError(f"{month:%Y-%m}: {cursor.rowcount} lines for {rows} rows")
            data, content_sha256 = target.finish()
            files.append(
                ChunkFile(
                    month=month,
                    first_id=first_id,
                    last_id=last_id,
                    rows=rows,
                    events=events,
                    first_created_at=first_at,
                    last_created_at=last_at,
                    data=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                    content_sha256=content_sha256,
                    customer_filter=CustomerFilter.of(customers).to_bytes(),
                )
            )
    return files
