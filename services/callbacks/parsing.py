"""Provider callbacks: parse what each provider posts into one status event, or refuse it.

Parsing happens in the webhook before anything is stored, so a malformed body gets a 400
at once; the stored body is parsed again, the same way, when the event is applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.enums import InteractionStatus, InvalidEnumValue, parse_enum
from providers.notify import notify_status
from services.callbacks.status_events import StatusEvent
from services.sending.validation import is_printable

NOTIFY = "notify"
SIGNED = "signed"
MAX_DEPTH = 4
# Receipts for messages this service sent: anything outside is a provider's mistake.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class MalformedCallback(ValueError):
    """The body is not a callback this route understands; the message is safe to return."""


@dataclass(frozen=True)
class ParsedCallback:
    """A callback's identity (for deduplication) and the status event it carries."""

    event_id: str
    event: StatusEvent


def _object(body: bytes) -> dict[str, Any]:
    if _too_deep(body, MAX_DEPTH):
        raise MalformedCallback("the body is nested too deeply")
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedCallback("the body is not JSON") from None
    except ValueError:  # an integer too long to convert, among others
        raise MalformedCallback("the body holds a number out of range") from None
    if not isinstance(data, dict):
        raise MalformedCallback("the body is not a JSON object")
    _refuse_unstorable(data)
    return data


def _too_deep(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests arrays and objects deeper than ``limit``, read before parsing."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # every real callback: no need to look closer
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys appear once: a repeated key would let the last one win unseen."""
    data = dict(pairs)
    if len(data) != len(pairs):
        raise MalformedCallback("the body repeats a key")
    return data


def _refuse_unstorable(value: object, where: str = "the body") -> None:
    """Refuse any key or string holding NUL or a lone surrogate: no database can store them."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key, where)
            _refuse_unstorable(item, repr(key) if _storable(key) else where)
    elif isinstance(value, list):
        for item in value:
            _refuse_unstorable(item, where)
    elif isinstance(value, str) and not _storable(value):
        raise MalformedCallback(f"{where} holds NUL or an unpaired surrogate")


def _storable(text: str) -> bool:
    """Whether ``text`` is free of NUL and encodes as UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    if not isinstance(value, str) or len(value) > 64:
        raise MalformedCallback(f"{name!r} is not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedCallback(f"{name!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise MalformedCallback(f"{name!r} must carry a time zone")
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise MalformedCallback(f"{name!r} is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise MalformedCallback(f"{name!r} is out of range")
    return utc


def parse_notify(body: bytes) -> ParsedCallback:
    """A GC Notify / GOV.UK Notify delivery receipt: id, reference, status and times."""
    data = _object(body)
    notification_id = _text(data, "id")
    raw_status = _text(data, "status")
    status = notify_status(raw_status or "")
    if status is None:
        raise MalformedCallback("'status' is not a Notify status")
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
    if not webhook_id or len(webhook_id) > 255 or not is_printable(webhook_id):
        raise MalformedCallback("'webhook-id' must be 1-255 printable characters")
    data = _object(body)
    payload = data.get("data")
    if not isinstance(payload, dict):
        raise MalformedCallback("'data' must be an object")
    reference = _text(payload, "reference")
    try:
        status = parse_enum(InteractionStatus, payload.get("status"))
    except InvalidEnumValue:
        raise MalformedCallback("'status' is not a known status") from None
    event = StatusEvent(
        reference=reference or "",
        status=status,
        provider=SIGNED,
        provider_event_id=webhook_id,
        occurred_at=_time(payload, "occurred_at"),
        reason=_text(payload, "reason", required=False),
        source="callback:signed",
        detail={"type": (_text(data, "type", required=False) or "")[:64]},
    )
    return ParsedCallback(webhook_id, event)


def parse(provider: str, body: bytes, event_id: str) -> ParsedCallback:
    """Parse a stored callback of ``provider`` again, as it was parsed when received."""
    if provider == NOTIFY:
        return parse_notify(body)
    if provider == SIGNED:
        return parse_signed(body, event_id)
    raise MalformedCallback(f"no parser for provider {provider!r}")
