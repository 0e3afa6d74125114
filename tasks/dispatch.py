"""``tasks.dispatch``: one message to one recipient, at most once per idempotency key."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from sqlalchemy.exc import DBAPIError

from config.celery import TaskName
from services.container import container
from services.errors import InvalidInput, TransientDispatchError
from tasks.base import backoff, project_task
from telemetry import metrics

log = logging.getLogger(__name__)


@project_task(TaskName.DISPATCH)
def dispatch(
    self: Task,
    *,
    idempotency_key: str,
    customer_id: str,
    channel: str,
    template_key: str,
    payload: dict[str, Any] | None = None,
    recipient: str | None = None,
    batch_id: str | None = None,
) -> None:
    """Claim, send and record through CommunicationService; retry what is worth retrying."""
    here = container()
    settings = here.settings
    context = {"idempotency_key": idempotency_key, "batch_id": batch_id}
    try:
        result = here.communication.dispatch(
            customer_id,
            channel,
            template_key,
            payload,
            idempotency_key,
            recipient,
            batch_id=batch_id,
        )
    except InvalidInput as exc:
        # Retrying cannot make bad input good; the producer validates, so this is rare.
        log.warning("dispatch refused: %s", exc, extra=context)
        return
    except TransientDispatchError as exc:
        retries = self.request.retries
        if retries >= settings.dispatch_max_retries:
            reason = f"gave up after {retries + 1} attempts: {exc.reason}"
            if here.communication.give_up(idempotency_key, reason):
                metrics.gave_up(channel, settings)
            log.warning("dispatch failed for good: %s", exc.reason, extra=context)
            return
        delay = backoff(
            retries, settings.retry_backoff_base_seconds, settings.retry_backoff_max_seconds
        )
        log.info("dispatch will be retried in %.1fs: %s", delay, exc.reason, extra=context)
        raise self.retry(countdown=delay, max_retries=settings.dispatch_max_retries) from None
    except DBAPIError as exc:
        # The database went away: the claim is either not made or still held, so retrying is safe.
        delay = backoff(self.request.retries, settings.retry_backoff_base_seconds, 60)
        log.warning(
            "database unavailable, retrying in %.1fs: %s",
            delay,
            type(exc.orig).__name__,
            extra=context,
        )
        raise self.retry(countdown=delay, max_retries=None) from None
    log.debug("dispatch %s", result.outcome.value, extra=context)
