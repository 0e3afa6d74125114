"""Gunicorn settings for the webhook app and the console: ``-c python:workers.gunicorn_conf``.

Gunicorn's own lines (start-up, worker restarts) go out in the service's log format, JSON in
production, like every other process of the stack. No access log: gunicorn would write one
line per request, with the client's address and the query string, as soon as a logging
config is given, so ``gunicorn_logconfig`` sends its access logger nowhere. A callback's path
and status are counted in metrics, and the log stays free of anything a caller sent.
"""

from __future__ import annotations

from typing import Any

from config.logging import configured_format, gunicorn_logconfig
from services.container import after_fork

worker_class = "gthread"
threads = 8
logconfig_dict = gunicorn_logconfig(configured_format())
accesslog = None


def post_fork(server: Any, worker: Any) -> None:
    """A forked gunicorn worker drops the connections it inherited from the master."""
    after_fork()
