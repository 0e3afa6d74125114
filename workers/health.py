"""Container health checks on the standard library alone: ``python -m workers.health http|beat``.

``http URL`` passes when the URL answers 200 (the webhook app's ``/healthz``, Flower's
``/healthcheck``). ``beat SCHEDULE`` passes when beat wrote its schedule file recently: beat
saves it every few minutes while it runs, so an old file means a stuck or dead beat.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_BEAT_MAX_AGE_SECONDS = 600


def http_ok(url: str, timeout: float = 5.0) -> str | None:
    """None when ``url`` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URL
            status = int(response.status)
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} does not answer: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def beat_ok(schedule: Path, max_age: float, now: float | None = None) -> str | None:
    """None when beat's schedule file (any of its dbm files) changed within ``max_age`` seconds."""
    files = [p for p in schedule.parent.glob(f"{schedule.name}*") if p.is_file()]
    if not files:
        return f"beat has written no schedule at {schedule}"
    age = (now or time.time()) - max(p.stat().st_mtime for p in files)
    return None if age <= max_age else f"beat's schedule was last saved {age:.0f}s ago"


def main(argv: list[str] | None = None) -> int:
    """Run one check; exit 0 when healthy, 1 with the reason on standard error."""
    parser = argparse.ArgumentParser(prog="python -m workers.health", description=__doc__)
    checks = parser.add_subparsers(dest="check", required=True)
    checks.add_parser("http").add_argument("url")
    beat = checks.add_parser("beat")
    beat.add_argument("schedule", type=Path)
    beat.add_argument("--max-age", type=float, default=DEFAULT_BEAT_MAX_AGE_SECONDS)
    args = parser.parse_args(argv)
    problem = http_ok(args.url) if args.check == "http" else beat_ok(args.schedule, args.max_age)
    if problem:
        sys.stderr.write(problem + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
