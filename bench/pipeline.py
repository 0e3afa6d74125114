"""Pipeline throughput on PostgreSQL, Redis and the stub provider; prints figures.

    .venv/bin/python -m bench.pipeline                 # every figure, a few minutes
    .venv/bin/python -m bench.pipeline --memory        # also producer memory at 100k and 1M

End to end: dispatches/s from the first publish to the last SENT commit, with the service's
own worker settings, and the worker processes' CPU (user + system, every process of each
worker's tree) per message over the run. Its yardstick is the bare pipeline
(``bench.bare_pipeline_app``): the same workers, messages, tables, broker and stub with a task
that claims, sends and records in raw psycopg2 and nothing else; the two alternate, at 0 ms and
at ``--latency-ms`` provider latency. The no-op rate (a task that does nothing) is printed for
reference. Producer: our batch producer against a plain ``apply_async`` loop, 100,000 recipients.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import redis
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from broker.app import create_app
from broker.publisher import CeleryPublisher
from config.settings import Settings
from devtools.database import LEDGER_TABLES, empty_tables, recreate_database
from devtools.keys import use_test_keys
from devtools.processes import ROOT, Worker, start_workers, stop_workers, wait_until
from devtools.stub.process import StubProcess
from models import CustomerInteraction
from models.migrate import upgrade
from models.session import build_engine
from services.sending.batches import BatchProducer, RecipientRow

DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/interactions_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")
API_KEY = "bench-3f2a1b0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9-8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968"
TEMPLATE_ID = "7d1c2b3a-4e5f-4a6b-9c8d-0e1f2a3b4c5d"


PROJECT_APP = "workers.app"
FLOOR_APP = "bench.bare_pipeline_app"
UNPACED_PER_SECOND = 100_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# Set on the workers' connections (libpq reads it), to tell their PostgreSQL backends apart.
WORKER_APP_NAME = "bench-pipeline-worker"


@dataclass(frozen=True)
class Run:
    """One end-to-end run: its rate, the workers' CPU and their PostgreSQL backends' per message."""

    per_second: float
    cpu_ms: float
    database_cpu_ms: float


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` and all their descendants, reaped children included."""
    parents: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces; the fields after its closing parenthesis do not.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        parents.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(parents.get(pid, []))
    return total


def process_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of each of ``pids`` that still runs (not their children)."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        seconds[pid] = sum(int(value) for value in fields[11:13]) / CLOCK_TICKS
    return seconds


def workers_cpu(workers: list[Worker]) -> float:
    """The CPU seconds every process of these workers has used so far."""
    return tree_cpu_seconds([worker.pid for worker in workers])


def recipients(count: int, offset: int = 0) -> Iterator[RecipientRow]:
    """``count`` recipients with a realistic payload."""
    for i in range(offset, offset + count):
        yield RecipientRow(i + 2, f"C-{i}", f"resident{i}@example.org", {"name": f"Resident {i}"})


