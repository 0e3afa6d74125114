"""``tasks.apply_status_event``: apply one stored provider callback to its interaction."""

from __future__ import annotations

import logging

from celery import Task
from sqlalchemy.exc import DBAPIError

from config.settings import get_settings
from models.base import utcnow
from models.session import get_engine, session_factory
from services import inbox
from services.transitions import Outcome
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


@project_task("tasks.apply_status_event")
def apply_status_event(self: Task, *, event_id: int) -> None:
    """Apply a stored callback; one matching nothing yet is retried, then kept as an orphan."""
    settings = get_settings()
    max_retries = _retries_for(settings.status_retry_window_seconds)
    final = self.request.retries >= max_retries
    sessions = session_factory(get_engine(settings))
    try:
        outcome = inbox.apply(sessions, event_id, final, utcnow())
    except DBAPIError:
        raise self.retry(
            countdown=backoff(self.request.retries, BASE_DELAY, MAX_DELAY), max_retries=None
        ) from None
    if outcome is Outcome.UNKNOWN_REFERENCE and not final:
        # The callback may have beaten the SENT commit; give the dispatch time to record it.
        raise self.retry(
            countdown=backoff(self.request.retries, BASE_DELAY, MAX_DELAY), max_retries=None
        )
    log.info("status event %s: %s", event_id, outcome.value)
