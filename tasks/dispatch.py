"""``tasks.dispatch``: one message to one recipient, at most once per idempotency key."""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task
from sqlalchemy.exc import DBAPIError

from config.celery import TaskName
from models.enums import ChannelType
from providers.pacing import Hold
from services.container import container
from services.errors import BatchHeld, Deferred, InvalidInput, TransientDispatchError
from services.sending.batch_control import Verdict, forget_dropped
from services.sending.parking import batch_lot, park
from tasks.base import backoff, project_task, requeue
from telemetry import metrics

log = logging.getLogger(__name__)
# Where there is no Redis to park in, a held batch's message asks again this often.
BATCH_HOLD_RECHECK_SECONDS = 30.0
# The message header counting a dispatch's database outages, apart from its provider attempts.
DB_RETRIES = "db_retries"
# Holds that end when a person or the provider's clock says so, not in a few seconds.
PARKED_HOLDS = frozenset({Hold.DAILY_LIMIT, Hold.KEY_REFUSED})


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
    reply_to_id: str | None = None,
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
            reply_to_id=reply_to_id,
        )
    except InvalidInput as exc:
        # Retrying cannot make bad input good; the producer validates, so this is rare.
        log.warning("dispatch refused: %s", exc, extra=context)
        return
    except BatchHeld as exc:
        held_by_batch(self, exc.batch_id, Verdict(exc.verdict), idempotency_key)
        return
    except Deferred as exc:
        defer(self, exc)
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
        requeue(self, delay, retries + 1)
        return
    except DBAPIError as exc:
        # The database went away: the claim is either not made or still held, so retrying is
        # safe. Outages are counted apart: riding one out spends none of the provider attempts.
        outages = int(getattr(self.request, DB_RETRIES, 0) or 0)
        delay = backoff(outages, settings.retry_backoff_base_seconds, 60)
        log.warning(
            "database unavailable, retrying in %.1fs: %s",
            delay,
            type(exc.orig).__name__,
            extra=context,
        )
        requeue(self, delay, self.request.retries, **{DB_RETRIES: outages + 1})
        return
    log.debug("dispatch %s", result.outcome.value, extra=context)


def held_by_batch(task: Task, batch_id: str, verdict: Verdict, idempotency_key: str) -> None:
    """Park or drop a message its batch does not let go; nothing was claimed for it.

    A paused or scheduled batch's message waits parked, and goes out again on resume or at its
    time; a cancelled batch's message is dropped.
    """
    here = container()
    context = {"idempotency_key": idempotency_key, "batch_id": batch_id}
    metrics.batch_message_held(verdict)
    if verdict is Verdict.DROP:
        forget_dropped(here.sessions, idempotency_key)
        log.info("dispatch dropped: the batch was cancelled", extra=context)
        return
    if here.parking is not None:
        here.parking.park(batch_lot(batch_id), idempotency_key, dict(task.request.kwargs or {}))
        log.debug("dispatch parked: the batch is paused or not due", extra=context)
    else:
        requeue(task, BATCH_HOLD_RECHECK_SECONDS, task.request.retries)


def defer(task: Task, deferred: Deferred) -> None:
    """Put a message its provider cannot take yet back, keeping its attempts unspent.

    A short wait goes back on the queue with a countdown (spread a little, so deferred
    messages do not all return at once); a long one (a daily limit, a refused key) is parked
    until the release task sees the provider take messages again.
    """
    here = container()
    kwargs = dict(task.request.kwargs or {})
    context = {"idempotency_key": kwargs.get("idempotency_key"), "batch_id": kwargs.get("batch_id")}
    park_after = here.settings.pace_park_after_seconds
    if (deferred.hold in PARKED_HOLDS or deferred.wait > park_after) and here.parking is not None:
        provider = here.providers.for_channel(ChannelType(kwargs["channel"]))
        if park(here.parking, provider, kwargs):
            log.info("dispatch parked (%s)", deferred.hold, extra=context)
            return
    spread = here.settings.pace_horizon_seconds
    countdown = min(deferred.wait, park_after)
    countdown += random.uniform(0, spread)  # noqa: S311 - spreading, not secrecy
    requeue(task, countdown, task.request.retries)
    log.info(
        "dispatch deferred, will be retried in %.1fs (%s)", countdown, deferred.hold, extra=context
    )
