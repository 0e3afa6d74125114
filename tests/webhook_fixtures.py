"""Helpers for webhook tests: secrets, signed requests, Notify receipts and a recording queue."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook

from services.callbacks.signatures import token_sha256

TOKEN_A = "callback-token-a-0123456789abcdef"
TOKEN_B = "callback-token-b-fedcba9876543210"
SECRET_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"b" * 32).decode()
TOKEN_HASHES = [token_sha256(TOKEN_A), token_sha256(TOKEN_B)]


class RecordingQueue:
    """Stands in for the broker where a test is about the HTTP layer: records what was queued."""

    def __init__(self) -> None:
        self.enqueued: list[int] = []

    def enqueue(self, inbound_id: int) -> None:
        self.enqueued.append(inbound_id)


def notify_receipt(
    notification_id: str, reference: str, status: str = "delivered", **extra: Any
) -> bytes:
    """A GC Notify delivery receipt as Notify posts it."""
    now = datetime.now(UTC).isoformat()
    body = {
        "id": notification_id,
        "reference": reference,
        "to": "someone@example.org",
        "status": status,
        "created_at": now,
        "completed_at": now,
        "sent_at": now,
        "notification_type": "email",
        **extra,
    }
    return json.dumps(body).encode()


def signed_request(
    secret: str,
    reference: str,
    status: str,
    webhook_id: str | None = None,
    sent_at: datetime | None = None,
    reason: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A Standard Webhooks request signed by the official library."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    sent_at = sent_at or datetime.now(UTC)
    data = {"reference": reference, "status": status}
    if reason is not None:
        data["reason"] = reason
    body = json.dumps({"type": "message.status", "timestamp": sent_at.isoformat(), "data": data})
    signature = Webhook(secret).sign(webhook_id, sent_at, body)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    return body.encode(), headers


def stale(seconds: int) -> datetime:
    """A time ``seconds`` ago."""
    return datetime.now(UTC) - timedelta(seconds=seconds)
