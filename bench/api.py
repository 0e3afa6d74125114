"""The HTTP API under gunicorn on PostgreSQL and Redis: messages accepted and batch rows uploaded.

    .venv/bin/python -m bench.api                          # 20,000 messages, 100,000-row uploads
    .venv/bin/python -m bench.api --requests 3000 --rows 20000 --rounds 1

Messages: every request is a new ``POST /v1/messages`` with its own ``Idempotency-Key``, an
API key made by ``interactions api-keys create``, and the app served as ``interactions api
serve`` serves it (``workers.gunicorn_commands.api_command``: the service's gunicorn config,
gthread). Each is authenticated, counted against the client's rate (the limit is raised so
the run is not refused, the count in Redis still happens), validated, written PENDING with
its first event and published as one ``tasks.dispatch``; no worker runs, so nothing is sent.
Beside it, the same load on a bare ``/v1/messages`` route (bench.bare_app) under the same
gunicorn command; afterwards the interactions rows must equal the 202 answers.

Uploads: one ``POST /v1/batches`` of N JSON Lines rows, streamed (chunked), against the batch
producer on the same rows as a CSV, driven as ``interactions send-batch`` drives it
(``workers.cli_batches.produce``) in a process of its own, on the same database and broker,
alternating. The API process's resident memory is sampled during the upload.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.http_load import (
    HOST,
    BenchStore,
    CpuMeter,
    CpuUse,
    Gunicorn,
    Measured,
    Request,
    ServerSetting,
    Target,
    cpu_check_ms,
    drive,
)
from devtools.database import LEDGER_TABLES, empty_tables
from devtools.processes import ROOT
from workers.gunicorn_commands import api_command, gunicorn_command

DB_URL = os.environ.get(
    "BENCH_API_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/bench_scale_api"
)
BROKER_URL = os.environ.get("BENCH_API_BROKER_URL", "redis://127.0.0.1:6379/11")
DATABASE_NAME = sa.engine.make_url(DB_URL).database or ""
REAL_APP = "workers.api:create_app()"
BARE_APP = "bench.bare_app:create_app()"
MESSAGES = "/v1/messages"
GOAL_RATE = 1000.0
GOAL_P99_MS = 50.0
GOAL_ROWS = 20_000.0
CLIENT = "bench-client"
CHANNEL, TEMPLATE = "email", "welcome"
BLOCK = 64 * 1024


def message_requests(count: int) -> list[Request]:
    """``count`` messages, each with an idempotency key of its own."""
    requests: list[Request] = []
    for _ in range(count):
        key = str(uuid.uuid4())
        n = key[:8]
        body = {
            "customer_id": f"C-{n}",
            "channel": CHANNEL,
            "template_key": TEMPLATE,
            "payload": {"name": f"Resident {n}"},
            "recipient": f"resident.{n}@example.org",
        }
        requests.append((json.dumps(body).encode(), {"Idempotency-Key": key}))
    return requests


def json_lines(rows: int) -> list[bytes]:
    """The upload's body in blocks of about 64 KiB, built before the clock starts."""
    blocks, block, size = [], [], 0
    for n in range(rows):
        line = json.dumps(
            {
                "customer_id": f"C-{n}",
                "recipient": f"resident{n}@example.org",
                "payload": {"name": f"Resident {n}"},
            }
        ).encode()
        block.append(line + b"\n")
        size += len(line) + 1
        if size >= BLOCK:
            blocks.append(b"".join(block))
            block, size = [], 0
    if block:
        blocks.append(b"".join(block))
    return blocks


def csv_file(rows: int, path: Path) -> Path:
    """The same rows as ``send-batch`` reads them."""
    with path.open("w") as stream:
        stream.write("customer_id,recipient,name\n")
        for n in range(rows):
            stream.write(f"C-{n},resident{n}@example.org,Resident {n}\n")
    return path


class Store(BenchStore):
    """The benchmark's own database and Redis db: counted, and emptied before and after."""

    def __init__(self) -> None:
        super().__init__("bench.api", DB_URL, BROKER_URL, "BENCH_API")

    def interactions(self) -> int:
        """Interactions in the ledger."""
        with self.engine.connect() as connection:
            return int(connection.scalar(sa.text("SELECT count(*) FROM interactions")) or 0)

    def queued(self) -> int:
        """Dispatch messages waiting on the broker."""
        return int(self.redis.llen("dispatch"))

    def empty(self) -> None:
        """Nothing queued, recorded or in the ledger: every run starts alike (keys stay)."""
        self.redis.flushdb()
        empty_tables(self.engine, *LEDGER_TABLES)
        with self.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("VACUUM ANALYZE interactions, queued_messages")
            )


