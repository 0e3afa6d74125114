"""The Celery app: ``celery -A workers.app worker|beat|flower``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import before_task_publish, worker_process_init

from config.celery import celery_config
from config.settings import Settings, get_settings
from models.session import dispose_engines
from workers import observability  # noqa: F401 - connects the logging signal receivers

TASK_MODULES = ["tasks.dispatch", "tasks.status", "tasks.maintenance", "tasks.archive"]


def create_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``; workers use the one below."""
    celery = Celery("interactions", include=TASK_MODULES, set_as_current=False)
    celery.config_from_object(celery_config(settings))
    return celery


app = create_app(get_settings())
app.set_current()

# What Flower and the worker's logs may show of each task's arguments: ids only.
SHOWN_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "tasks.dispatch": ("idempotency_key", "batch_id", "customer_id"),
    "tasks.apply_status_event": ("event_id",),
}


def shown_arguments(task_name: str, kwargs: dict[str, Any]) -> str:
    """The repr of a task's keyword arguments with everything but its ids left out."""
    shown = SHOWN_ARGUMENTS.get(task_name, ())
    return repr({name: kwargs[name] for name in shown if name in kwargs})


@before_task_publish.connect
def _redact_arguments(
    sender: str | None = None,
    headers: dict[str, Any] | None = None,
    body: Any = None,
    **_: Any,
) -> None:
    """Replace the displayed arguments of every published task, retries included."""
    if sender is None or headers is None or not isinstance(body, list | tuple):
        return
    kwargs = body[1] if len(body) > 1 and isinstance(body[1], dict) else {}
    headers["argsrepr"] = "()"
    headers["kwargsrepr"] = shown_arguments(sender, kwargs)


@worker_process_init.connect
def _fresh_engine_after_fork(**_: Any) -> None:
    """A forked pool process must not reuse the parent's database connections."""
    dispose_engines()
