"""What Flower and the logs may show of a task's arguments: ids, never a recipient or payload."""

from __future__ import annotations

from typing import Any

from celery.signals import before_task_publish

from config.celery import TaskName

SHOWN_ARGUMENTS: dict[str, tuple[str, ...]] = {
    TaskName.DISPATCH.value: ("idempotency_key", "batch_id", "customer_id"),
    TaskName.APPLY_STATUS_EVENT.value: ("event_id",),
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
