"""How long ``interactions --help`` takes to answer, beside a bare ``python -c pass``."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HELP = [sys.executable, "-m", "workers", "--help"]
BARE = [sys.executable, "-c", "pass"]


def median_ms(command: list[str], runs: int) -> float:
    """The median wall time of ``runs`` runs of ``command``, in milliseconds, after one warm-up."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs of each command")
    parser.add_argument("--json", type=Path, required=True, help="where the figures go")
    args = parser.parse_args()
    figures = {
        "help_ms": median_ms(HELP, args.runs),
        "bare_python_ms": median_ms(BARE, args.runs),
        "runs": args.runs,
    }
    print(figures)
    args.json.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