class Bench:
    """The services and settings every measurement shares."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args = args
        self.log_dir = log_dir
        self.redis = redis.Redis.from_url(BROKER_URL)
        self.stub = StubProcess(API_KEY, log_dir)
        self.settings = Settings(
            environment="test",
            database_url=DB_URL,
            broker_url=BROKER_URL,
            email_provider="notify",
            notify_base_url=self.stub.url,
            notify_api_key=API_KEY,  # type: ignore[arg-type]
            notify_templates={"welcome": TEMPLATE_ID},
            worker_concurrency=args.concurrency,
            worker_prefetch_multiplier=args.prefetch,
        )
        self.engine = build_engine(DB_URL, self.settings)
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.app = create_app(self.settings)
        self.publisher = CeleryPublisher(self.app)
        self.numbers: dict[str, float] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
        env.update(
            INTERACTIONS_DATABASE_URL=DB_URL,
            INTERACTIONS_BROKER_URL=BROKER_URL,
            INTERACTIONS_EMAIL_PROVIDER="notify",
            INTERACTIONS_NOTIFY_BASE_URL=self.stub.url,
            INTERACTIONS_NOTIFY_API_KEY=API_KEY,
            INTERACTIONS_NOTIFY_TEMPLATES=json.dumps({"welcome": TEMPLATE_ID}),
            INTERACTIONS_WORKER_CONCURRENCY=str(self.args.concurrency),
            INTERACTIONS_WORKER_PREFETCH_MULTIPLIER=str(self.args.prefetch),
            # A connection for each thread, as the bare pipeline has: connections beyond the
            # pool are closed when given back, so their backends would come and go (each a
            # fork and a log-in) and take their CPU out of the PostgreSQL figure as they went.
            INTERACTIONS_DATABASE_POOL_SIZE=str(max(5, self.args.concurrency)),
            # The stub sets no limit: the pace keeper still books every slot, but never holds
            # one back, so what is measured is the dispatch and not Notify's 50/s default.
            INTERACTIONS_NOTIFY_RATE_PER_MINUTE=str(UNPACED_PER_SECOND * 60),
            PGAPPNAME=WORKER_APP_NAME,
        )
        return env

    def clean(self) -> None:
        self.redis.flushdb()
        empty_tables(self.engine, *LEDGER_TABLES)

    def producer(self) -> BatchProducer:
        return BatchProducer(self.sessions, self.publisher, self.settings)

    def sent(self) -> int:
        with self.sessions() as session:
            return int(
                session.scalar(
                    sa.select(sa.func.count()).where(CustomerInteraction.status == "sent")
                )
                or 0
            )

    def drained(self) -> bool:
        return self.redis.llen("dispatch") == 0 and self.redis.hlen("unacked") == 0

    def backends_cpu(self) -> dict[int, float]:
        """The CPU so far of each PostgreSQL backend serving the workers (on this host)."""
        with self.engine.connect() as connection:
            pids = connection.scalars(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": WORKER_APP_NAME},
            ).all()
        return process_cpu_seconds(list(pids))

    def noop_rate(self, count: int) -> float:
        """Tasks/s through workers whose task does nothing, same settings and messages."""
        self.clean()
        workers = start_workers(
            "bench.noop_app", self.env(), self.args.workers, self.log_dir, "noop"
        )
        try:
            started = time.perf_counter()
            self.producer().run("noop", "email", "welcome", recipients(count))
            finished = wait_until(self.drained, 600, "the no-op queue to drain", every=0.05)
        finally:
            stop_workers(workers)
        return count / (finished - started)

    def end_to_end(self, app: str, count: int, latency_ms: float) -> Run:
        """Dispatches/s from the first publish to the last SENT commit, and CPU ms per message."""
        self.clean()
        self.stub.reset()
        self.stub.configure(latency_ms=latency_ms)
        workers = start_workers(app, self.env(), self.args.workers, self.log_dir, "e2e")
        try:
            cpu_before, database_before = workers_cpu(workers), self.backends_cpu()
            started = time.perf_counter()
            self.producer().run(f"e2e-{latency_ms}", "email", "welcome", recipients(count))
            finished = wait_until(lambda: self.sent() >= count, 900, f"{count} SENT", every=0.1)
            cpu = workers_cpu(workers) - cpu_before
            database = sum(
                seconds - database_before.get(pid, 0.0)
                for pid, seconds in self.backends_cpu().items()
            )
        finally:
            stop_workers(workers)
        stats = self.stub.stats()
        if stats["total"] != count or stats["duplicates"]:
            raise RuntimeError(
                f"{app}: stub counted {stats['total']} receipts, {stats['duplicates']} twice"
            )
        return Run(count / (finished - started), 1000 * cpu / count, 1000 * database / count)

    def producer_rate(self, count: int) -> float:
        """Recipients/s enqueued by the batch producer, already-sent query included."""
        self.clean()
        started = time.perf_counter()
        report = self.producer().run("producer", "email", "welcome", recipients(count))
        elapsed = time.perf_counter() - started
        assert report.enqueued == count == self.redis.llen("dispatch")
        return count / elapsed

    def apply_async_rate(self, count: int) -> float:
        """Tasks/s enqueued by a plain ``apply_async`` loop, the way most code does it."""
        self.clean()
        started = time.perf_counter()
        for row in recipients(count):
            self.app.send_task(
                "tasks.dispatch",
                kwargs={
                    "idempotency_key": f"loop:{row.customer_id}",
                    "customer_id": row.customer_id,
                    "channel": "email",
                    "template_key": "welcome",
                    "payload": row.payload,
                    "recipient": row.recipient,
                    "batch_id": "loop",
                },
            )
        elapsed = time.perf_counter() - started
        assert self.redis.llen("dispatch") == count
        return count / elapsed

    def producer_memory(self, count: int) -> int:
        """Peak resident memory, in KiB, of a process producing ``count`` recipients."""
        self.clean()
        out = subprocess.run(
            [sys.executable, "-m", "bench.producer_memory", str(count)],
            cwd=ROOT,
            env={**self.env(), "BENCH_DATABASE_URL": DB_URL},
            capture_output=True,
            text=True,
            check=True,
        )
        self.redis.flushdb()
        return int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=4000, help="per end-to-end run")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--prefetch", type=int, default=4, help="worker_prefetch_multiplier")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternating project/floor runs; medians reported"
    )
    parser.add_argument(
        "--only-dispatch", action="store_true", help="project and floor only: no producer figures"
    )
    parser.add_argument("--producer-recipients", type=int, default=100_000)
    parser.add_argument("--memory", action="store_true", help="also measure producer memory")
    parser.add_argument("--json", help="also write the figures, as numbers, to this file")
    args = parser.parse_args()

    use_test_keys()
    recreate_database(DB_URL)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        bench = Bench(args, Path(tmp))
        upgrade(bench.engine)
        try:
            figures = run(bench, args)
        finally:
            bench.stub.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(bench.numbers, indent=2))
    width = max(len(k) for k in figures)
    print(f"\nworkers={args.workers} threads={args.concurrency} prefetch={args.prefetch}")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")


def alternate(bench: Bench, n: int, latency_ms: float, rounds: int) -> tuple[Run, Run]:
    """The project and the floor, one after the other ``rounds`` times; the medians of each."""
    runs: dict[str, list[Run]] = {PROJECT_APP: [], FLOOR_APP: []}
    for _ in range(rounds):
        for app, done in runs.items():
            done.append(bench.end_to_end(app, n, latency_ms))
            last = done[-1]
            print(
                f"{app} at {latency_ms:g} ms: {last.per_second:,.0f}/s, {last.cpu_ms:.2f} ms CPU,"
                f" PostgreSQL {last.database_cpu_ms:.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    project, floor = (
        Run(
            median(r.per_second for r in done),
            median(r.cpu_ms for r in done),
            median(r.database_cpu_ms for r in done),
        )
        for done in runs.values()
    )
    return project, floor


def run(bench: Bench, args: argparse.Namespace) -> dict[str, str]:
    n, slow_ms = args.recipients, args.latency_ms
    noop = bench.noop_rate(n)
    fast, fast_floor = alternate(bench, n, 0, args.rounds)
    slow, slow_floor = alternate(bench, n, slow_ms, args.rounds)
    bench.numbers.update(
        noop_tasks_per_s=noop,
        dispatches_per_s=fast.per_second,
        floor_per_s=fast_floor.per_second,
        cpu_ms=fast.cpu_ms,
        floor_cpu_ms=fast_floor.cpu_ms,
        dispatches_per_s_slow=slow.per_second,
        floor_per_s_slow=slow_floor.per_second,
        cpu_ms_slow=slow.cpu_ms,
        floor_cpu_ms_slow=slow_floor.cpu_ms,
        database_cpu_ms=fast.database_cpu_ms,
        floor_database_cpu_ms=fast_floor.database_cpu_ms,
        slow_latency_ms=slow_ms,
    )
    figures = {"no-op tasks/s (reference)": f"{noop:,.0f}"}
    pairs = (("0 ms", fast, fast_floor), (f"{slow_ms:g} ms", slow, slow_floor))
    for label, project, floor in pairs:
        ratio = project.per_second / floor.per_second
        cpu = project.cpu_ms / floor.cpu_ms
        figures |= {
            f"dispatches/s, stub {label}: project / floor": (
                f"{project.per_second:,.0f} / {floor.per_second:,.0f} = {ratio:.2f}  (goal >= 0.8)"
            ),
            f"worker CPU ms/message, stub {label}: project / floor": (
                f"{project.cpu_ms:.2f} / {floor.cpu_ms:.2f} = {cpu:.2f}x  (goal <= 1.25x)"
            ),
            f"PostgreSQL CPU ms/message, stub {label}: project / floor": (
                f"{project.database_cpu_ms:.2f} / {floor.database_cpu_ms:.2f}"
            ),
        }
    if args.only_dispatch:
        return figures
    producer = bench.producer_rate(args.producer_recipients)
    loop = bench.apply_async_rate(args.producer_recipients)
    bench.numbers.update(producer_per_s=producer, apply_async_per_s=loop)
    figures |= {
        "producer recipients/s": f"{producer:,.0f}",
        "apply_async loop tasks/s": f"{loop:,.0f}",
        "producer / apply_async loop": f"{producer / loop:.1f}x  (goal >= 5x)",
    }
    if args.memory:
        small = bench.producer_memory(100_000)
        large = bench.producer_memory(1_000_000)
        figures["producer peak RSS, 100k recipients"] = f"{small / 1024:.0f} MiB"
        figures["producer peak RSS, 1M recipients"] = f"{large / 1024:.0f} MiB"
    return figures


if __name__ == "__main__":
    main()
