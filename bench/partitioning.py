"""What monthly partitioning would change, measured on a copy of a generated database.

    .venv/bin/python -m bench.partitioning --database-url .../bench_scale_1m

Copies ``interactions`` into a table partitioned by month of created_at (schema ``probe``,
dropped afterwards), then compares on the same rows: the timeline's first page and the
lookup by provider reference (the same SQL as the service's), and retiring the oldest whole month
the janitor's way (DELETE with the events' cascade, then VACUUM) against DETACH and DROP of
its partition. The DELETE changes the database: run it on a copy you can lose.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import psycopg2

from bench.generate import libpq_url
from bench.rows import customer_id
from bench.timeline import percentile

TIMELINE = (
    "SELECT * FROM {table} WHERE customer_id = %(c)s ORDER BY created_at DESC, id DESC LIMIT 51"
)
BY_REFERENCE = "SELECT * FROM {table} WHERE provider_reference = %(r)s"


def build_copy(connection: Any) -> tuple[int, float]:
    """The partitioned copy with the timeline and reference indexes; partitions, seconds."""
    started = time.perf_counter()
    cursor = connection.cursor()
    cursor.execute("DROP SCHEMA IF EXISTS probe CASCADE; CREATE SCHEMA probe")
    cursor.execute(
        "CREATE TABLE probe.interactions (LIKE public.interactions INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (created_at)"
    )
    cursor.execute(
        "SELECT date_trunc('month', min(created_at)), date_trunc('month', max(created_at)) "
        "FROM public.interactions"
    )
    first, last = cursor.fetchone()
    cursor.execute(
        "SELECT m FROM generate_series(%s::timestamptz, %s::timestamptz, '1 month') AS m",
        (first, last),
    )
    months = [row[0] for row in cursor.fetchall()]
    for month in months:
        cursor.execute(
            f"CREATE TABLE probe.m{month:%Y%m} PARTITION OF probe.interactions "
            "FOR VALUES FROM (%s) TO (%s::timestamptz + interval '1 month')",
            (month, month),
        )
    cursor.execute("INSERT INTO probe.interactions SELECT * FROM public.interactions")
    cursor.execute(
        "CREATE INDEX ON probe.interactions (customer_id, created_at DESC, id DESC); "
        "CREATE INDEX ON probe.interactions (provider_reference); "
        "CREATE UNIQUE INDEX ON probe.interactions (idempotency_key, created_at)"
    )
    connection.commit()
    connection.autocommit = True
    cursor.execute("VACUUM ANALYZE probe.interactions")
    connection.autocommit = False
    return len(months), time.perf_counter() - started


def unique_key_refusal(connection: Any) -> str:
    """What PostgreSQL says to a unique index on the key alone."""
    cursor = connection.cursor()
    try:
        cursor.execute("CREATE UNIQUE INDEX ON probe.interactions (idempotency_key)")
    except Exception as exc:  # the refusal is the figure
        connection.rollback()
        return str(exc).strip().splitlines()[0]
    connection.rollback()
    return "accepted"


def timed(connection: Any, sql: str, values: list[dict[str, str]]) -> dict[str, float]:
    """p50 and p99 in ms of ``sql`` over ``values``, after one warm pass."""
    cursor = connection.cursor()
    for params in values:
        cursor.execute(sql, params)
        cursor.fetchall()
    latencies = []
    for params in values:
        started = time.perf_counter()
        cursor.execute(sql, params)
        cursor.fetchall()
        latencies.append((time.perf_counter() - started) * 1000)
    connection.rollback()
    return {"p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


def retire_oldest_month(connection: Any) -> dict[str, float]:
    """The janitor's way (DELETE, cascade, VACUUM) against DETACH and DROP of a partition.

    The month is the oldest whole one: the data begins part-way through its first month.
    """
    cursor = connection.cursor()
    cursor.execute(
        "SELECT date_trunc('month', min(created_at)) + interval '1 month' FROM public.interactions"
    )
    month = cursor.fetchone()[0]
    bounds = (month, month)
    where = "created_at >= %s AND created_at < %s::timestamptz + interval '1 month'"
    started = time.perf_counter()
    cursor.execute(f"DELETE FROM public.interactions WHERE {where}", bounds)
    deleted = cursor.rowcount
    connection.commit()
    delete_seconds = time.perf_counter() - started
    connection.autocommit = True
    started = time.perf_counter()
    cursor.execute("VACUUM public.interactions, public.interaction_events")
    vacuum_seconds = time.perf_counter() - started
    started = time.perf_counter()
    cursor.execute(f"ALTER TABLE probe.interactions DETACH PARTITION probe.m{month:%Y%m}")
    cursor.execute(f"DROP TABLE probe.m{month:%Y%m}")
    drop_seconds = time.perf_counter() - started
    connection.autocommit = False
    return {
        "interactions_deleted": deleted,
        "delete_seconds": delete_seconds,
        "vacuum_seconds": vacuum_seconds,
        "detach_and_drop_seconds": drop_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    connection: Any = psycopg2.connect(libpq_url(args.database_url))
    try:
        partitions, build_seconds = build_copy(connection)
        refusal = unique_key_refusal(connection)
        cursor = connection.cursor()
        cursor.execute("SELECT max(customer_id), max(id) FROM public.interactions")
        top, rows = cursor.fetchone()
        rng = random.Random(11)
        customers = [
            {"c": customer_id(rng.randrange(int(top[2:]) + 1))} for _ in range(args.samples)
        ]
        cursor.execute(
            "SELECT provider_reference FROM public.interactions WHERE id = ANY(%s) "
            "AND provider_reference IS NOT NULL",
            ([rng.randint(1, rows) for _ in range(args.samples)],),
        )
        references = [{"r": row[0]} for row in cursor.fetchall()]
        connection.rollback()
        figures: dict[str, Any] = {"partitions": partitions, "copy_seconds": build_seconds}
        figures["unique_key_alone"] = refusal
        for name, table in (
            ("one table", "public.interactions"),
            ("by month", "probe.interactions"),
        ):
            figures[f"timeline, {name}"] = timed(
                connection, TIMELINE.format(table=table), customers
            )
            figures[f"by reference, {name}"] = timed(
                connection, BY_REFERENCE.format(table=table), references
            )
        figures["retire a month"] = retire_oldest_month(connection)
        connection.cursor().execute("DROP SCHEMA probe CASCADE")
        connection.commit()
    finally:
        connection.close()
    print(json.dumps(figures, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
