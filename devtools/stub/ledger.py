"""What the stub remembers: notifications, receipts per reference and counts, behind one lock."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import replace
from typing import Any

from devtools.stub.config import StubConfig
from devtools.stub.errors import StubError, injected_failure
from devtools.stub.notifications import COMPLETED_STATUSES, SendRequest, new_notification, now_text

PAGE_SIZE = 250


class Ledger:
    """Everything the stub remembers, behind one lock."""

    def __init__(self, config: StubConfig) -> None:
        self.lock = threading.Lock()
        self.initial = config
        self.config = config
        self.random = random.Random()  # noqa: S311 - fault injection, not security
        self.clear()

    def clear(self) -> None:
        """Forget every notification and count (the caller holds the lock, or no one else runs)."""
        self.notifications: dict[str, dict[str, Any]] = {}
        self.by_reference: dict[str, list[str]] = {}
        self.receipts: Counter[str] = Counter()
        self.total = self.rejected = self.callbacks_sent = self.callbacks_failed = 0

    def admit(self, request: SendRequest, base_url: str) -> dict[str, Any]:
        """Record the notification and its receipt, or raise the fault the config asks for."""
        with self.lock:
            fault = self._fault(request.recipient)
            if fault is not None:
                self.rejected += 1
                raise fault
            notification = new_notification(request, base_url)
            self.notifications[notification["id"]] = notification
            self.total += 1
            if request.reference is not None:
                self.receipts[request.reference] += 1
                self.by_reference.setdefault(request.reference, []).append(notification["id"])
            return notification

    def _fault(self, recipient: str) -> StubError | None:
        config = self.config
        if config.fail_next > 0:
            self.config = replace(config, fail_next=config.fail_next - 1)
            return injected_failure(config.failure_status)
        if config.failure_rate and self.random.random() < config.failure_rate:
            return injected_failure(config.failure_status)
        blocked = config.reject_recipients_containing
        if blocked and blocked in recipient:
            # Echoing the address, as some real validation messages do, lets tests prove that
            # clients keep it out of what they store.
            return StubError(400, "ValidationError", f"{recipient} is not allowed to receive this")
        return None

    def find(self, reference: str | None) -> list[dict[str, Any]]:
        """Notifications with ``reference`` (all when None), newest first."""
        with self.lock:
            if reference is None:
                chosen = list(self.notifications.values())
            else:
                chosen = [self.notifications[i] for i in self.by_reference.get(reference, [])]
            return [dict(n) for n in reversed(chosen[-PAGE_SIZE:])]

    def get(self, notification_id: str) -> dict[str, Any] | None:
        """One notification by id."""
        with self.lock:
            found = self.notifications.get(notification_id)
            return dict(found) if found else None

    def mark(self, notification_id: str, status: str) -> dict[str, Any] | None:
        """Move a notification to ``status``, as a delivery receipt reports it."""
        with self.lock:
            found = self.notifications.get(notification_id)
            if found is not None:
                found["status"] = status
                # A duplicate receipt must carry the same completed_at as the first one did.
                ended = status in COMPLETED_STATUSES
                found["completed_at"] = (found["completed_at"] or now_text()) if ended else None
                return dict(found)
            return None

    def count_callback(self, delivered: bool) -> None:
        """Count one callback posted (or not)."""
        with self.lock:
            if delivered:
                self.callbacks_sent += 1
            else:
                self.callbacks_failed += 1

    def stats(self) -> dict[str, Any]:
        """Totals and receipts per reference, as GET /_stub/stats answers them."""
        with self.lock:
            return {
                "total": self.total,
                "unique_references": len(self.receipts),
                "duplicates": sum(count - 1 for count in self.receipts.values()),
                "receipts": dict(self.receipts),
                "rejected": self.rejected,
                "callbacks": {"sent": self.callbacks_sent, "failed": self.callbacks_failed},
            }