@dataclass(frozen=True)
class Messages:
    """The messages figures: the API and the bare route under one gunicorn setting."""

    setting: ServerSetting
    real: Measured
    stored: int
    bare: Measured
    cpu_check_ms: float

    @property
    def ratio(self) -> float:
        return self.real.rate / self.bare.rate


@dataclass(frozen=True)
class Upload:
    """One batch upload over HTTP, or one producer run from the command line."""

    rows: int
    seconds: float
    enqueued: int
    cpu: CpuUse | None = None
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    producer_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """The largest resident size any of ``pids`` reached while it ran (sampled every 20 ms)."""

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, *(_rss_kib(pid) for pid in self._pids))
            self._stop.wait(0.02)


class Bench:
    """The API and its baselines, with the same key, database and broker."""

    def __init__(self, args: argparse.Namespace, store: Store, log_dir: Path) -> None:
        self.args = args
        self.store = store
        self.log_dir = log_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
        self.env.update(
            INTERACTIONS_ENVIRONMENT="test",
            INTERACTIONS_DATABASE_URL=DB_URL,
            INTERACTIONS_BROKER_URL=BROKER_URL,
            # Counted per request as always; high enough that the run itself is not refused.
            INTERACTIONS_API_RATE_LIMIT_REQUESTS=str(10**9),
            PYTHONPATH=str(ROOT),
        )
        self.env.update({k: v for k, v in os.environ.items() if k.startswith("INTERACTIONS_ENC")})
        self.env["INTERACTIONS_BLIND_INDEX_KEY"] = os.environ["INTERACTIONS_BLIND_INDEX_KEY"]
        self.secret = self._api_key()

    def _api_key(self) -> str:
        """A key made as an operator makes one: ``interactions api-keys create``."""
        made = subprocess.run(
            [sys.executable, "-m", "workers", "api-keys", "create", CLIENT, "--scope", "send"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return made.stdout.strip().splitlines()[0]

    def _serve(self, app: str, setting: ServerSetting) -> Gunicorn:
        def command(bind: str) -> list[str]:
            if app == REAL_APP:
                return api_command(bind, setting.workers, setting.threads)
            return gunicorn_command(app, bind, setting.workers, setting.threads)

        return Gunicorn(command, self.env, self.log_dir / "gunicorn.log")

    def _load(self, app: str, setting: ServerSetting) -> tuple[Measured, int]:
        """Warm every worker up, then measure: the figures and the interactions written."""
        args = self.args
        target = Target(
            MESSAGES,
            message_requests,
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.secret}"},
        )
        server = self._serve(app, setting)
        meter = CpuMeter(server.process.pid, DATABASE_NAME)
        try:
            drive(server.port, target, args.warmup, args.processes, args.connections, 60, meter)
            before = self.store.interactions()
            measured = drive(
                server.port,
                target,
                args.requests,
                args.processes,
                args.connections,
                args.time_limit,
                meter,
            )
            return measured, self.store.interactions() - before
        finally:
            server.stop()

    def messages(self, setting: ServerSetting) -> Messages:
        """The API and the bare route under ``setting``."""
        check = cpu_check_ms()
        self.store.empty()
        real, stored = self._load(REAL_APP, setting)
        bare, _ = self._load(BARE_APP, setting)
        return Messages(setting, real, stored, bare, check)

    def upload(self, server: Gunicorn, body: list[bytes], batch_id: str) -> Upload:
        """One streamed upload of ``body``; the report, the time and the API's memory."""
        self.store.empty()
        pids = server.worker_pids()
        before = max(_rss_kib(pid) for pid in pids)
        meter = CpuMeter(server.process.pid, DATABASE_NAME)
        path = f"/v1/batches?batch_id={batch_id}&channel={CHANNEL}&template_key={TEMPLATE}"
        headers = {
            "Content-Type": "application/x-ndjson",
            "Authorization": f"Bearer {self.secret}",
        }
        connection = http.client.HTTPConnection(HOST, server.port, timeout=600)
        with RssSampler(pids) as rss:
            meter.start()
            started = time.perf_counter()
            connection.request("POST", path, iter(body), headers, encode_chunked=True)
            response = connection.getresponse()
            answer = response.read()
            seconds = time.perf_counter() - started
            cpu = meter.stop(clients=0.0)
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"the upload answered {response.status}: {answer[:500]!r}")
        report = json.loads(answer)
        queued = self.store.queued()
        if report["enqueued"] != report["rows"] or queued != report["rows"]:
            raise RuntimeError(f"upload: {report['rows']} rows, {report['enqueued']} enqueued, "
                               f"{queued} queued")  # fmt: skip
        return Upload(report["rows"], seconds, report["enqueued"], cpu, before, rss.peak)

    def send_batch(self, csv: Path, batch_id: str) -> Upload:
        """The command line's producer on the same rows, in its own process."""
        self.store.empty()
        done = subprocess.run(
            [sys.executable, "-m", "bench.api", "--produce", str(csv), batch_id],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        if self.store.queued() != figures["enqueued"]:
            raise RuntimeError(f"send-batch: {figures} but {self.store.queued()} queued")
        return Upload(
            figures["rows"],
            figures["seconds"],
            figures["enqueued"],
            producer_cpu_seconds=figures["cpu_seconds"],
        )

    def uploads(self, setting: ServerSetting) -> tuple[list[Upload], list[Upload]]:
        """Alternating API uploads and command-line runs of the same rows."""
        rows = self.args.rows
        body = json_lines(rows)
        csv = csv_file(rows, self.log_dir / "rows.csv")
        api_runs: list[Upload] = []
        cli_runs: list[Upload] = []
        server = self._serve(REAL_APP, setting)
        try:
            # Every worker imports and connects before the measured run.
            for n in range(2 * setting.workers):
                self.upload(server, json_lines(200), f"warm-{n}")
            for n in range(self.args.rounds):
                api_runs.append(self.upload(server, body, f"api-{n}"))
                cli_runs.append(self.send_batch(csv, f"cli-{n}"))
        finally:
            server.stop()
        return api_runs, cli_runs


def produce(csv: Path, batch_id: str) -> None:
    """``send-batch``'s producer over ``csv``, timed in this process; prints JSON."""
    from services.container import container  # noqa: PLC0415 - this process's own settings
    from workers.cli_batches import produce as send_batch  # noqa: PLC0415

    with container().engine.connect() as connection:  # connected, as a long-lived CLI would be
        connection.execute(sa.text("SELECT 1"))
    started, cpu = time.perf_counter(), time.process_time()
    report = send_batch(batch_id, CHANNEL, TEMPLATE, csv, None, quiet=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    figures = {"rows": report.rows, "enqueued": report.enqueued, "seconds": seconds}
    print(json.dumps(figures | {"cpu_seconds": cpu}))


def _best(runs: list[Upload]) -> Upload:
    return max(runs, key=lambda run: run.rate)


def report(messages: Messages, api_runs: list[Upload], cli_runs: list[Upload]) -> dict[str, Any]:
    """Print the figures; the numbers ``python -m bench`` reads."""
    real, bare = messages.real, messages.bare
    p99 = real.percentile_ms(0.99)
    answered = real.statuses.get(202, 0)
    lost = messages.stored != answered
    met = real.rate >= GOAL_RATE and p99 < GOAL_P99_MS and not real.not_2xx and not lost
    api, cli = _best(api_runs), _best(cli_runs)
    upload_cpu = api.cpu.seconds if api.cpu else {}
    cli_us = 1e6 * cli.producer_cpu_seconds / cli.rows
    per_row = ", ".join(f"{k} {1e6 * v / api.rows:,.0f}" for k, v in upload_cpu.items())
    figures = {
        "gunicorn setting": f"{messages.setting}, the service's gunicorn config",
        "POST /v1/messages accepted/s": f"{real.rate:,.0f}",
        "latency p50 / p99": f"{real.percentile_ms(0.5):.1f} ms / {p99:.1f} ms",
        "answers": ", ".join(f"{n:,} x {s}" for s, n in sorted(real.statuses.items())),
        "not 2xx or no answer": f"{real.not_2xx}  {real.problems() or ''}".rstrip(),
        "interactions rows / 202 answers": f"{messages.stored:,} / {answered:,}"
        + ("  (MISMATCH)" if lost else "  (equal)"),
        "bare /v1/messages route req/s": f"{bare.rate:,.0f}",
        "bare route p99": f"{bare.percentile_ms(0.99):.1f} ms",
        "API / bare route": f"{messages.ratio:.2f}",
        "CPU per message": real.cpu.per_request_us(real.answered),
        "CPU per bare request": bare.cpu.per_request_us(bare.answered),
        "gunicorn workers' CPU (of a core)": f"API {real.cpu.worker_shares(real.seconds)}; "
        f"bare {bare.cpu.worker_shares(bare.seconds)}",
        "CPU check (fixed loop)": f"{messages.cpu_check_ms:.0f} ms; lower is a faster core",
        "messages goal": f">= {GOAL_RATE:,.0f}/s with p99 < {GOAL_P99_MS:.0f} ms: "
        + ("met" if met else "MISSED"),
        "upload rows/s (POST /v1/batches)": "  ".join(f"{r.rate:,.0f}" for r in api_runs),
        "send-batch producer rows/s": "  ".join(f"{r.rate:,.0f}" for r in cli_runs),
        "upload / producer (best of each)": f"{api.rate / cli.rate:.2f}",
        "upload CPU per row": f"{per_row} us; machine {api.cpu.machine_busy:.0%} busy"
        if api.cpu
        else "-",
        "producer CPU per row (its process)": f"{cli_us:,.0f} us",
        "API worker RSS before / peak": f"{api.rss_before_kib / 1024:.0f} MiB / "
        f"{api.rss_peak_kib / 1024:.0f} MiB during {api.rows:,} rows",
        "upload goal": f">= {GOAL_ROWS:,.0f} rows/s: "
        + ("met" if api.rate >= GOAL_ROWS else "MISSED"),
    }
    width = max(len(name) for name in figures)
    print()
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    return {
        "setting": str(messages.setting),
        "messages_per_s": real.rate,
        "p50_ms": real.percentile_ms(0.5),
        "p99_ms": p99,
        "not_2xx": real.not_2xx,
        "server_errors": real.server_errors,
        "stored": messages.stored,
        "answered_202": answered,
        "bare_per_s": bare.rate,
        "bare_p99_ms": bare.percentile_ms(0.99),
        "message_cpu_us": {k: 1e6 * v / real.answered for k, v in real.cpu.seconds.items()},
        "worker_cpu_share": [seconds / real.seconds for seconds in real.cpu.workers],
        "upload_rows": api.rows,
        "upload_rows_per_s": api.rate,
        "upload_runs_per_s": [r.rate for r in api_runs],
        "upload_cpu_us_per_row": {k: 1e6 * v / api.rows for k, v in upload_cpu.items()},
        "cli_rows_per_s": cli.rate,
        "cli_runs_per_s": [r.rate for r in cli_runs],
        "cli_cpu_us_per_row": cli_us,
        "upload_rss_before_mib": api.rss_before_kib / 1024,
        "upload_rss_peak_mib": api.rss_peak_kib / 1024,
        "cpu_check_ms": messages.cpu_check_ms,
        "median_upload_per_s": statistics.median(r.rate for r in api_runs),
    }


def main() -> None:
    """Measure, print; exit 1 if a 202 went unstored or a 5xx came back."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="messages per run")
    parser.add_argument("--warmup", type=int, default=1_000, help="messages before each run")
    parser.add_argument("--setting", default="2x8", help="gunicorn WORKERSxTHREADS (api serve's)")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=6, help="connections per process")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per run, at most")
    parser.add_argument("--rows", type=int, default=100_000, help="rows per upload")
    parser.add_argument("--rounds", type=int, default=2, help="uploads, each beside a CLI run")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--produce", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce:
        produce(Path(args.produce[0]), args.produce[1])
        return
    setting = ServerSetting.parse(args.setting)
    # SIGTERM unwinds like Ctrl-C, so every finally stops what this run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    store = Store()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            bench = Bench(args, store, Path(tmp))
            messages = bench.messages(setting)
            print("measured messages", file=sys.stderr)
            api_runs, cli_runs = bench.uploads(setting)
    finally:
        store.close()
    numbers = report(messages, api_runs, cli_runs)
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    if numbers["stored"] != numbers["answered_202"] or numbers["server_errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
