"""Authenticated Notify callbacks per second through gunicorn into PostgreSQL; prints figures.

    .venv/bin/python -m bench.webhooks                      # each gunicorn setting; the best wins
    .venv/bin/python -m bench.webhooks --settings 2x4 --requests 5000

Every request is a distinct delivery receipt carrying the bearer token the app trusts, so each
one is verified, parsed, committed as an inbox row and covered by a queued drain (a Redis SET
NX, and a drain message on Redis when none is waiting): the real path, with no Celery worker
running, so one drain message stays queued for the whole run. The bare figure is the same
gunicorn settings and the same load on a Flask route that does nothing (bench.bare_app), so
the ratio is what the webhook itself costs. The load comes from keep-alive connections in
separate processes, so no client GIL caps the figure; those processes still share the
machine's cores with the server.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import json
import multiprocessing
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import redis
import sqlalchemy as sa

from config.settings import Settings
from devtools.database import recreate_database
from devtools.keys import use_test_keys
from devtools.processes import ROOT, free_port, wait_until
from models.migrate import upgrade
from models.session import build_engine
from services.callbacks.signatures import token_sha256

DB_URL = os.environ.get(
    "BENCH_WEBHOOKS_DATABASE_URL",
    "postgresql+psycopg2://postgres@127.0.0.1:5432/interactions_bench_webhooks",
)
BROKER_URL = os.environ.get("BENCH_WEBHOOKS_BROKER_URL", "redis://127.0.0.1:6379/11")
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
HOST = "127.0.0.1"
CALLBACK_PATH = "/callbacks/notify"
REAL_APP = "workers.webhooks:create_app()"
BARE_APP = "bench.bare_app:create_app()"
GOAL_RATE = 1000.0
GOAL_P99_MS = 50.0

# What one client process sends back: start, end, CPU seconds, latencies (s), answers and
# errors; or None once it is ready to start.
ClientResult = tuple[float, float, float, list[float], dict[int, int], dict[str, int]]
ClientMessage = ClientResult | None


def receipt(now: str, provider_id: str | None = None, reference: str | None = None) -> bytes:
    """A delivery receipt as the stub posts one; by default for a notification nobody knows."""
    return json.dumps(
        {
            "id": provider_id or str(uuid.uuid4()),
            "reference": reference or str(uuid.uuid4()),
            "to": "someone@example.org",
            "status": "delivered",
            "created_at": now,
            "completed_at": now,
            "sent_at": now,
            "notification_type": "email",
        }
    ).encode()


class _Tally:
    """One client process's measurements, added to by each of its connection threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, latencies: list[float], statuses: Counter[int], errors: Counter[str]) -> None:
        with self.lock:
            self.latencies.extend(latencies)
            self.statuses.update(statuses)
            self.errors.update(errors)


