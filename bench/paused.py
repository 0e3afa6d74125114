"""A paused batch: what the workers spend while it waits, and how soon it sends once resumed.

    .venv/bin/python -m bench.paused                      # 100,000 queued recipients
    .venv/bin/python -m bench.paused --recipients 10000   # the quick size

The batch is paused before its recipients are enqueued; two workers take every message off
the queue and park it. Figures: the workers' CPU while the batch stays paused (as a share of
one core), beside the same workers idle with nothing queued at all (the baseline, same run),
and the time from the resume to the first send the provider accepts.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import redis

from bench.pipeline import DB_URL, Bench, recipients
from broker.parking import ParkingLot
from devtools.database import recreate_database
from devtools.keys import use_test_keys
from devtools.processes import Worker, start_workers, stop_workers, wait_until
from models.crypto import keyring
from models.migrate import upgrade
from services.sending.batch_control import BatchGate, change_state
from services.sending.batches import BatchProducer
from services.sending.parking import batch_lot, release_batch

BATCH = "paused-bench"
SAMPLE_SECONDS = 10.0
KEY_VARIABLES = (
    "INTERACTIONS_ENCRYPTION_KEYS",
    "INTERACTIONS_ENCRYPTION_ACTIVE_KEY",
    "INTERACTIONS_BLIND_INDEX_KEY",
)


def cpu_seconds(workers: list[Worker]) -> float:
    """User and system CPU the worker processes have used so far."""
    total = 0.0
    for worker in workers:
        with open(f"/proc/{worker.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def share_of_a_core(workers: list[Worker], seconds: float) -> float:
    """The workers' CPU over ``seconds``, as a share of one core."""
    before = cpu_seconds(workers)
    time.sleep(seconds)
    return (cpu_seconds(workers) - before) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--json", help="also write the figures, as numbers, to this file")
    args = parser.parse_args()

    use_test_keys()
    recreate_database(DB_URL)
    with tempfile.TemporaryDirectory(prefix="bench-paused-") as tmp:
        bench = Bench(args, Path(tmp))
        upgrade(bench.engine)
        try:
            numbers = measure(bench, args)
        finally:
            bench.stub.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    print(f"\n{args.recipients:,} recipients paused, {args.workers} workers")
    print(f"workers idle, nothing queued   {numbers['idle_core_share']:.3f} of a core")
    print(f"workers, batch paused           {numbers['paused_core_share']:.3f} of a core")
    print(f"parking the queue took          {numbers['parking_seconds']:.1f} s")
    print(f"resume to first send            {numbers['resume_to_first_send_s']:.2f} s")


def measure(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    """Idle, then paused, then resumed; every figure from this one run."""
    bench.clean()
    bench.stub.reset()
    client = redis.Redis.from_url(bench.settings.resolved_broker_url)
    gate = BatchGate(bench.sessions, client)
    ring = keyring()
    lots = ParkingLot(
        client,
        lambda text: ring.seal(text, "parked.dispatch"),
        lambda sealed: ring.open(sealed, "parked.dispatch"),
    )
    # The workers seal what they park with the key ring this process opens it with.
    keys = {name: value for name, value in os.environ.items() if name in KEY_VARIABLES}
    env = {**bench.env(), **keys}
    workers = start_workers("workers.app", env, args.workers, bench.log_dir, "paused")
    try:
        time.sleep(2)
        idle = share_of_a_core(workers, SAMPLE_SECONDS)
        producer = BatchProducer(bench.sessions, bench.publisher, bench.settings, gate=gate)
        first = list(recipients(1))
        producer.run(BATCH, "email", "welcome", first)
        change_state(bench.sessions, gate, BATCH, "pause", "bench", "measuring")
        started = time.perf_counter()
        producer.run(BATCH, "email", "welcome", recipients(args.recipients))
        wait_until(
            lambda: lots.count(batch_lot(BATCH)) >= args.recipients,
            1800,
            "every message parked",
            every=0.5,
        )
        parking = time.perf_counter() - started
        paused = share_of_a_core(workers, SAMPLE_SECONDS)
        if bench.stub.stats()["total"]:
            raise RuntimeError("a paused batch sent something")
        resumed = time.perf_counter()
        change_state(bench.sessions, gate, BATCH, "resume", "bench", None)
        releasing = threading.Thread(
            target=release_batch, args=(lots, BATCH, gate, bench.publisher)
        )
        releasing.start()
        first_send = wait_until(
            lambda: bench.stub.stats()["total"] > 0, 120, "a first send", every=0.01
        )
        releasing.join()
    finally:
        stop_workers(workers)
    return {
        "recipients": args.recipients,
        "idle_core_share": idle,
        "paused_core_share": paused,
        "parking_seconds": parking,
        "resume_to_first_send_s": first_send - resumed,
    }


if __name__ == "__main__":
    main()
