"""Every benchmark of the project, each beside its baseline from the same run, in one table.

    .venv/bin/python -m bench            # every figure at full size; says how long first
    .venv/bin/python -m bench --quick    # the same figures at small counts, about three minutes

Each benchmark runs as its own process on PostgreSQL and Redis (databases named bench_scale_*,
Redis dbs 10, 11 and 14) and hands its figures back as JSON; the table goes to standard output and
to var/bench/results.json. The run holds /tmp/interactions-bench.lock, so two never overlap.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.report import Row, rows_of, table
from devtools.processes import ROOT

LOCK = Path("/tmp/interactions-bench.lock")  # shared with every engineer's benchmark runs
OUT = ROOT / "var" / "bench"
SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")


# About 25 s: 2,000 messages and the bare route, one 20,000-row upload beside one send-batch.
API_QUICK = ["--requests", "2000", "--warmup", "200", "--processes", "1", "--rows", "20000"]
API_QUICK += ["--rounds", "1"]


def database(name: str) -> str:
    return f"{SERVER}/{name}"


def exists(name: str) -> bool:
    """Whether the database ``name`` is on the server."""
    engine = sa.create_engine(database("postgres"), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        found = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        )
    engine.dispose()
    return found is not None


def drop(name: str) -> None:
    engine = sa.create_engine(database("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


class Runner:
    """Runs one benchmark module in its own process and reads back its JSON."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, module: str, args: list[str], env: dict[str, str]) -> Any:
        out = self.log_dir / f"{name}.json"
        log = self.log_dir / f"{name}.log"
        command = [sys.executable, "-m", module, *args, "--json", str(out)]
        print(f"running {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with log.open("w") as stream:
            done = subprocess.run(
                command,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=stream,
                stderr=subprocess.STDOUT,
                check=False,
            )
        self.seconds[name] = time.perf_counter() - started
        if not out.exists():
            tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
            print(f"{module} failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def plan(quick: bool) -> dict[str, tuple[str, list[str], dict[str, str]]]:
    """Each benchmark's module, arguments and environment, at quick or full size."""
    have_10m = exists("bench_scale_10m")
    sizes = "10m" if have_10m else "100k"
    if not quick:
        sizes = "1m,10m"
    return {
        "cli": ("bench.cli_startup", ["--runs", "10" if quick else "30"], {}),
        "generate": (
            "bench.generate",
            [
                "--rows",
                "200000" if quick else "1000000",
                "--no-vacuum",
                "--database-url",
                database("bench_scale_generate"),
            ],
            {},
        ),
        "pipeline": (
            "bench.pipeline",
            ["--recipients", "1000", "--producer-recipients", "20000"] if quick else [],
            {
                "BENCH_DATABASE_URL": database("bench_scale_pipeline"),
                "BENCH_BROKER_URL": f"{REDIS}/10",
            },
        ),
        "pace": (
            "bench.pace",
            ["--recipients", "1000"] if quick else [],
            {
                "BENCH_DATABASE_URL": database("bench_scale_pace"),
                "BENCH_BROKER_URL": f"{REDIS}/10",
            },
        ),
        "paused": (
            "bench.paused",
            ["--recipients", "5000"] if quick else [],
            {
                "BENCH_DATABASE_URL": database("bench_scale_paused"),
                "BENCH_BROKER_URL": f"{REDIS}/10",
            },
        ),
        "webhooks": (
            "bench.webhooks",
            ["--settings", "2x4", "--requests", "3000", "--warmup", "300", "--processes", "1"]
            if quick
            else ["--settings", "2x4,2x8,4x2"],
            {
                "BENCH_WEBHOOKS_DATABASE_URL": database("bench_scale_webhooks"),
                "BENCH_WEBHOOKS_BROKER_URL": f"{REDIS}/14",
            },
        ),
        "api": (
            "bench.api",
            API_QUICK if quick else [],
            {
                "BENCH_API_DATABASE_URL": database("bench_scale_api"),
                "BENCH_API_BROKER_URL": f"{REDIS}/11",
            },
        ),
        "archive": (
            "bench.archive",
            ["--rows", "50000", "--dispatchers", "0"] if quick else [],
            {
                "INTERACTIONS_BENCH_DATABASE_URL": database("postgres"),
                "BENCH_ARCHIVE_DATABASE": "bench_scale_archive",
            },
        ),
        "timeline": (
            "bench.timeline",
            ["--sizes", sizes, "--reuse", "--samples", "500" if quick else "1000"],
            {"BENCH_SCALE_DATABASE_URL": database("bench_scale")},
        ),
    }


def estimate(quick: bool) -> str:
    """How long the run will take, from what past runs on two cores took."""
    if quick:
        return "about 3 minutes"
    # generate 1M, pipeline (project and bare floor at 0 and 100 ms), pace (three batches of
    # 10,000), webhooks x3 settings, archive, timeline, a paused batch of 100,000 (parked, then
    # resumed) and the API (20,000 messages, a bare route, two 100,000-row uploads beside two
    # send-batch runs)
    minutes = 1 + 3 + 8 + 4 + 3 + 2 + 1 + 3
    if not exists("bench_scale_10m"):
        minutes += 6
    if not exists("bench_scale_1m"):
        minutes += 1
    return f"about {minutes} minutes"


def hold_lock() -> Any:
    """The shared benchmark lock, waited for when someone else holds it.

    Taken here, so wrapping this command in ``flock`` on the same file would wait forever.
    """
    handle = LOCK.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"waiting for {LOCK}: another benchmark holds it", file=sys.stderr)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, about three minutes")
    parser.add_argument(
        "--only",
        help="comma-separated: cli,generate,pipeline,pace,paused,webhooks,api,archive,timeline",
    )
    parser.add_argument("--json", default=str(OUT / "results.json"), help="where the table goes")
    args = parser.parse_args()
    lock = hold_lock()
    started = time.perf_counter()
    print(f"{'quick' if args.quick else 'full'} run: {estimate(args.quick)}", flush=True)
    steps = plan(args.quick)
    if args.only:
        steps = {name: step for name, step in steps.items() if name in args.only.split(",")}
    results: dict[str, Any] = {}
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run = Runner(logs)
    for name, (module, module_args, env) in steps.items():
        results[name] = run(name, module, module_args, env)
        if name == "generate":
            drop("bench_scale_generate")
    seconds = time.perf_counter() - started
    rows = rows_of(results)
    lock.close()
    print()
    print(table(rows))
    print(f"\n{'quick' if args.quick else 'full'} run took {seconds:.0f} s; logs in {logs}")
    write(Path(args.json), args.quick, seconds, rows, results, run.seconds)


def write(
    path: Path,
    quick: bool,
    seconds: float,
    rows: list[Row],
    results: dict[str, Any],
    step_seconds: dict[str, float],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "at": datetime.now(UTC).isoformat(),
        "mode": "quick" if quick else "full",
        "seconds": seconds,
        "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()},
        "table": [row.as_dict() for row in rows],
        "steps_seconds": step_seconds,
        "raw": results,
    }
    path.write_text(json.dumps(document, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
