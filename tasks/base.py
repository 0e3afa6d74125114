"""The one decorator every task goes through, carrying the shared options.

Tasks register with ``shared_task``: they bind to whichever app the process runs (the worker's,
built in ``workers.app``) and never import the process layer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject

from config.celery import TaskName


def project_task(name: TaskName, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a task: bound, acknowledged late, put back if its worker dies, no result kept."""
    defaults: dict[str, Any] = {
        "name": name.value,
        "bind": True,
        "ignore_result": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
    }
    return shared_task(**{**defaults, **options})  # type: ignore[no-any-return]


def backoff(retries: int, base: float, cap: float) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, with jitter.

    Half the delay is fixed and half random, so retries spread out without ever
    coming back at once after a provider's outage.
    """
    ceiling = min(cap, base * 2.0**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not secrecy


def requeue(task: Task, countdown: float, retries: int, **headers: Any) -> None:
    """Publish this task again after ``countdown`` seconds, then let the current copy go.

    Unlike ``Task.retry``, the attempt count is the caller's to set (a deferral or a database
    outage spends none), and a copy that cannot be published is not dropped: the current one
    is put back instead, so a broker that went away loses nothing it still holds.
    """
    try:
        task.apply_async(
            kwargs=dict(task.request.kwargs or {}),
            countdown=countdown,
            retries=retries,
            headers=headers or None,
        )
    except Exception as exc:  # the broker's own errors vary by transport
        raise Reject(exc, requeue=True) from None
