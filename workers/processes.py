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


def gunicorn_command(app: str, bind: str, workers: int = 2, threads: int = 4) -> list[str]:
    """``gunicorn`` serving the WSGI ``app`` factory at ``bind`` (host:port), threaded."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        "python:workers.gunicorn_conf",
        app,
        "-b",
        bind,
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(threads),
    ]


def webhooks_command(bind: str, workers: int = 2, threads: int = 4) -> list[str]:
    """``gunicorn`` serving the webhook app at ``bind`` (host:port)."""
    return gunicorn_command("workers.webhooks:create_app()", bind, workers, threads)


def console_command(bind: str, workers: int = 2, threads: int = 4) -> list[str]:
    """``gunicorn`` serving the support console at ``bind`` (host:port)."""
    return gunicorn_command("workers.console:create_app()", bind, workers, threads)
