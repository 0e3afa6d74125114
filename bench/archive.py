"""Archive N expired interactions on PostgreSQL and compare the rate with PostgreSQL's COPY.

    python -m bench.archive [--rows 1000000] [--events 2] [--keep]

Builds its own database (interactions_bench_archive, or BENCH_ARCHIVE_DATABASE;
dropped afterwards), times COPY ... TO of the rows to move (the median of three runs), then
runs ``interactions archive run`` as a subprocess while threads dispatch messages through
CommunicationService on the same database, and prints the janitor's rate, its ratio to COPY,
its memory over the run and the dispatch latency before and during.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from config.settings import Settings
from models.migrate import upgrade
from models.session import build_engine, session_factory
from providers.log import LogProvider
from providers.registry import ProviderRegistry
from services.archive.jobs.audit import verify_archive
from services.archive.stores.local_directory import LocalStore
from services.sending.communication import CommunicationService

ROOT = Path(__file__).resolve().parents[1]
DATABASE = os.environ.get("BENCH_ARCHIVE_DATABASE", "interactions_bench_archive")
BASE_URL = os.environ.get(
    "INTERACTIONS_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
CUTOFF = datetime(2024, 1, 1, tzinfo=UTC)
COPY_RUNS = 3
EXPIRED = f"created_at < '{CUTOFF.isoformat()}' AND status <> 'pending'"

SEED_INTERACTIONS = """
INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key, channel, status,
  body_content, notify_reference, provider_reference, provider, meta_data, recipient,
  template_key, batch_id, attempt_count, created_at, updated_at, sent_at, delivered_at)
SELECT gen_random_uuid(), 'C-' || (g %% 200000), 'bench:' || g, 'email',
  CASE WHEN g %% 100000 = 0 THEN 'pending' ELSE 'delivered' END::interaction_status,
  'Your statement for the period is ready. Reference ' || g || '. Thank you.',
  md5(g::text), 'prov-' || md5(g::text), 'notify',
  jsonb_build_object('payload', jsonb_build_object('name', 'Person ' || g)),
  'person' || g || '@example.org', 'monthly_statement', 'batch-' || (g / 10000), 1,
  ts, ts, ts, ts
FROM generate_series(1, %(rows)s) AS g,
     LATERAL (SELECT timestamptz '2022-01-01' + (g * %(spacing)s) * interval '1 second') AS t(ts)
"""
SEED_EVENTS = """
INSERT INTO interaction_events (interaction_id, kind, from_status, to_status, outcome, source,
  attempt, provider, provider_event_id, reference, detail, occurred_at, recorded_at)
SELECT i.id, 'status_changed', 'pending', 'sent', 'applied', 'provider', 1, 'notify',
  'ev-' || i.id || '-' || n, i.provider_reference, jsonb_build_object('n', n),
  i.created_at, i.created_at
