"""The worker process: ``celery -A workers.app worker|beat|flower``.

The app is the process container's; the task modules it names load when the worker starts.
A forked pool process drops the connections it inherited.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from services.container import after_fork, container
from workers import observability  # noqa: F401 - connects the logging signal receivers

app = container().celery
app.set_current()
worker_process_init.connect(after_fork, weak=False)
