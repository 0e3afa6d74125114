"""Celery signal receivers for logs: our format in worker and beat, each task's ids on its lines."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.signals import setup_logging, task_postrun, task_prerun

from config.logging import configure_logging, end_context, start_context

# Task arguments that identify what a task is about; never its recipient or payload.
ID_ARGUMENTS = ("idempotency_key", "batch_id", "customer_id", "event_id")


@setup_logging.connect
def _configure(loglevel: int | str | None = None, **_: Any) -> None:
    """Replace Celery's own logging set-up (which would bypass the JSON format) with ours."""
    configure_logging(loglevel or "INFO")


@task_prerun.connect
def _bind_task(
    task_id: str | None = None,
    task: Task | None = None,
    kwargs: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Every line a task logs carries the task and the ids among its arguments."""
    ids = {name: (kwargs or {}).get(name) for name in ID_ARGUMENTS}
    start_context(task_id=task_id, task_name=getattr(task, "name", None), **ids)


@task_postrun.connect
def _unbind_task(**_: Any) -> None:
    """The thread's next task starts clean."""
    end_context()
