"""The stub as a command: ``python -m devtools.stub --port 6011`` serves until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from devtools.stub.server import StubNotifyServer


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, printing the URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6011)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="verify bearer tokens against this key")
    args = parser.parse_args(argv)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stub = StubNotifyServer(args.host, args.port, args.api_key, latency_ms=args.latency_ms)
    with stub:
        sys.stdout.write(f"stub notify listening on {stub.url}\n")
        sys.stdout.flush()
        stopping.wait()
