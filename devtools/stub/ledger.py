"""What the stub remembers: notifications, receipts, limits and counts, behind one lock."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from devtools.stub.config import StubConfig
from devtools.stub.errors import StubError, injected_failure
from devtools.stub.limits import SendLimits
from devtools.stub.notifications import COMPLETED_STATUSES, SendRequest, new_notification, now_text

PAGE_SIZE = 250
REFUSAL_REASONS = ("rate_limited", "daily_limit", "revoked", "outage")


class Ledger:
    """Everything the stub remembers, behind one lock."""

    def __init__(self, config: StubConfig) -> None:
        self.lock = threading.Lock()
        self.initial = config
        self.config = config
        self.random = random.Random()  # noqa: S311 - fault injection, not security
        # The outage under way: its mode (None when there is none) and when it ends (monotonic).
        self.outage_mode: str | None = None
        self.outage_ends = 0.0
        self.clear()

    def clear(self) -> None:
        """Forget every notification and count (the caller holds the lock, or no one else runs)."""
        self.notifications: dict[str, dict[str, Any]] = {}
        self.by_reference: dict[str, list[str]] = {}
        self.receipts: Counter[str] = Counter()
        self.total = self.rejected = self.callbacks_sent = self.callbacks_failed = 0
        self.received = 0
        self.refused: Counter[str] = Counter()
        self.limits = SendLimits(time.monotonic())

    def arrive(self) -> str | None:
        """Count one request to the API; the mode of the outage that refuses it, if one does."""
        with self.lock:
            self.received += 1
            if self.outage_mode is None or time.monotonic() >= self.outage_ends:
                return None
            self.refused["outage"] += 1
            return self.outage_mode

    def refuse(self, reason: str) -> None:
        """Count one request refused for ``reason``, one of REFUSAL_REASONS."""
        with self.lock:
            self.refused[reason] += 1

    def admit(self, request: SendRequest, base_url: str, key: str) -> dict[str, Any]:
        """Record the notification and its receipt, or raise the limit or fault that refuses it."""
        with self.lock:
            refusal = self.limits.refusal(key, self.config, time.monotonic())
            if refusal is not None:
                reason, error = refusal
                self.refused[reason] += 1
                raise error
            fault = self._fault(request.recipient)
            if fault is not None:
                self.rejected += 1
                raise fault
            notification = new_notification(request, base_url)
            self.notifications[notification["id"]] = notification
            self.total += 1
            self.limits.count_accepted(key)
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
        """Totals, refusals and receipts per reference, as GET /_stub/stats answers them."""
        with self.lock:
            return {
                "received": self.received,
                "accepted": self.total,
                "refused": {reason: self.refused[reason] for reason in REFUSAL_REASONS},
                "sent_today": dict(self.limits.sent_today),
                "total": self.total,
                "unique_references": len(self.receipts),
                "duplicates": sum(count - 1 for count in self.receipts.values()),
                "receipts": dict(self.receipts),
                "rejected": self.rejected,
                "callbacks": {"sent": self.callbacks_sent, "failed": self.callbacks_failed},
            }
