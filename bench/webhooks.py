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
import json
import os
import secrets
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.http_load import (
    BenchStore,
    CpuMeter,
    Gunicorn,
    Measured,
    Request,
    ServerSetting,
    Target,
    cpu_check_ms,
    drive,
)
from services.callbacks.signatures import token_sha256

DB_URL = os.environ.get(
    "BENCH_WEBHOOKS_DATABASE_URL",
    "postgresql+psycopg2://postgres@127.0.0.1:5432/interactions_bench_webhooks",
)
BROKER_URL = os.environ.get("BENCH_WEBHOOKS_BROKER_URL", "redis://127.0.0.1:6379/11")
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
CALLBACK_PATH = "/callbacks/notify"
REAL_APP = "workers.webhooks:create_app()"
BARE_APP = "bench.bare_app:create_app()"
GOAL_RATE = 1000.0
GOAL_P99_MS = 50.0


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


def _requests(count: int) -> list[Request]:
    """``count`` distinct delivery receipts, no header of their own."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [(receipt(now), {}) for _ in range(count)]


def target(token: str) -> Target:
    """Notify callbacks carrying the bearer token the app trusts."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return Target(CALLBACK_PATH, _requests, headers)


def command(app: str, setting: ServerSetting) -> Callable[[str], list[str]]:
    """gunicorn serving ``app`` with ``setting`` at a bind address."""
    return lambda bind: [GUNICORN, app, "-b", bind, *str(setting).split(), "--log-level", "warning"]


DATABASE_NAME = sa.engine.make_url(DB_URL).database or ""


class Store(BenchStore):
    """The benchmark's own database and Redis db: counted, and emptied before and after."""

    def __init__(self) -> None:
        super().__init__("bench.webhooks", DB_URL, BROKER_URL, "BENCH_WEBHOOKS")

    def rows(self) -> int:
        """Callbacks stored in the inbox."""
        with self.engine.connect() as connection:
            return int(connection.scalar(sa.text("SELECT count(*) FROM inbound_events")) or 0)

    def queued(self) -> int:
        """Messages waiting on the status queue (drains)."""
        return int(self.redis.llen("status"))


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
        server = Gunicorn(command(app, setting), self.env, self.log_dir / "gunicorn.log")
        meter = CpuMeter(server.process.pid, DATABASE_NAME)
        load = target(self.token)
        try:
            drive(server.port, load, args.warmup, args.processes, args.connections, 60, meter)
            rows, queued = self.store.rows(), self.store.queued()
            measured = drive(
                server.port,
                load,
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
