"""The gunicorn command lines that serve the webhook app, the support console and the API."""

from __future__ import annotations

import sys
from pathlib import Path

BIN = Path(sys.executable).parent


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


def api_command(bind: str, workers: int = 2, threads: int = 4) -> list[str]:
    """``gunicorn`` serving the HTTP API at ``bind`` (host:port)."""
    return gunicorn_command("workers.api:create_app()", bind, workers, threads)
