"""The Celery configuration: queues, routes, delivery guarantees and the beat schedule."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from celery.schedules import crontab
from kombu import Queue

from config.settings import Settings


class TaskName(StrEnum):
    """Every task's registered name: the one place producers, routes and beat take them from."""

    DISPATCH = "tasks.dispatch"
    APPLY_STATUS_EVENT = "tasks.apply_status_event"
    DRAIN_INBOX = "tasks.drain_inbox"
    RECONCILE_CLAIMS = "tasks.reconcile_claims"
    POLL_UNFINISHED = "tasks.poll_unfinished"
    ARCHIVE_EXPIRED = "tasks.archive_expired"
    RELEASE_PARKED = "tasks.release_parked"


# Imported by a worker at start-up; a producer publishes by name and never imports them.
TASK_MODULES = ("tasks.dispatch", "tasks.status", "tasks.maintenance", "tasks.archive")

DISPATCH_QUEUE = "dispatch"
STATUS_QUEUE = "status"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (DISPATCH_QUEUE, STATUS_QUEUE, MAINTENANCE_QUEUE)

ROUTES = {
    TaskName.DISPATCH.value: {"queue": DISPATCH_QUEUE},
    TaskName.APPLY_STATUS_EVENT.value: {"queue": STATUS_QUEUE},
    TaskName.DRAIN_INBOX.value: {"queue": STATUS_QUEUE},
    TaskName.RECONCILE_CLAIMS.value: {"queue": MAINTENANCE_QUEUE},
    TaskName.POLL_UNFINISHED.value: {"queue": MAINTENANCE_QUEUE},
    TaskName.ARCHIVE_EXPIRED.value: {"queue": MAINTENANCE_QUEUE},
    TaskName.RELEASE_PARKED.value: {"queue": MAINTENANCE_QUEUE},
}


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.resolved_broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        folder.mkdir(parents=True, exist_ok=True)
        control = folder / "control"
        control.mkdir(exist_ok=True)
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(control),
        }
    # Redis redelivers any message unacknowledged this long, running or not: it must
    # exceed the longest task plus the longest retry countdown held by a worker.
    return {"visibility_timeout": settings.broker_visibility_timeout_seconds}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Everything the Celery app is configured with, from the service's settings."""
    filesystem = settings.resolved_broker_url.startswith("filesystem")
    return {
        "broker_url": settings.resolved_broker_url,
        "broker_transport_options": _transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        # A task is acknowledged when it finishes, and a task whose worker died is put back:
        # every task is idempotent, so running one twice is safe; losing one is not.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": max(1, settings.task_time_limit_seconds - 10),
        "task_queues": tuple(Queue(name, routing_key=name) for name in QUEUES),
        "task_default_queue": DISPATCH_QUEUE,
        "task_routes": ROUTES,
        "worker_pool": "threads",
        # On a lost broker connection, running tasks finish rather than being cancelled: each
        # records its own outcome, and its unacknowledged message, delivered again, finds the
        # key already claimed or sent.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_concurrency": settings.worker_concurrency,
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        # The filesystem transport has no fanout exchange for events; Flower needs Redis.
        "worker_send_task_events": not filesystem,
        "enable_utc": True,
        "timezone": "UTC",
        "beat_schedule": {
            # Callbacks wake the drain themselves; this catches a wake whose message was lost.
            "drain-inbox": {
                "task": TaskName.DRAIN_INBOX.value,
                "schedule": timedelta(seconds=30),
                "options": {"queue": STATUS_QUEUE, "expires": 25},
            },
            "reconcile-claims": {
                "task": TaskName.RECONCILE_CLAIMS.value,
                "schedule": timedelta(minutes=1),
                "options": {"queue": MAINTENANCE_QUEUE, "expires": 55},
            },
            # Messages parked for a daily limit or a refused key go out once that has passed.
            "release-parked": {
                "task": TaskName.RELEASE_PARKED.value,
                "schedule": timedelta(seconds=30),
                "options": {"queue": MAINTENANCE_QUEUE, "expires": 25},
            },
            "poll-unfinished": {
                "task": TaskName.POLL_UNFINISHED.value,
                "schedule": timedelta(minutes=15),
                "options": {"queue": MAINTENANCE_QUEUE, "expires": 14 * 60},
            },
            # The janitor: monthly, when traffic is lowest; a run missed by a day waits a month.
            "archive-expired": {
                "task": TaskName.ARCHIVE_EXPIRED.value,
                "schedule": crontab(minute=0, hour=3, day_of_month=1),
                "options": {"queue": MAINTENANCE_QUEUE, "expires": 23 * 3600},
            },
        },
    }
