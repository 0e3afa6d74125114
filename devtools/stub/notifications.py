"""Notify v2 notifications: a send validated, the notification stored, the bodies sent back."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devtools.stub.errors import StubError

SEND_PATHS = {
    "/v2/notifications/email": ("email", "email_address"),
    "/v2/notifications/sms": ("sms", "phone_number"),
}
_FINAL = frozenset({"delivered", "permanent-failure", "temporary-failure", "technical-failure"})
# An open is reported after delivery, so it keeps the time the message was completed.
COMPLETED_STATUSES = _FINAL | {"opened"}
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")
# The sender identity each endpoint takes, as Notify documents it: ids are UUIDs.
SENDER_FIELDS = {
    "email": ("email_reply_to_id", "one_click_unsubscribe_url"),
    "sms": ("sms_sender_id",),
}


def now_text() -> str:
    """The time now as Notify writes it, in UTC to the microsecond."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SendRequest:
    """A validated send: which kind, to whom, with what."""

    kind: str
    recipient_field: str
    recipient: str
    template_id: str
    personalisation: dict[str, Any]
    reference: str | None
    # What the request said of its sender (reply-to, SMS sender, unsubscribe link), kept as sent.
    sender: dict[str, str] = field(default_factory=dict)


def validated_send(path: str, body: object) -> SendRequest:
    """The request Notify would accept at ``path``, or a 400 ValidationError saying why not."""
    kind, recipient_field = SEND_PATHS[path]
    if not isinstance(body, dict):
        raise StubError(400, "ValidationError", "Invalid JSON supplied in POST data")
    recipient = body.get(recipient_field)
    template_id = body.get("template_id")
    personalisation = body.get("personalisation") or {}
    reference = body.get("reference")
    if not isinstance(recipient, str) or not recipient:
        raise StubError(400, "ValidationError", f"{recipient_field} is a required property")
    if kind == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", recipient):
        raise StubError(400, "ValidationError", "email_address Not a valid email address")
    if kind == "sms" and not _PHONE.match(recipient):
        raise StubError(400, "ValidationError", "phone_number Must not contain letters or symbols")
    if not isinstance(template_id, str) or not UUID_PATTERN.match(template_id):
        raise StubError(400, "ValidationError", "template_id is not a valid UUID")
    if not isinstance(personalisation, dict):
        raise StubError(400, "ValidationError", "personalisation is not of type object")
    if reference is not None and not isinstance(reference, str):
        raise StubError(400, "ValidationError", "reference is not of type string")
    sender = _sender(kind, body)
    return SendRequest(
        kind, recipient_field, recipient, template_id, personalisation, reference, sender
    )


def _sender(kind: str, body: dict[str, Any]) -> dict[str, str]:
    """The sender identity fields of a send, checked as Notify checks them."""
    sender: dict[str, str] = {}
    for name in SENDER_FIELDS[kind]:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise StubError(400, "ValidationError", f"{name} is not of type string")
        if name.endswith("_id") and not UUID_PATTERN.match(value):
            raise StubError(400, "ValidationError", f"{name} is not a valid UUID")
        sender[name] = value
    return sender


def _rendered(request: SendRequest) -> str:
    lines = [f"{key}: {value}" for key, value in sorted(request.personalisation.items())]
    return "\n".join([f"(stub rendering of template {request.template_id})", *lines])


def new_notification(request: SendRequest, base_url: str) -> dict[str, Any]:
    """The notification Notify stores for an accepted send, as its lookups answer it."""
    notification_id = str(uuid.uuid4())
    created_at = now_text()
    return {
        "id": notification_id,
        "reference": request.reference,
        "type": request.kind,
        "email_address": request.recipient if request.kind == "email" else None,
        "phone_number": request.recipient if request.kind == "sms" else None,
        "status": "sending",
        "template": {
            "id": request.template_id,
            "version": 1,
            "uri": f"{base_url}/v2/template/{request.template_id}",
        },
        "body": _rendered(request),
        # A template whose subject line is a ((subject)) placeholder, as Notify's often are.
        "subject": str(request.personalisation.get("subject", "Message from the stub"))
        if request.kind == "email"
        else None,
        "personalisation": request.personalisation,
        **request.sender,
        "created_at": created_at,
        "sent_at": created_at,
        "completed_at": None,
        "scheduled_for": None,
    }


def created_answer(notification: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The 201 body Notify answers a send with."""
    content: dict[str, Any] = {"body": notification["body"]}
    if notification["type"] == "email":
        content.update(subject=notification["subject"], from_email="stub@notify.invalid")
    else:
        content["from_number"] = "STUB"
    return {
        "id": notification["id"],
        "reference": notification["reference"],
        "content": content,
        "uri": f"{base_url}/v2/notifications/{notification['id']}",
        "template": notification["template"],
        "scheduled_for": None,
    }


def receipt_body(notification: dict[str, Any]) -> dict[str, Any]:
    """The body Notify posts to a service's callback URL."""
    return {
        "id": notification["id"],
        "reference": notification["reference"],
        "to": notification["email_address"] or notification["phone_number"],
        "status": notification["status"],
        "created_at": notification["created_at"],
        "completed_at": notification["completed_at"],
        "sent_at": notification["sent_at"],
        "notification_type": notification["type"],
    }
