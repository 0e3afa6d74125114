"""The Celery app factory: one app from the settings, for workers and for every publisher."""

from __future__ import annotations

from celery import Celery

from broker import redaction  # noqa: F401 - every process that publishes redacts what it shows
from config.celery import TASK_MODULES, celery_config
from config.settings import Settings


def create_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``; the task modules load when a worker starts."""
    celery = Celery("interactions", include=list(TASK_MODULES), set_as_current=False)
    celery.config_from_object(celery_config(settings))
    return celery
