"""Fill a PostgreSQL database with N realistic interactions and their events, by COPY.

    .venv/bin/python -m bench.generate --rows 10000000 [--database-url URL] [--workers 2]

The database is dropped, created and migrated; secondary indexes, unique constraints and the
events' foreign key are dropped for the load and built again after it, each phase timed on its
own: the load rate is rows COPY'd per second, the index build is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg2
import sqlalchemy as sa

from bench.rows import (
    EVENT_COLUMNS,
    EVENTS_PER_INTERACTION_MAX,
    INTERACTION_COLUMNS,
    Chunk,
    SealedPool,
    Shape,
    chunk_text,
)
from config.settings import Settings
from devtools.database import recreate_database
from models.crypto import keyring
from models.migrate import upgrade
from models.session import build_engine

DEFAULT_URL = os.environ.get(
    "BENCH_SCALE_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/bench_scale"
)
TABLES = ("interactions", "interaction_events")
CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class LoadReport:
    """What a generation did and how long each phase took."""

    interactions: int
    events: int
    batches: int
    customers: int
    load_seconds: float
    index_seconds: float
    vacuum_seconds: float

    @property
    def rows_per_second(self) -> float:
        """Interactions and events COPY'd per second of the load."""
        return (self.interactions + self.events) / self.load_seconds