FROM interactions AS i, generate_series(1, %(events)s) AS n
ORDER BY i.id, n
"""


@dataclass
class Latencies:
    """Dispatch latencies in seconds, split into before and during the archive run."""

    before: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)
    errors: int = 0
    archiving: bool = False


def admin(sql: str) -> None:
    """One statement on the server's maintenance database (CREATE or DROP DATABASE)."""
    engine = sa.create_engine(BASE_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(sql)
    engine.dispose()


def seed(url: str, rows: int, events: int) -> float:
    """Migrate the database and fill it, in SQL; the seconds it took."""
    engine = build_engine(
        url, Settings(environment="test", database_url=url, database_statement_timeout_ms=0)
    )
    upgrade(engine)
    started = time.perf_counter()
    # Three years of history spread evenly, so about two thirds of it is past the cutoff.
    spacing = int(3 * 365 * 86400 / (rows * 1.5))
    with engine.begin() as connection:
        connection.exec_driver_sql(SEED_INTERACTIONS, {"rows": int(rows * 1.5), "spacing": spacing})
        connection.exec_driver_sql(SEED_EVENTS, {"events": events})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


class NullSink:
    """Counts what COPY writes, keeping none of it."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def copy_rate(url: str) -> tuple[int, int, float]:
    """Interactions and events COPY'd out, and the seconds it took, for the rows to move."""
    engine = build_engine(
        url, Settings(environment="test", database_url=url, database_statement_timeout_ms=0)
    )
    expired = f"created_at < '{CUTOFF.isoformat()}' AND status <> 'pending'"
    raw: Any = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        cursor.copy_expert(
            f"COPY (SELECT * FROM interactions WHERE {expired}) TO STDOUT", NullSink()
        )
        interactions = cursor.rowcount
        cursor.copy_expert(
            "COPY (SELECT e.* FROM interaction_events e JOIN interactions i"
            f" ON i.id = e.interaction_id WHERE i.{expired.replace(' AND ', ' AND i.')}) TO STDOUT",
            NullSink(),
        )
        events = cursor.rowcount
        seconds = time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return interactions, events, seconds


def dispatch_load(
    url: str, latencies: Latencies, stop: threading.Event, threads: int, rate: float
) -> list[threading.Thread]:
    """Threads dispatching ``rate`` messages a second in all, each latency recorded."""
    settings = Settings(environment="test", database_url=url, database_pool_size=threads + 2)
    engine = build_engine(url, settings)
    service = CommunicationService(
        session_factory(engine), ProviderRegistry.single(LogProvider()), settings
    )

    interval = threads / rate

    def work(worker: int) -> None:
        due = time.perf_counter()
        while not stop.is_set():
            due += interval
            started = time.perf_counter()
            try:
                service.dispatch(
                    f"C-live-{worker}",
                    "email",
                    "welcome",
                    {"name": "Ada"},
                    f"live:{uuid.uuid4()}",
                    "ada@example.org",
                )
            except Exception:  # counted: the figure is how many
                latencies.errors += 1
                continue
            elapsed = time.perf_counter() - started
            (latencies.during if latencies.archiving else latencies.before).append(elapsed)
            time.sleep(max(0.0, due - time.perf_counter()))

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def rss_mib(pid: int) -> float | None:
    """A process's resident memory in MiB, or None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def spread(values: list[float]) -> str:
    """p50/p95/p99/max of latencies in seconds, as milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    at = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.95, 0.99)]
    return "/".join(f"{v:.1f}" for v in [*at, ordered[-1] * 1000])


@dataclass
class JanitorRun:
    """What the janitor subprocess did: its time, its memory over time, its last line."""

    seconds: float
    samples: list[tuple[float, float]]
    summary: str


def run_janitor(url: str, archive_dir: Path) -> JanitorRun:
    """``interactions archive run`` as an operator runs it, its memory sampled every 0.2 s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    env.update({"INTERACTIONS_DATABASE_URL": url, "INTERACTIONS_ARCHIVE_URL": str(archive_dir)})
    command = [sys.executable, "-m", "workers", "archive", "run", "--before", f"{CUTOFF:%Y-%m-%d}"]
    started = time.perf_counter()
    janitor = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    samples: list[tuple[float, float]] = []
    while janitor.poll() is None:
        rss = rss_mib(janitor.pid)
        if rss is not None:
            samples.append((time.perf_counter() - started, rss))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    out, err = janitor.communicate()
    if janitor.returncode != 0:
        raise SystemExit(f"the janitor failed:\n{out}\n{err}")
    return JanitorRun(seconds, samples, out.strip().splitlines()[-1])


def outcome(url: str, archive_dir: Path) -> tuple[Any, int, float, Any]:
    """The catalogue's totals, expired rows left, and a full verify of the files."""
    engine = build_engine(url, Settings(environment="test", database_url=url))
    with engine.connect() as connection:
        left = connection.exec_driver_sql(
            f"SELECT count(*) FROM interactions WHERE {EXPIRED}"
        ).scalar_one()
        totals = connection.exec_driver_sql(
            "SELECT sum(row_count)::bigint, sum(event_count)::bigint, count(*),"
            " sum(byte_size)::bigint"
            " FROM archive_manifests WHERE state = 'archived'"
        ).one()
    started = time.perf_counter()
    audit = verify_archive(engine, LocalStore(archive_dir))
    engine.dispose()
    return totals, left, time.perf_counter() - started, audit


