"""Small builders of test data."""

from __future__ import annotations

import itertools
from typing import Any

from services.records import DispatchResult
from services.sending.communication import CommunicationService

_serial = itertools.count(1)


def unique_key(prefix: str = "key") -> str:
    """An idempotency key no other test uses."""
    return f"{prefix}-{next(_serial)}"


def send_email(
    service: CommunicationService,
    customer_id: str = "C-1",
    key: str | None = None,
    recipient: str | None = "person@example.org",
    payload: dict[str, Any] | None = None,
    template: str = "welcome",
) -> DispatchResult:
    """Dispatch one email with sensible defaults."""
    return service.dispatch(
        customer_id, "email", template, payload or {"name": "Ada"}, key or unique_key(), recipient
    )
