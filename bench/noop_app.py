"""A Celery app with the service's exact configuration and one no-op task, for a baseline."""

from __future__ import annotations

from typing import Any

from broker.app import create_app
from config.settings import get_settings

app = create_app(get_settings())
app.conf.include = []


@app.task(name="tasks.dispatch", bind=True, ignore_result=True, acks_late=True)
def noop(self: Any, **_: Any) -> None:
    """Does nothing: what remains is Celery's own cost per task."""