def write_json(path: str | None, numbers: dict[str, Any]) -> None:
    """The figures as numbers, for ``python -m bench``; nothing when no path was given."""
    if path:
        Path(path).write_text(json.dumps(numbers, indent=2))


def parse_args() -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="interactions past the cutoff")
    parser.add_argument("--events", type=int, default=2, help="events per interaction")
    parser.add_argument("--dispatchers", type=int, default=4, help="dispatching threads")
    parser.add_argument("--dispatch-rate", type=float, default=40.0, help="dispatches a second")
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    parser.add_argument("--json", help="also write the figures, as numbers, to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()

    url = sa.engine.make_url(BASE_URL).set(database=DATABASE).render_as_string(False)
    admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DATABASE}"')
    archive_dir = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    try:
        print(f"seeding {args.rows:,} expired interactions, {args.events} events each ...")
        print(f"  seeded in {seed(url, args.rows, args.events):.0f} s", flush=True)
        # COPY takes a few seconds, short enough for the machine's other load to move one
        # timing by a quarter either way: the baseline is the median of three.
        copies = [copy_rate(url) for _ in range(COPY_RUNS)]
        interactions, events = copies[0][0], copies[0][1]
        copy_times = sorted(seconds for _, _, seconds in copies)
        copy_seconds = copy_times[len(copy_times) // 2]

        latencies, stop = Latencies(), threading.Event()
        load = dispatch_load(url, latencies, stop, args.dispatchers, args.dispatch_rate)
        time.sleep(5)
        latencies.archiving = True
        janitor = run_janitor(url, archive_dir)
        latencies.archiving = False
        stop.set()
        for worker in load:
            worker.join()
        totals, left, verify_seconds, audit = outcome(url, archive_dir)
    finally:
        if not args.keep:
            admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            shutil.rmtree(archive_dir, ignore_errors=True)

    moved, copied = totals[0] + totals[1], interactions + events
    own = float(re.search(r" in ([0-9.]+) s ", janitor.summary).group(1))  # type: ignore[union-attr]
    rate, copy_rows = moved / own, copied / copy_seconds
    steady = [rss for at, rss in janitor.samples if at > 2.0] or [r for _, r in janitor.samples]
    quarters = ", ".join(f"{steady[len(steady) * k // 4]:.0f}" for k in (1, 2, 3))
    during = len(latencies.during) / janitor.seconds
    print(janitor.summary)
    print()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(
        f"archived: {totals[0]:,} interactions + {totals[1]:,} events = {moved:,} rows "
        f"in {totals[2]} files ({totals[3] / 1e6:.0f} MB); {left} expired rows left"
    )
    print(
        f"janitor, first read to last commit: {own:.1f} s = "
        f"{totals[0] / own:,.0f} interactions/s = {rate:,.0f} rows/s"
    )
    print(
        f"the command, process start to exit: {janitor.seconds:.1f} s = "
        f"{moved / janitor.seconds:,.0f} rows/s"
    )
    print(
        f"COPY ... TO of the same rows: {copy_seconds:.1f} s = "
        f"{interactions / copy_seconds:,.0f} interactions/s = {copy_rows:,.0f} rows/s"
    )
    print(f"  ({COPY_RUNS} runs: {', '.join(f'{t:.1f}' for t in copy_times)} s; the median above)")
    print(f"ratio janitor / COPY: {rate / copy_rows:.2f}")
    peak = max(r for _, r in janitor.samples)
    print(f"janitor RSS MiB: peak {peak:.0f}; at 25/50/75% of the run {quarters}")
    failed = len(audit.failed)
    print(f"verify: {audit.checked} files re-hashed in {verify_seconds:.1f} s, {failed} failed")
    print(f"dispatch latency ms p50/p95/p99/max, before: {spread(latencies.before)}")
    print(
        f"dispatch latency ms p50/p95/p99/max, during: {spread(latencies.during)} ({during:.0f}/s)"
    )
    print(f"dispatch errors: {latencies.errors}")
    write_json(
        args.json,
        {"rows": moved, "janitor_rows_per_s": rate, "copy_rows_per_s": copy_rows}
        | {"peak_rss_mib": peak, "expired_left": left, "verify_failed": failed},
    )


if __name__ == "__main__":
    main()
