"""Applying stored provider callbacks: ``tasks.drain_inbox`` in batches, and one at a time.

The webhook wakes the drain (broker.wake); beat runs it too. A callback whose interaction
is not known yet (it beat the SENT commit) leaves the drain for ``tasks.apply_status_event``,
which retries it with backoff and then keeps it as an orphan for reconciliation.
"""

from __future__ import annotations

import logging

from celery import Task
from sqlalchemy.exc import DBAPIError

from config.celery import TaskName
from models.base import utcnow
from services.callbacks import inbox
from services.container import container
from services.ledger.transitions import Outcome
from tasks.base import backoff, project_task

log = logging.getLogger(__name__)
BASE_DELAY = 5.0
MAX_DELAY = 60.0


def _retries_for(window: float) -> int:
    """How many backoff retries fit in ``window`` seconds."""
    total, retries = 0.0, 0
    while total < window:
        total += min(MAX_DELAY, BASE_DELAY * 2.0**retries)
        retries += 1
    return retries


@project_task(TaskName.APPLY_STATUS_EVENT)
def apply_status_event(self: Task, *, event_id: int) -> None:
    """Apply a stored callback; one matching nothing yet is retried, then kept as an orphan.

    One that cannot be applied is settled as rejected with its reason (the dead letter).
    """
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        # A message no inbox row can answer: dead-lettered in the log, never retried.
        log.error("status event message dead-lettered: 'event_id' is not an inbox id")
        return
    here = container()
    max_retries = _retries_for(here.settings.status_retry_window_seconds)
    final = self.request.retries >= max_retries
    try:
        outcome = inbox.apply(here.sessions, event_id, final, utcnow())
    except Exception as exc:  # content errors never get here: inbox settles them
        # Transient errors retry for as long as they last; an unexpected one until ``final``,
        # when inbox.apply settles the row as rejected instead of raising.
        log.warning("status event %s not applied yet: %s", event_id, type(exc).__name__)
        raise self.retry(
            countdown=backoff(self.request.retries, BASE_DELAY, MAX_DELAY), max_retries=None
        ) from None
    if outcome is Outcome.UNKNOWN_REFERENCE and not final:
        # The callback may have beaten the SENT commit; give the dispatch time to record it.
        raise self.retry(
            countdown=backoff(self.request.retries, BASE_DELAY, MAX_DELAY), max_retries=None
        )
    log.info("status event %s: %s", event_id, outcome.value)


@project_task(TaskName.DRAIN_INBOX)
def drain_inbox(self: Task) -> None:
    """Apply a batch of callbacks nobody has tried yet; a full batch queues the next drain."""
    here = container()
    wake = here.inbox_wake
    wake.started()
    try:
        drained = inbox.drain(
            here.sessions,
            here.settings.inbox_drain_batch_size,
            more=wake.wake,
            retry_alone=lambda inbound_id: apply_status_event.apply_async(
                kwargs={"event_id": inbound_id}, countdown=backoff(0, BASE_DELAY, MAX_DELAY)
            ),
            now=utcnow,
        )
    except DBAPIError:
        # The batch rolled back and waits as it was; beat drains every 30 s besides.
        raise self.retry(
            countdown=backoff(self.request.retries, BASE_DELAY, MAX_DELAY), max_retries=3
        ) from None
    log.info("inbox drained: %d applied, %d to retry", drained.applied, len(drained.handed_on))