def _drive_connection(
    port: int, token: str, bodies: list[bytes], deadline: float, tally: _Tally
) -> None:
    """Post ``bodies`` one after another on one keep-alive connection, until the deadline."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    try:
        for number, body in enumerate(bodies):
            if time.monotonic() > deadline:
                errors["not sent: time limit"] += len(bodies) - number
                break
            began = time.perf_counter()
            try:
                connection.request("POST", CALLBACK_PATH, body, headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] += 1
                connection.close()
                continue
            latencies.append(time.perf_counter() - began)
            statuses[response.status] += 1
    finally:
        connection.close()
        tally.add(latencies, statuses, errors)


def client_process(
    port: int,
    token: str,
    count: int,
    connections: int,
    time_limit: float,
    start: Event,
    messages: Queue[ClientMessage],
) -> None:
    """Send ``count`` callbacks over ``connections`` threads once every client is ready."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Built before the start, so the measured loop spends no client time on JSON.
    bodies = [receipt(now) for _ in range(count)]
    tally = _Tally()
    messages.put(None)
    if not start.wait(timeout=60):
        return
    started, cpu = time.monotonic(), time.process_time()
    threads = [
        threading.Thread(
            target=_drive_connection,
            args=(port, token, bodies[n::connections], started + time_limit, tally),
        )
        for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished, cpu = time.monotonic(), time.process_time() - cpu
    tallied = (tally.latencies, dict(tally.statuses), dict(tally.errors))
    messages.put((started, finished, cpu, *tallied))


@dataclass(frozen=True)
class Measured:
    """One load run: how many answers, how fast, and what they were."""

    seconds: float
    latencies: list[float]
    statuses: Counter[int]
    errors: Counter[str]
    cpu: CpuUse

    @property
    def answered(self) -> int:
        """Requests that got an answer, whatever its status."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Answers per second, from the first client's start to the last client's end."""
        return self.answered / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        """The latency under which ``fraction`` of the answers came, in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    @property
    def not_2xx(self) -> int:
        """Answers outside 2xx, plus requests that got no answer."""
        return sum(self.problems().values())

    def problems(self) -> dict[str, int]:
        """How many of each answer outside 2xx, and of each error instead of an answer."""
        bad = {str(s): n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}
        return bad | dict(self.errors)


def drive(
    port: int,
    token: str,
    requests: int,
    processes: int,
    connections: int,
    time_limit: float,
    meter: CpuMeter,
) -> Measured:
    """``requests`` callbacks from ``processes`` client processes, started together."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    messages: Queue[ClientMessage] = context.Queue()
    shares = [requests // processes + (n < requests % processes) for n in range(processes)]
    clients = [
        context.Process(
            target=client_process,
            args=(port, token, share, connections, time_limit, start, messages),
            daemon=True,
        )
        for share in shares
    ]
    for client in clients:
        client.start()
    try:
        _receive(messages, clients, 60)
        meter.start()
        start.set()
        collected = [r for r in _receive(messages, clients, time_limit + 60) if r is not None]
        for client in clients:
            client.join(timeout=10)
        cpu = meter.stop(clients=sum(result[2] for result in collected))
    finally:
        for client in clients:
            if client.is_alive():
                client.terminate()
                client.join()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for _, _, _, client_latencies, client_statuses, client_errors in collected:
        latencies.extend(client_latencies)
        statuses.update(client_statuses)
        errors.update(client_errors)
    seconds = max(r[1] for r in collected) - min(r[0] for r in collected)
    return Measured(seconds, latencies, statuses, errors, cpu)


def _receive(
    messages: Queue[ClientMessage], clients: list[SpawnProcess], timeout: float
) -> list[ClientMessage]:
    """One message from each client, failing fast when one of them dies before sending it."""
    received: list[ClientMessage] = []
    deadline = time.monotonic() + timeout
    while len(received) < len(clients):
        try:
            received.append(messages.get(timeout=0.2))
        except queue.Empty:
            if any(client.exitcode not in (None, 0) for client in clients):
                raise RuntimeError("a client process died; its traceback is above") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the clients did not report within {timeout:.0f}s") from None
    return received


@dataclass(frozen=True)
class ServerSetting:
    """gunicorn's worker processes and threads per worker."""

    workers: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> ServerSetting:
        """``"2x8"``: two workers of eight threads."""
        workers, _, threads = text.partition("x")
        return cls(int(workers), int(threads))

    def __str__(self) -> str:
        return f"-w {self.workers} -k gthread --threads {self.threads}"


class Gunicorn:
    """gunicorn serving one app on a free port; stopped by its PID."""

    def __init__(self, app: str, setting: ServerSetting, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        command = [
            GUNICORN,
            app,
            "-b",
            f"{HOST}:{self.port}",
            *str(setting).split(),
            "--log-level",
            "warning",
        ]
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            wait_until(self._healthy, 30, f"gunicorn serving {app}")
        except BaseException:
            self.stop()
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
        connection = http.client.HTTPConnection(HOST, self.port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """Graceful stop (the master stops its workers); SIGKILL after 30 s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


CPU_GROUPS = ("gunicorn", "postgresql", "redis", "clients", "everything else")
DATABASE_NAME = sa.engine.make_url(DB_URL).database or ""
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each group of processes used during a run, and how busy the machine was."""

    seconds: dict[str, float]
    machine_busy: float

    def per_request_us(self, requests: int) -> str:
        """Each group's CPU per request, in microseconds, on one line."""
        shares = [f"{name} {1e6 * self.seconds[name] / requests:,.0f}" for name in CPU_GROUPS]
        return f"{', '.join(shares)} us; machine {self.machine_busy:.0%} busy"


def _process_cpu() -> dict[int, tuple[str, int, float]]:
    """Every process's name, parent and CPU seconds, from /proc."""
    found: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name == "postgres":
            # A backend names its database in its title; others' databases are not ours.
            with contextlib.suppress(OSError):
                name = (entry / "cmdline").read_bytes().decode(errors="replace")
        rest = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (name, int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK)
    return found


def _machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine since boot, all cores together."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def cpu_check_ms() -> float:
    """How long a fixed pure-Python loop takes now; virtual machines' cores vary in speed."""
    started = time.process_time()
    total = 0
    for number in range(2_000_000):
        total += number
    return (time.process_time() - started) * 1000


class CpuMeter:
    """Where the machine's CPU went between start() and stop(), by group of processes.

    PostgreSQL counts only the backends serving the benchmark's database; its shared
    processes (WAL writer, checkpointer) and every other database count as everything else.
    Client processes report their own; whatever the groups do not explain, this driver and
    any other work on the machine included, is "everything else".
    """

    def __init__(self, gunicorn_pid: int) -> None:
        self._gunicorn_pid = gunicorn_pid

    def start(self) -> None:
        self._processes = _process_cpu()
        self._machine = _machine_cpu()

    def stop(self, clients: float) -> CpuUse:
        used = dict.fromkeys(CPU_GROUPS, 0.0)
        for pid, (name, parent, seconds) in _process_cpu().items():
            group = self._group(pid, name, parent)
            if group is not None:
                used[group] += seconds - self._processes.get(pid, (name, parent, 0.0))[2]
        used["clients"] = clients
        busy, total = (now - then for now, then in zip(_machine_cpu(), self._machine, strict=True))
        used["everything else"] = max(0.0, busy - sum(used.values()))
        return CpuUse(used, busy / total if total else 0.0)

    def _group(self, pid: int, name: str, parent: int) -> str | None:
        if self._gunicorn_pid in (pid, parent):
            return "gunicorn"
        if name.startswith("postgres: ") and f" {DATABASE_NAME} " in name:
            return "postgresql"
        if name.startswith("redis-server"):
            return "redis"
        return None


class Store:
    """The benchmark's own database and Redis db: counted, and emptied before and after."""

    def __init__(self) -> None:
        use_test_keys()
        # Two runs at once would drop each other's database and flush each other's queue.
        digest = hashlib.sha256(f"{DB_URL} {BROKER_URL}".encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"bench-webhooks-{digest}.lock"
        self._lock = lock_path.open("w")  # held, and closed, by close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SystemExit(
                "another bench.webhooks run is using this database and Redis db; "
                "wait for it, or set BENCH_WEBHOOKS_DATABASE_URL and BENCH_WEBHOOKS_BROKER_URL"
            ) from None

        recreate_database(DB_URL)
        migrator = build_engine(DB_URL, Settings(environment="test", database_url=DB_URL))
        upgrade(migrator)
        migrator.dispose()
        # A connection per count: one kept between runs would not survive a server restart.
        self.engine = sa.create_engine(DB_URL, poolclass=sa.pool.NullPool)
        self.redis = redis.Redis.from_url(BROKER_URL)
        self.redis.flushdb()

    def rows(self) -> int:
        """Callbacks stored in the inbox."""
        with self.engine.connect() as connection:
            return int(connection.scalar(sa.text("SELECT count(*) FROM inbound_events")) or 0)

    def queued(self) -> int:
        """Messages waiting on the status queue (drains)."""
        return int(self.redis.llen("status"))

    def close(self) -> None:
        """Flush the Redis db and let the next run in."""
        try:
            self.redis.flushdb()
            self.redis.close()
            self.engine.dispose()
        finally:
            self._lock.close()


@dataclass(frozen=True)
class Row:
    """The figures of one gunicorn setting."""

    setting: ServerSetting
    real: Measured
    stored: int
    queued: int
    bare: Measured
    cpu_check_ms: float

    @property
    def ratio(self) -> float:
        """Real callbacks/s over bare requests/s."""
        return self.real.rate / self.bare.rate


class Bench:
    """Runs the real app and the bare one under each setting, with the same load."""

    def __init__(self, args: argparse.Namespace, store: Store, log_dir: Path) -> None:
        self.args = args
        self.store = store
        self.log_dir = log_dir
        self.token = secrets.token_urlsafe(32)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
        self.env.update(
            INTERACTIONS_DATABASE_URL=DB_URL,
            INTERACTIONS_BROKER_URL=BROKER_URL,
            INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256=json.dumps([token_sha256(self.token)]),
        )

    def load(self, app: str, setting: ServerSetting) -> tuple[Measured, int, int]:
        """Warm every worker up, then measure: the figures, rows stored and tasks queued."""
        args = self.args
        server = Gunicorn(app, setting, self.env, self.log_dir / "gunicorn.log")
        meter = CpuMeter(server.process.pid)
        try:
            drive(server.port, self.token, args.warmup, args.processes, args.connections, 60, meter)
            rows, queued = self.store.rows(), self.store.queued()
            measured = drive(
                server.port,
                self.token,
                args.requests,
                args.processes,
                args.connections,
                args.time_limit,
                meter,
            )
            return measured, self.store.rows() - rows, self.store.queued() - queued
        finally:
            server.stop()

    def row(self, setting: ServerSetting) -> Row:
        """The real and the bare figures for one setting."""
        check = cpu_check_ms()
        self.store.redis.flushdb()
        real, stored, queued = self.load(self.args.app, setting)
        self.store.redis.flushdb()
        bare, _, _ = self.load(BARE_APP, setting)
        return Row(setting, real, stored, queued, bare, check)


def report(rows: list[Row], args: argparse.Namespace) -> None:
    """Print one line per setting, then the best one in full."""
    print(
        f"\nload: {args.requests:,} distinct callbacks per run from {args.processes} processes "
        f"x {args.connections} keep-alive connections, after {args.warmup:,} to warm up"
    )
    print(
        f"{'gunicorn setting':<28}{'callbacks/s':>12}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non-2xx':>9}{'busy':>6}{'bare req/s':>12}{'bare p99':>10}{'ratio':>7}"
        f"{'check ms':>10}"
    )
    for row in rows:
        print(
            f"{row.setting!s:<28}{row.real.rate:>12,.0f}{row.real.percentile_ms(0.5):>8.1f}"
            f"{row.real.percentile_ms(0.99):>8.1f}{row.real.not_2xx:>9}"
            f"{row.real.cpu.machine_busy:>6.0%}"
            f"{row.bare.rate:>12,.0f}{row.bare.percentile_ms(0.99):>10.1f}{row.ratio:>7.2f}"
            f"{row.cpu_check_ms:>10.0f}"
        )
    for row in rows:
        if row.real.not_2xx or row.bare.not_2xx:
            print(f"  {row.setting}: not 2xx: {row.real.problems()}, bare {row.bare.problems()}")
    best = max(rows, key=lambda row: row.real.rate)
    real = best.real
    p99 = real.percentile_ms(0.99)
    met = real.rate >= GOAL_RATE and p99 < GOAL_P99_MS and real.not_2xx == 0
    sent = real.statuses.get(202, 0)
    figures = {
        "best gunicorn setting": str(best.setting),
        "callbacks/s": f"{real.rate:,.0f}",
        "latency p50 / p99": f"{real.percentile_ms(0.5):.1f} ms / {p99:.1f} ms",
        "answers": ", ".join(f"{n:,} x {s}" for s, n in sorted(real.statuses.items())),
        "non-2xx or no answer": f"{real.not_2xx}  {real.problems() or ''}".rstrip(),
        "rows stored / 202 answers": f"{best.stored:,} / {sent:,}"
        + ("  (equal)" if best.stored == sent else "  (MISMATCH)"),
        "drain messages queued": f"{best.queued:,}",
        "bare route requests/s": f"{best.bare.rate:,.0f}",
        "callbacks / bare route": f"{best.ratio:.2f}",
        "CPU per callback": best.real.cpu.per_request_us(best.real.answered),
        "CPU per bare request": best.bare.cpu.per_request_us(best.bare.answered),
        "CPU check (fixed loop)": f"{best.cpu_check_ms:.0f} ms before this setting ran; "
        "lower is a faster core",
        "goal": f">= {GOAL_RATE:,.0f}/s with p99 < {GOAL_P99_MS:.0f} ms: "
        + ("met" if met else "MISSED"),
    }
    width = max(len(name) for name in figures)
    print()
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")


def write_json(rows: list[Row], path: Path) -> None:
    """The best setting's figures as numbers, for ``python -m bench``."""
    best = max(rows, key=lambda row: row.real.rate)
    numbers = {
        "setting": str(best.setting),
        "callbacks_per_s": best.real.rate,
        "p50_ms": best.real.percentile_ms(0.5),
        "p99_ms": best.real.percentile_ms(0.99),
        "not_2xx": best.real.not_2xx,
        "stored": best.stored,
        "answered_202": best.real.statuses.get(202, 0),
        "bare_per_s": best.bare.rate,
        "bare_p99_ms": best.bare.percentile_ms(0.99),
    }
    path.write_text(json.dumps(numbers, indent=2))


def main() -> None:
    """Measure every setting, print the figures; exit 1 if one failed or a 202 went unstored."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="callbacks per run")
    parser.add_argument("--warmup", type=int, default=1_000, help="callbacks before each run")
    parser.add_argument(
        "--settings",
        default="2x4,2x8,4x2",
        help="gunicorn settings to try, WORKERSxTHREADS, comma-separated",
    )
    parser.add_argument("--app", default=REAL_APP, help="the app under test, for gunicorn")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=6, help="connections per process")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per run, at most")
    parser.add_argument("--json", help="also write the best setting's figures to this file")
    args = parser.parse_args()
    settings = [ServerSetting.parse(text) for text in args.settings.split(",")]
    # SIGTERM unwinds like Ctrl-C, so every finally stops what this run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    store = Store()
    rows: list[Row] = []
    failed: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
            bench = Bench(args, store, Path(tmp))
            for setting in settings:
                try:
                    rows.append(bench.row(setting))
                except Exception as exc:  # one broken setting must not hide the others
                    failed.append(f"{setting}: {type(exc).__name__}: {exc}")
                print(f"measured {setting}", file=sys.stderr)
    finally:
        store.close()
    for failure in failed:
        print(f"FAILED {failure}")
    if rows:
        report(rows, args)
        if args.json:
            write_json(rows, Path(args.json))
    if failed or any(row.stored != row.real.statuses.get(202, 0) for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