def libpq_url(url: str) -> str:
    """The URL as psycopg2 itself takes it."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)


def plan_chunks(rows: int, seed: int) -> list[Chunk]:
    """Batches of log-normal size (median about 5,000 rows), grouped into chunks."""
    rng = random.Random(seed)
    chunks: list[Chunk] = []
    starts: list[int] = []
    lo = ident = 1
    while ident <= rows:
        starts.append(ident)
        ident += int(min(100_000, max(200, rng.lognormvariate(8.5, 1.0))))
        if ident - lo >= CHUNK_ROWS or ident > rows:
            hi = min(ident, rows + 1)
            chunks.append(Chunk(len(chunks), lo, hi, tuple(starts)))
            lo, starts = hi, []
    return chunks


_STATE: dict[str, Any] = {}


def _init_worker(url: str, shape: Shape, pool: SealedPool) -> None:
    connection = psycopg2.connect(libpq_url(url))
    connection.autocommit = False
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    _STATE.update(connection=connection, shape=shape, pool=pool)


def _load_chunk(chunk: Chunk) -> tuple[int, int, Counter[tuple[str, str, str]]]:
    text = chunk_text(_STATE["shape"], _STATE["pool"], chunk)
    connection = _STATE["connection"]
    with connection.cursor() as cursor:
        cursor.copy_expert(
            f"COPY interactions ({INTERACTION_COLUMNS}) FROM STDIN", StringIO(text.interactions)
        )
        cursor.copy_expert(
            f"COPY interaction_events ({EVENT_COLUMNS}) FROM STDIN", StringIO(text.events)
        )
    connection.commit()
    return chunk.hi - chunk.lo, text.event_count, text.batches


def deferred_ddl(connection: sa.Connection) -> tuple[list[str], list[str]]:
    """Statements to drop the secondary indexes and constraints, and to build them again."""
    constraints = connection.execute(
        sa.text(
            "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid::regclass::text = ANY(:tables) "
            "AND contype IN ('u', 'f') ORDER BY contype DESC, conname"
        ),
        {"tables": list(TABLES)},
    ).all()
    owned = {name for name, _, _ in constraints}
    indexes = connection.execute(
        sa.text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:tables) "
            "AND indexname NOT LIKE 'pk_%' ORDER BY indexname"
        ),
        {"tables": list(TABLES)},
    ).all()
    drop = [f'ALTER TABLE {table} DROP CONSTRAINT "{name}"' for name, table, _ in constraints]
    drop += [f'DROP INDEX "{name}"' for name, _ in indexes if name not in owned]
    build = [ddl for name, ddl in indexes if name not in owned]
    build += [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for name, table, definition in reversed(constraints)
    ]
    return drop, build


def generate(
    url: str,
    rows: int,
    customers: int | None = None,
    months: int = 30,
    workers: int = 2,
    seed: int = 1,
    vacuum: bool = True,
    echo: bool = True,
) -> LoadReport:
    """Recreate the database ``url`` names and fill it; the figures of each phase."""
    recreate_database(url)
    settings = Settings(environment="test", database_url=url, database_statement_timeout_ms=0)
    engine = build_engine(url, settings)
    upgrade(engine)
    with engine.begin() as connection:
        drop, build = deferred_ddl(connection)
        for statement in drop:
            connection.exec_driver_sql(statement)

    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=round(months * 30.44))
    shape = Shape(
        rows, customers or max(1000, rows // 10), start.timestamp(), end.timestamp(), seed
    )
    pool = SealedPool.seal(keyring())
    chunks = plan_chunks(rows, seed)
    say = print if echo else (lambda *_: None)
    say(f"loading {rows:,} interactions for {shape.customers:,} customers, {workers} workers")

    started = time.perf_counter()
    interactions = events = 0
    batches: Counter[tuple[str, str, str]] = Counter()
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, _init_worker, (url, shape, pool)) as workers_pool:
        for done, (n, e, b) in enumerate(workers_pool.imap_unordered(_load_chunk, chunks), 1):
            interactions, events = interactions + n, events + e
            batches.update(b)
            if done % 20 == 0:
                rate = (interactions + events) / (time.perf_counter() - started)
                say(f"  {interactions:,} interactions, {rate:,.0f} rows/s")
    _load_batches(engine, batches, end)
    load_seconds = time.perf_counter() - started
    say(f"loaded {interactions:,} interactions + {events:,} events in {load_seconds:.1f} s")

    started = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql("SET maintenance_work_mem = '1GB'")
        connection.exec_driver_sql("SET max_parallel_maintenance_workers = 2")
        connection.exec_driver_sql(
            "SELECT setval('interactions_id_seq', %(n)s), "
            "setval('interaction_events_id_seq', %(e)s)",
            {"n": rows, "e": (rows + 1) * EVENTS_PER_INTERACTION_MAX},
        )
        for statement in build:
            began = time.perf_counter()
            connection.exec_driver_sql(statement)
            say(f"  {time.perf_counter() - began:6.1f} s  {statement[:100]}")
    index_seconds = time.perf_counter() - started

    vacuum_seconds = 0.0
    if vacuum:
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        vacuum_seconds = time.perf_counter() - started
    engine.dispose()
    report = LoadReport(
        interactions,
        events,
        len(batches),
        shape.customers,
        load_seconds,
        index_seconds,
        vacuum_seconds,
    )
    say(
        f"load: {report.rows_per_second:,.0f} rows/s ({interactions / load_seconds:,.0f} "
        f"interactions/s); indexes and constraints {index_seconds:.1f} s; "
        f"VACUUM ANALYZE {vacuum_seconds:.1f} s"
    )
    return report


def _load_batches(engine: sa.Engine, batches: Counter[tuple[str, str, str]], at: datetime) -> None:
    lines = "".join(
        f"{batch}\t{channel}\t{template}\tgenerated\t{n}\t{n}\t0\t0\t1\t{at}\t{at}\n"
        for (batch, channel, template), n in sorted(batches.items())
    )
    raw: Any = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.copy_expert(
                "COPY batches (id, channel, template_key, source, total_rows, enqueued, "
                "already_sent, rejected, runs, created_at, updated_at) FROM STDIN",
                StringIO(lines),
            )
        raw.commit()
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, required=True, help="interactions to generate")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--customers", type=int, help="default: rows / 10")
    parser.add_argument("--months", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="generating processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM ANALYZE")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    report = generate(
        args.database_url,
        args.rows,
        args.customers,
        args.months,
        args.workers,
        args.seed,
        vacuum=not args.no_vacuum,
    )
    if args.json:
        figures = {**asdict(report), "rows_per_second": report.rows_per_second}
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
