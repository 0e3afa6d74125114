"""Gunicorn settings for the webhook app: ``gunicorn -c python:workers.gunicorn_conf ...``.

Gunicorn's own lines (start-up, worker restarts) go out in the service's log format, JSON in
production, like every other process of the stack. No access log: a callback's path and
status are counted in metrics, and the log stays free of anything a caller sent.
"""

from __future__ import annotations

from typing import Any

from config.logging import configured_format, gunicorn_logconfig
from services.container import after_fork

worker_class = "gthread"
threads = 8
logconfig_dict = gunicorn_logconfig(configured_format())


def post_fork(server: Any, worker: Any) -> None:
    """A forked gunicorn worker drops the connections it inherited from the master."""
    after_fork()
