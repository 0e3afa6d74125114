"""Sending at a provider's pace: a batch against a stub that enforces Notify's per-key limit.

    .venv/bin/python -m bench.pace                    # 10,000 recipients at 50/s, a few minutes
    .venv/bin/python -m bench.pace --recipients 1500  # the quick size

The stub refuses any request beyond ``--rate`` in a sliding second and counts refused requests
in its window, as Notify does. Figures: the send rate achieved as a share of that limit with two
worker processes and with four, the 429s as a share of requests, and, as the baseline from the
same run, the pipeline's own rate against the same stub with no limit at all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pipeline import DB_URL, Bench, recipients
from devtools.database import recreate_database
from devtools.keys import use_test_keys
from devtools.processes import start_workers, stop_workers, wait_until
from models.migrate import upgrade


def send(bench: Bench, count: int, workers: int, rate: int | None, tag: str) -> dict[str, Any]:
    """One batch of ``count`` against the stub limited to ``rate``/s (None: no limit)."""
    bench.clean()
    bench.stub.reset()
    bench.stub.configure(rate_limit=rate or 0, rate_window_seconds=1.0)
    env = bench.env()
    # Unlimited: a pace far above anything the pipeline reaches, so it never waits.
    env["INTERACTIONS_NOTIFY_RATE_PER_MINUTE"] = str((rate or 100_000) * 60)
    started_workers = start_workers("workers.app", env, workers, bench.log_dir, tag)
    try:
        started = time.perf_counter()
        bench.producer().run(tag, "email", "welcome", recipients(count))
        finished = wait_until(lambda: bench.sent() >= count, 1800, f"{count} SENT", every=0.1)
    finally:
        stop_workers(started_workers)
    stats = bench.stub.stats()
    if stats["total"] != count or stats["duplicates"]:
        raise RuntimeError(f"stub counted {stats['total']} receipts, {stats['duplicates']} twice")
    elapsed = finished - started
    refused = int(stats["refused"]["rate_limited"])
    return {
        "per_second": count / elapsed,
        "seconds": elapsed,
        "refused": refused,
        "requests": int(stats["received"]),
        "refused_share": refused / max(1, int(stats["received"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=50, help="the stub's limit, requests/s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--more-workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--json", help="also write the figures, as numbers, to this file")
    args = parser.parse_args()

    use_test_keys()
    recreate_database(DB_URL)
    with tempfile.TemporaryDirectory(prefix="bench-pace-") as tmp:
        bench = Bench(args, Path(tmp))
        upgrade(bench.engine)
        try:
            n = args.recipients
            unlimited = send(bench, n, args.workers, None, "unlimited")
            paced = send(bench, n, args.workers, args.rate, "paced")
            wider = send(bench, n, args.more_workers, args.rate, "paced-wide")
        finally:
            bench.stub.stop()
    numbers = {
        "rate_limit": args.rate,
        "recipients": args.recipients,
        "workers": args.workers,
        "more_workers": args.more_workers,
        "unlimited": unlimited,
        "paced": paced,
        "paced_more_workers": wider,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    print(f"\nstub limit {args.rate}/s, {args.recipients:,} recipients, {args.concurrency} threads")
    for name, run in (
        (f"no limit, {args.workers} workers", unlimited),
        (f"paced, {args.workers} workers", paced),
        (f"paced, {args.more_workers} workers", wider),
    ):
        print(
            f"{name:<22} {run['per_second']:7.1f}/s  ({run['per_second'] / args.rate:.3f} of the "
            f"limit)  {run['refused']} x 429 of {run['requests']} requests "
            f"({run['refused_share']:.2%})  {run['seconds']:.1f} s"
        )


if __name__ == "__main__":
    main()
