"""The commands that start the service's processes, shared by the demo, tests and benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ALL_QUEUES = "dispatch,status,maintenance"


def worker_command(
    name: str,
    app: str = "workers.app",
    queues: str = ALL_QUEUES,
    concurrency: int | None = None,
    loglevel: str = "INFO",
) -> list[str]:
    """``celery worker`` for ``app`` named ``name``, without gossip and mingle chatter."""
    command = [str(BIN / "celery"), "-A", app, "worker", "-Q", queues, "-n", f"{name}@%h"]
    if concurrency is not None:
        command += ["-c", str(concurrency)]
    return [*command, "-l", loglevel, "--without-gossip", "--without-mingle"]


def webhooks_command(port: int, workers: int = 2, threads: int = 4) -> list[str]:
    """``gunicorn`` serving the webhook app on loopback ``port``."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        "python:workers.gunicorn_conf",
        "workers.webhooks:create_app()",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(threads),
    ]


def console_command(bind: str, workers: int = 2, threads: int = 4) -> list[str]:
    """``gunicorn`` serving the support console at ``bind`` (host:port)."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        "python:workers.gunicorn_conf",
        "workers.console:create_app()",
        "-b",
        bind,
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(threads),
    ]
