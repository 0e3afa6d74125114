"""Fakes for the outside world: a provider that records what it was asked to deliver."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

from providers.base import (
    LookupResult,
    OutboundMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    SendReceipt,
    TransientProviderError,
)


class FakeProvider(Provider):
    """Accepts messages (after ``delay`` seconds), or raises the errors queued for it.

    ``body`` and ``subject``: what its receipts say it rendered, as Notify and SMTP say.
    """

    name = "fake"

    def __init__(
        self, delay: float = 0.0, body: str | None = None, subject: str | None = None
    ) -> None:
        self.delay = delay
        self.body = body
        self.subject = subject
        self.sent: list[OutboundMessage] = []
        self.calls: Counter[str] = Counter()
        self._errors: list[ProviderError] = []
        self._lock = threading.Lock()

    def fail_next(self, *errors: ProviderError) -> None:
        """Raise these errors, in order, on the next sends."""
        self._errors.extend(errors)

    def transient(self, reason: str = "provider answered 503") -> TransientProviderError:
        return TransientProviderError(reason, status_code=503)

    def permanent(self, reason: str = "provider answered 400") -> PermanentProviderError:
        return PermanentProviderError(reason, status_code=400)

    def send(self, message: OutboundMessage) -> SendReceipt:
        with self._lock:
            self.calls[message.reference] += 1
            error = self._errors.pop(0) if self._errors else None
        if self.delay:
            time.sleep(self.delay)
        if error is not None:
            raise error
        with self._lock:
            self.sent.append(message)
        return SendReceipt(self.name, f"fake-{uuid.uuid4()}", body=self.body, subject=self.subject)

    def lookup(self, reference: str) -> LookupResult:
        with self._lock:
            return LookupResult(found=self.calls[reference] > 0)

    @property
    def call_count(self) -> int:
        with self._lock:
            return sum(self.calls.values())
