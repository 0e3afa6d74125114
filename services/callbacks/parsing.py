"""Provider callbacks: parse what each provider posts into one status event, or refuse it.

Parsing happens in the webhook before anything is stored, so a malformed body gets a 400
at once; the stored body is parsed again, the same way, when the event is applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.enums import InteractionStatus, InvalidEnumValue, parse_enum
from providers.notify import notify_status
from services.callbacks.status_events import StatusEvent
from services.sending.validation import is_printable

NOTIFY = "notify"
SIGNED = "signed"
MAX_DEPTH = 4


class MalformedCallback(ValueError):
    """The body is not a callback this route understands; the message is safe to return."""


@dataclass(frozen=True)
class ParsedCallback:
    """A callback's identity (for deduplication) and the status event it carries."""

    event_id: str
    event: StatusEvent


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedCallback("the body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedCallback("the body is not a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise MalformedCallback("the body is nested too deeply")
    return data


def _depth(value: object, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([level, *(_depth(v, level + 1) for v in value.values())])
    if isinstance(value, list):
        return max([level, *(_depth(v, level + 1) for v in value)])
    return level


def _text(data: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise MalformedCallback(f"{name!r} must be a string of 1-255 characters")
    if not is_printable(value):
        raise MalformedCallback(f"{name!r} must not contain control characters")
    return value


def _time(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedCallback(f"{name!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise MalformedCallback(f"{name!r} must carry a time zone")
    return parsed


def parse_notify(body: bytes) -> ParsedCallback:
    """A GC Notify / GOV.UK Notify delivery receipt: id, reference, status and times."""
    data = _object(body)
    notification_id = _text(data, "id")
    raw_status = _text(data, "status")
    status = notify_status(raw_status or "")
    if status is None:
        raise MalformedCallback(f"unknown Notify status {raw_status!r}")
    reason = raw_status if status is InteractionStatus.FAILED else None
    event = StatusEvent(
        reference=notification_id or "",
        status=status,
        provider=NOTIFY,
        provider_event_id=f"{notification_id}:{raw_status}",
        occurred_at=_time(data, "completed_at") or _time(data, "sent_at"),
        reason=reason,
        source="callback:notify",
        detail={"provider_status": raw_status},
        own_reference=_text(data, "reference", required=False),
    )
    return ParsedCallback(event.provider_event_id or "", event)


def parse_signed(body: bytes, webhook_id: str) -> ParsedCallback:
    """A Standard Webhooks event: ``{"type", "timestamp", "data": {"reference", "status"}}``."""
    data = _object(body)
    payload = data.get("data")
    if not isinstance(payload, dict):
        raise MalformedCallback("'data' must be an object")
    reference = _text(payload, "reference")
    try:
        status = parse_enum(InteractionStatus, payload.get("status"))
    except InvalidEnumValue as exc:
        raise MalformedCallback(str(exc)) from None
    event = StatusEvent(
        reference=reference or "",
        status=status,
        provider=SIGNED,
        provider_event_id=webhook_id,
        occurred_at=_time(payload, "occurred_at"),
        reason=_text(payload, "reason", required=False),
        source="callback:signed",
        detail={"type": str(data.get("type", ""))[:64]},
    )
    return ParsedCallback(webhook_id, event)


def parse(provider: str, body: bytes, event_id: str) -> ParsedCallback:
    """Parse a stored callback of ``provider`` again, as it was parsed when received."""
    if provider == NOTIFY:
        return parse_notify(body)
    if provider == SIGNED:
        return parse_signed(body, event_id)
    raise MalformedCallback(f"no parser for provider {provider!r}")
