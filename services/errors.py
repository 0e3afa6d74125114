"""Errors the service raises for input it refuses; each message is safe to show and to log."""

from __future__ import annotations


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
