"""The stub as a command: ``python -m devtools.stub --port 6011`` serves until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from devtools.stub.server import StubNotifyServer

_EPILOG = """\
Every setting can also be changed while the stub runs: POST /_stub/config with a JSON object
of StubConfig fields (GET /_stub/config shows them all). POST /_stub/reset-daily-limit starts
the daily cap's period again; GET /_stub/stats counts requests received, accepted and refused
(rate_limited, daily_limit, revoked, outage) and accepted sends per reference (receipts).
"""


def _parser() -> argparse.ArgumentParser:
    """The command's options; the limits are off unless given."""
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6011)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="verify bearer tokens against this key")
    limits = parser.add_argument_group("limits, per key (the service id a token is issued by)")
    limits.add_argument(
        "--rate-limit", type=int, default=0, help="sends per window before 429 (0: no limit)"
    )
    limits.add_argument("--rate-window-seconds", type=float, default=1.0)
    limits.add_argument(
        "--rate-limit-counts-refused",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count refused sends in the window, as Notify does",
    )
    limits.add_argument(
        "--retry-after-seconds", type=int, default=None, help="send Retry-After with a rate 429"
    )
    limits.add_argument(
        "--daily-limit", type=int, default=0, help="sends accepted per day (0: no cap)"
    )
    limits.add_argument(
        "--daily-reset-seconds", type=float, default=86400.0, help="how long the cap's day is"
    )
    limits.add_argument(
        "--revoked-key",
        dest="revoked_keys",
        action="append",
        default=[],
        metavar="SERVICE_ID",
        help="answer this key with 403 (repeatable)",
    )
    limits.add_argument("--revoke-all", action="store_true", help="answer every key with 403")
    outage = parser.add_argument_group("outage, from start")
    outage.add_argument(
        "--outage-mode",
        choices=("refuse", "error"),
        default=None,
        help="refuse connections, or answer 500",
    )
    outage.add_argument("--outage-seconds", type=float, default=10.0)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, printing the URL once listening."""
    parser = _parser()
    args = parser.parse_args(argv)
    settings: dict[str, Any] = {
        name: value for name, value in vars(args).items() if name not in ("host", "port", "api_key")
    }
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        stub = StubNotifyServer(args.host, args.port, args.api_key, **settings)
    except ValueError as exc:
        parser.error(str(exc))
    with stub:
        sys.stdout.write(f"stub notify listening on {stub.url}\n")
        sys.stdout.flush()
        stopping.wait()
