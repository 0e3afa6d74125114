"""Errors the service raises for input it refuses; each message is safe to show and to log."""

from __future__ import annotations

from datetime import datetime


class InvalidInput(ValueError):
    """The caller asked for something the service will not do; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidRecipient(InvalidInput):
    """The address cannot be used on the channel; the message says why without echoing it."""


class TransientDispatchError(Exception):
    """The provider failed in a way worth retrying; the claim was released for a new attempt."""

    def __init__(self, idempotency_key: str, reason: str) -> None:
        super().__init__(f"{idempotency_key}: {reason}")
        self.idempotency_key = idempotency_key
        self.reason = reason


class Deferred(Exception):
    """The provider cannot take the message yet; nothing is claimed and no attempt is spent.

    ``hold`` says why (providers.pacing.Hold), ``wait`` how many seconds until asking again
    makes sense, and ``until`` when the hold ends if the provider said so (a daily limit).
    """

    def __init__(self, hold: str, wait: float, reason: str = "", until: datetime | None = None):
        super().__init__(f"deferred ({hold}) for {wait:.1f}s" + (f": {reason}" if reason else ""))
        self.hold = hold
        self.wait = wait
        self.reason = reason
        self.until = until


class BatchHeld(Exception):
    """The message's batch does not let it go now: ``verdict`` says hold (park it) or drop."""

    def __init__(self, batch_id: str, verdict: str) -> None:
        super().__init__(f"batch {batch_id}: {verdict}")
        self.batch_id = batch_id
        self.verdict = verdict
