"""The claim protocol: the short transactions around a provider call that make sends idempotent.

Every write (made by services.ledger.writes) names the state it expects, so two workers holding
the same key can never both believe they own it; the unique key and conditional updates are
the lock.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models.enums import ChannelType
from models.interaction import CustomerInteraction
from providers.base import SendReceipt
from services.ledger import writes
from services.ledger.transitions import allows
from services.sending.validation import recipient_index

SOURCE = "dispatch"


class ClaimState(enum.Enum):
    """Whether this caller now owns the attempt, and if not, why."""

    CLAIMED = "claimed"
    ALREADY_SENT = "already_sent"
    IN_FLIGHT = "in_flight"
    KEY_CONFLICT = "key_conflict"


@dataclass(frozen=True)
class DispatchRequest:
    """A validated dispatch, as the claim stores it."""

    customer_id: str
    channel: ChannelType
    template_key: str
    payload: dict[str, Any]
    idempotency_key: str
    batch_id: str | None
    # Kept with the payload, so a requeued or resent attempt goes out with the same sender.
    reply_to_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """The result of trying to claim an idempotency key."""

    state: ClaimState
    interaction_id: int
    interaction_uuid: uuid.UUID
    attempt: int


def claim(
    session: Session,
    request: DispatchRequest,
    recipient: str | None,
    failure: str | None,
    now: datetime,
    lease_seconds: float,
) -> Claim:
    """Claim the key for a new attempt, or say who has it; ``failure`` records it FAILED at once."""
    attempt = _attempt(request, recipient, failure, lease_seconds)
    opened = _open_new(writes.open_attempt, session, request, attempt, now)
    if opened is not None:
        return opened

    row = session.execute(
        sa.select(CustomerInteraction).where(
            CustomerInteraction.idempotency_key == request.idempotency_key
        )
    ).scalar_one()
    held = Claim(ClaimState.IN_FLIGHT, row.id, row.interaction_uuid, row.attempt_count)
    if row.customer_id != request.customer_id or row.channel is not request.channel:
        return Claim(ClaimState.KEY_CONFLICT, row.id, row.interaction_uuid, row.attempt_count)
    if not allows(attempt.move, row.status):
        return Claim(ClaimState.ALREADY_SENT, row.id, row.interaction_uuid, row.attempt_count)
    if row.claim_expires_at is not None:
        return held
    # A FAILED row, or a PENDING one whose claim was released: take it over for a new attempt.
    if not writes.take_over(session, row.id, row.status, row.attempt_count, attempt, now, SOURCE):
        return held
    return Claim(ClaimState.CLAIMED, row.id, row.interaction_uuid, row.attempt_count + 1)


def _attempt(
    request: DispatchRequest, recipient: str | None, failure: str | None, lease_seconds: float
) -> writes.Attempt:
    return writes.Attempt(
        recipient=recipient,
        recipient_hash=recipient_index(request.channel, recipient) if recipient else None,
        template_key=request.template_key,
        batch_id=request.batch_id,
        payload=request.payload,
        reply_to_id=request.reply_to_id,
        failure=failure,
        lease_seconds=lease_seconds,
    )


def claim_new(
    on: writes.Target,
    request: DispatchRequest,
    recipient: str,
    now: datetime,
    lease_seconds: float,
    check_suppression: bool,
) -> Claim | None:
    """The usual claim, a new key to an address not suppressed, in one round trip; else None.

    None says nothing was written: the key exists, the address is suppressed (when
    ``check_suppression``), or the database cannot do it in one statement. ``claim`` then
    finds out which.
    """
    attempt = _attempt(request, recipient, None, lease_seconds)
    suppression_hash = attempt.recipient_hash if check_suppression else None
    return _open_new(writes.open_first_attempt, on, request, attempt, now, suppression_hash)


def _open_new(
    open_row: Callable[..., int | None],
    on: writes.Target,
    request: DispatchRequest,
    attempt: writes.Attempt,
    now: datetime,
    *extra: Any,
) -> Claim | None:
    """A new interaction for the request's key, written by ``open_row``; None if none was."""
    new_uuid = uuid.uuid4()
    inserted = open_row(
        on,
        new_uuid,
        request.customer_id,
        request.idempotency_key,
        request.channel,
        attempt,
        now,
        SOURCE,
        *extra,
    )
    return Claim(ClaimState.CLAIMED, inserted, new_uuid, 1) if inserted is not None else None


def record_sent_first(
    on: writes.Target, claim: Claim, receipt: SendReceipt, now: datetime
) -> dict[str, Any] | None:
    """SENT and its event in one round trip, the record's columns; None when it must be decided
    under the row lock (``record_sent``)."""
    return writes.record_sent_first(
        on, claim.interaction_id, claim.interaction_uuid, claim.attempt, receipt, now, SOURCE
    )


def record_sent(
    session: Session, claim: Claim, receipt: SendReceipt, now: datetime, source: str = SOURCE
) -> CustomerInteraction:
    """Record that the provider accepted the attempt; a callback may already have gone further."""
    return writes.record_sent(
        session, claim.interaction_id, claim.interaction_uuid, claim.attempt, receipt, now, source
    )


def record_failed(
    session: Session, claim: Claim, reason: str, now: datetime
) -> CustomerInteraction:
    """Record that the provider refused the attempt for good."""
    return writes.record_failed(session, claim.interaction_id, claim.attempt, reason, now, SOURCE)


def release(
    session: Session, claim: Claim, reason: str, now: datetime, source: str = SOURCE
) -> bool:
    """Give the claim back so a later attempt may take it; True when this caller still held it."""
    return writes.release(session, claim.interaction_id, claim.attempt, reason, now, source)


def give_up(session: Session, idempotency_key: str, reason: str, now: datetime) -> bool:
    """Mark a released attempt FAILED after its retries ran out; False when it moved on."""
    row = session.execute(
        sa.select(CustomerInteraction)
        .where(CustomerInteraction.idempotency_key == idempotency_key)
        .with_for_update()
    ).scalar_one_or_none()
    return row is not None and writes.give_up(session, row, reason, now, SOURCE)
