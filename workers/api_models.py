"""The HTTP API's bodies as pydantic models: what requests carry, what answers hold.

The OpenAPI document (workers.api_openapi) is generated from these, so the document and the
checks the views make are the same definitions.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SentChannel = Literal["email", "sms"]
AnyChannel = Literal["email", "sms", "phone", "system"]
Status = Literal["pending", "sent", "delivered", "opened", "failed"]
CUSTOMER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
TEMPLATE_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
BATCH_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$"


class Strict(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class MessageRequest(Strict):
    """One message to send through the workers."""

    customer_id: str = Field(min_length=1, max_length=64, pattern=CUSTOMER_ID)
    channel: SentChannel
    template_key: str = Field(min_length=1, max_length=100, pattern=TEMPLATE_KEY)
    payload: dict[str, Any] = Field(default_factory=dict, description="The template's fields.")
    recipient: str | None = Field(
        default=None,
        max_length=320,
        description="Email address or phone number; the contact directory's when omitted.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Used when no Idempotency-Key header is sent; one of the two is required.",
    )


class NoteRequest(Strict):
    """A phone call or manual notation; its author is the calling client."""

    content: str = Field(min_length=1, max_length=10_000)
    occurred_at: datetime | None = Field(
        default=None, description="When the call happened, with its time zone; now when omitted."
    )


class BatchControlRequest(Strict):
    """Why an operator steers a batch (optional)."""

    reason: str | None = Field(default=None, max_length=500)


class Links(BaseModel):
    """Where to go next."""

    self: str
    timeline: str | None = None
    next: str | None = None


class MessageAccepted(BaseModel):
    """The interaction a message is: created now (202) or already (200)."""

    interaction_uuid: uuid.UUID
    idempotency_key: str
    customer_id: str
    channel: SentChannel
    status: Status
    links: Links


class Interaction(BaseModel):
    """One interaction as the timeline shows it (no address, no body)."""

    interaction_uuid: uuid.UUID
    customer_id: str
    channel: AnyChannel
    status: Status
    template_key: str | None
    batch_id: str | None
    attempt_count: int
    provider: str | None
    failure_reason: str | None
    author: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    failed_at: datetime | None


class Event(BaseModel):
    """One entry of an interaction's history."""

    kind: str
    from_status: Status | None
    to_status: Status | None
    outcome: str | None
    source: str
    actor: str | None
    attempt: int | None
    provider: str | None
    occurred_at: datetime
    detail: dict[str, Any]


class InteractionDetail(Interaction):
    """One interaction with its whole history, oldest event first; a note carries its text."""

    body_content: str | None = None
    events: list[Event]


class Timeline(BaseModel):
    """One page of a customer's interactions, newest first."""

    items: list[Interaction]
    next_cursor: str | None
    links: Links


class RejectedRow(BaseModel):
    """A row of an upload the batch could not use: its line and why (never its content)."""

    line: int
    reason: str


class BatchReport(BaseModel):
    """What one upload of a batch did; posting the same batch again resumes it."""

    batch_id: str
    rows: int
    enqueued: int
    already_sent: int
    duplicates: int
    rejected: int
    rejections: list[RejectedRow] = Field(description="The first 1,000 rejected rows.")
    links: Links


class BatchState(BaseModel):
    """Where a batch stands."""

    batch_id: str
    channel: str
    template_key: str
    state: Literal["sending", "paused", "cancelled"]
    scheduled: bool
    not_before: datetime | None
    runs: int
    rows: int
    rejected: int
    expected: int
    by_status: dict[str, int]
    finished: int
    progress: float = Field(ge=0, le=1)
    in_flight: int
    held: int
    released: int
    outcome_unknown: int
    started_by: str | None = Field(
        default=None,
        description="Who first ran the batch: the client that uploaded it, or the operator "
        "who ran send-batch; null for a batch run before this was recorded.",
    )


class BatchChange(BaseModel):
    """What pause, resume or cancel did."""

    batch_id: str
    before: Literal["sending", "paused", "cancelled"]
    after: Literal["sending", "paused", "cancelled"]
    changed: bool
    released_parked: int | None = None


class FieldProblem(BaseModel):
    """One field at fault."""

    field: str
    detail: str


class Problem(BaseModel):
    """An error, as RFC 9457 shapes it (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]
