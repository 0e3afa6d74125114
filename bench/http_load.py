"""What the HTTP benchmarks share: keep-alive load from client processes, gunicorn, CPU by group.

The load comes from keep-alive connections in separate processes, so no client GIL caps the
figure; those processes still share the machine's cores with the server. Each request body
(and any header of its own, an idempotency key) is built before the start, so the measured
loop spends no client time on JSON.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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

HOST = "127.0.0.1"

# One request: its body and the headers of its own (on top of the target's).
Request = tuple[bytes, dict[str, str]]
# What one client process sends back: start, end, CPU seconds, latencies (s), answers and
# errors; or None once it is ready to start.
ClientResult = tuple[float, float, float, list[float], dict[int, int], dict[str, int]]
ClientMessage = ClientResult | None


@dataclass(frozen=True)
class Target:
    """Where the load goes: a POST path, the headers every request carries, and the bodies.

    ``requests`` builds a client process's ``count`` requests; it must be a module-level
    function, as client processes are spawned and receive it pickled.
    """

    path: str
    requests: Callable[[int], list[Request]]
    headers: dict[str, str] = field(default_factory=dict)


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
    port: int, target: Target, requests: list[Request], deadline: float, tally: _Tally
) -> None:
    """Post ``requests`` one after another on one keep-alive connection, until the deadline."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    try:
        for number, (body, own) in enumerate(requests):
            if time.monotonic() > deadline:
                errors["not sent: time limit"] += len(requests) - number
                break
            headers = {**target.headers, **own} if own else target.headers
            began = time.perf_counter()
            try:
                connection.request("POST", target.path, body, headers)
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
    target: Target,
    count: int,
    connections: int,
    time_limit: float,
    start: Event,
    messages: Queue[ClientMessage],
) -> None:
    """Send ``count`` requests over ``connections`` threads once every client is ready."""
    requests = target.requests(count)
    tally = _Tally()
    messages.put(None)
    if not start.wait(timeout=60):
        return
    started, cpu = time.monotonic(), time.process_time()
    threads = [
        threading.Thread(
            target=_drive_connection,
            args=(port, target, requests[n::connections], started + time_limit, tally),
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

    @property
    def server_errors(self) -> int:
        """Answers of 500 or more."""
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def problems(self) -> dict[str, int]:
        """How many of each answer outside 2xx, and of each error instead of an answer."""
        bad = {str(s): n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}
        return bad | dict(self.errors)


def drive(
    port: int,
    target: Target,
    requests: int,
    processes: int,
    connections: int,
    time_limit: float,
    meter: CpuMeter,
) -> Measured:
    """``requests`` POSTs to ``target`` from ``processes`` client processes, started together."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    messages: Queue[ClientMessage] = context.Queue()
    shares = [requests // processes + (n < requests % processes) for n in range(processes)]
    clients = [
        context.Process(
            target=client_process,
            args=(port, target, share, connections, time_limit, start, messages),
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
    """gunicorn serving one app on a free port; stopped by its PID.

    ``command`` gives the whole command line for a bind address (``127.0.0.1:PORT``).
    """

    def __init__(self, command: Callable[[str], list[str]], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        argv = command(f"{HOST}:{self.port}")
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            wait_until(self._healthy, 30, f"gunicorn serving {argv[1:]}")
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

    def worker_pids(self) -> list[int]:
        """The master's children: the processes that serve requests."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

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
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each group of processes used during a run, and how busy the machine was."""

    seconds: dict[str, float]
    machine_busy: float
    # Each gunicorn worker's CPU seconds, busiest first: whether the load was shared evenly.
    workers: tuple[float, ...] = ()

    def per_request_us(self, requests: int) -> str:
        """Each group's CPU per request, in microseconds, on one line."""
        shares = [f"{name} {1e6 * self.seconds[name] / requests:,.0f}" for name in CPU_GROUPS]
        return f"{', '.join(shares)} us; machine {self.machine_busy:.0%} busy"

    def worker_shares(self, elapsed: float) -> str:
        """Each gunicorn worker's share of one core during ``elapsed`` seconds."""
        return " / ".join(f"{seconds / elapsed:.0%}" for seconds in self.workers) or "-"


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

    PostgreSQL counts only the backends serving the benchmark's database (``database``); its
    shared processes (WAL writer, checkpointer) and every other database count as everything
    else. Client processes report their own; whatever the groups do not explain, this driver
    and any other work on the machine included, is "everything else".
    """

    def __init__(self, gunicorn_pid: int, database: str) -> None:
        self._gunicorn_pid = gunicorn_pid
        self._database = database

    def start(self) -> None:
        self._processes = _process_cpu()
        self._machine = _machine_cpu()

    def stop(self, clients: float) -> CpuUse:
        used = dict.fromkeys(CPU_GROUPS, 0.0)
        workers: list[float] = []
        for pid, (name, parent, seconds) in _process_cpu().items():
            group = self._group(pid, name, parent)
            if group is not None:
                spent = seconds - self._processes.get(pid, (name, parent, 0.0))[2]
                used[group] += spent
                if parent == self._gunicorn_pid:
                    workers.append(spent)
        used["clients"] = clients
        busy, total = (now - then for now, then in zip(_machine_cpu(), self._machine, strict=True))
        used["everything else"] = max(0.0, busy - sum(used.values()))
        return CpuUse(used, busy / total if total else 0.0, tuple(sorted(workers, reverse=True)))

    def _group(self, pid: int, name: str, parent: int) -> str | None:
        if self._gunicorn_pid in (pid, parent):
            return "gunicorn"
        if name.startswith("postgres: ") and f" {self._database} " in name:
            return "postgresql"
        if name.startswith("redis-server"):
            return "redis"
        return None


class BenchStore:
    """A benchmark's own database and Redis db, held by one run at a time, emptied by close()."""

    def __init__(self, name: str, db_url: str, broker_url: str, override: str) -> None:
        use_test_keys()
        # Two runs at once would drop each other's database and flush each other's queue.
        digest = hashlib.sha256(f"{db_url} {broker_url}".encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"{name.replace('.', '-')}-{digest}.lock"
        self._lock = lock_path.open("w")  # held, and closed, by close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SystemExit(
                f"another {name} run is using this database and Redis db; "
                f"wait for it, or set {override}_DATABASE_URL and {override}_BROKER_URL"
            ) from None
        recreate_database(db_url)
        migrator = build_engine(db_url, Settings(environment="test", database_url=db_url))
        upgrade(migrator)
        migrator.dispose()
        # A connection per count: one kept between runs would not survive a server restart.
        self.engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
        self.redis = redis.Redis.from_url(broker_url)
        self.redis.flushdb()

    def close(self) -> None:
        """Flush the Redis db and let the next run in."""
        try:
            self.redis.flushdb()
            self.redis.close()
            self.engine.dispose()
        finally:
            self._lock.close()
