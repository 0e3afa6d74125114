"""The claim protocol: the short transactions around a provider call that make sends idempotent.

Every write here names the state it expects, so two workers holding the same key can never
both believe they own it; the database's unique key and conditional updates are the lock.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.enums import SENT_OR_BEYOND, ChannelType, EventKind, InteractionStatus
from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from providers.base import SendReceipt
from services.ledger.transitions import decide
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


@dataclass(frozen=True)
class Claim:
    """The result of trying to claim an idempotency key."""

    state: ClaimState
    interaction_id: int
    interaction_uuid: uuid.UUID
    attempt: int


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CustomerInteraction)


def claim(
    session: Session,
    request: DispatchRequest,
    recipient: str | None,
    failure: str | None,
    now: datetime,
    lease_until: datetime,
) -> Claim:
    """Claim the key for a new attempt, or say who has it; ``failure`` records it FAILED at once."""
    status = InteractionStatus.FAILED if failure else InteractionStatus.PENDING
    attempt_values: dict[str, Any] = {
        "status": status,
        "recipient": recipient,
        "recipient_hash": recipient_index(request.channel, recipient) if recipient else None,
        "template_key": request.template_key,
        "batch_id": request.batch_id,
        "meta_data": {"payload": request.payload},
        "claim_expires_at": None if failure else lease_until,
        "failure_reason": failure,
        "failed_at": now if failure else None,
        "updated_at": now,
    }
    new_uuid = uuid.uuid4()
    inserted = session.execute(
        _insert(session)
        .values(
            interaction_uuid=new_uuid,
            customer_id=request.customer_id,
            idempotency_key=request.idempotency_key,
            channel=request.channel,
            attempt_count=1,
            created_at=now,
            **attempt_values,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(CustomerInteraction.id)
    ).scalar_one_or_none()
    if inserted is not None:
        _started(session, inserted, 1, status, failure, now)
        return Claim(ClaimState.CLAIMED, inserted, new_uuid, 1)

    row = session.execute(
        sa.select(CustomerInteraction).where(
            CustomerInteraction.idempotency_key == request.idempotency_key
        )
    ).scalar_one()
    held = Claim(ClaimState.IN_FLIGHT, row.id, row.interaction_uuid, row.attempt_count)
    if row.customer_id != request.customer_id or row.channel is not request.channel:
        return Claim(ClaimState.KEY_CONFLICT, row.id, row.interaction_uuid, row.attempt_count)
    if row.status in SENT_OR_BEYOND:
        return Claim(ClaimState.ALREADY_SENT, row.id, row.interaction_uuid, row.attempt_count)
    if row.claim_expires_at is not None:
        return held
    # A FAILED row, or a PENDING one whose claim was released: take it over for a new attempt.
    attempt = row.attempt_count + 1
    taken = session.execute(
        sa.update(CustomerInteraction)
        .where(
            CustomerInteraction.id == row.id,
            CustomerInteraction.status == row.status,
            CustomerInteraction.attempt_count == row.attempt_count,
            CustomerInteraction.claim_expires_at.is_(None),
        )
        .values(attempt_count=attempt, **attempt_values)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return held
    _started(session, row.id, attempt, status, failure, now, previous=row.status)
    return Claim(ClaimState.CLAIMED, row.id, row.interaction_uuid, attempt)


def _started(
    session: Session,
    interaction_id: int,
    attempt: int,
    status: InteractionStatus,
    failure: str | None,
    now: datetime,
    previous: InteractionStatus | None = None,
) -> None:
    _append_event(
        session,
        interaction_id=interaction_id,
        kind=EventKind.ATTEMPT_STARTED,
        from_status=previous,
        to_status=status,
        attempt=attempt,
        source=SOURCE,
        detail={"failure_reason": failure} if failure else None,
        occurred_at=now,
        recorded_at=now,
    )


def _append_event(session: Session, **values: Any) -> None:
    """Append to the event history with one INSERT, skipping the ORM's flush machinery."""
    session.execute(sa.insert(InteractionEvent).values(**values))


def _locked(session: Session, interaction_id: int) -> CustomerInteraction:
    return session.execute(
        sa.select(CustomerInteraction)
        .where(CustomerInteraction.id == interaction_id)
        .with_for_update()
    ).scalar_one()


def record_sent(
    session: Session, claim: Claim, receipt: SendReceipt, now: datetime, source: str = SOURCE
) -> CustomerInteraction:
    """Record that the provider accepted the attempt; a callback may already have gone further."""
    table = CustomerInteraction
    # The usual case in one statement: still PENDING, so SENT applies.
    updated = session.scalars(
        sa.update(table)
        .where(table.id == claim.interaction_id, table.status == InteractionStatus.PENDING)
        .values(
            status=InteractionStatus.SENT,
            provider=receipt.provider,
            provider_reference=sa.func.coalesce(
                table.provider_reference, receipt.provider_reference
            ),
            notify_reference=str(claim.interaction_uuid),
            sent_at=now,
            claim_expires_at=None,
            failure_reason=None,
            updated_at=now,
            # Bound through the column's type so the body is sealed like any other write.
            **({"body_content": receipt.body} if receipt.body is not None else {}),
        )
        .returning(table)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if updated is not None:
        _status_event(
            session,
            updated,
            InteractionStatus.PENDING,
            InteractionStatus.SENT,
            "applied",
            claim,
            now,
            source=source,
        )
        return updated
    # A provider callback got there first: decide under the row lock.
    row = _locked(session, claim.interaction_id)
    previous = row.status
    row.provider = receipt.provider
    row.provider_reference = row.provider_reference or receipt.provider_reference
    row.notify_reference = str(claim.interaction_uuid)
    row.sent_at = row.sent_at or now
    row.claim_expires_at = None
    row.failure_reason = None
    if receipt.body is not None:
        row.body_content = receipt.body
    transition = decide(previous, InteractionStatus.SENT)
    if transition.changes:
        row.status = transition.new_status
    _status_event(
        session,
        row,
        previous,
        InteractionStatus.SENT,
        transition.outcome,
        claim,
        now,
        source=source,
    )
    return row


def record_failed(
    session: Session, claim: Claim, reason: str, now: datetime
) -> CustomerInteraction:
    """Record that the provider refused the attempt for good."""
    row = _locked(session, claim.interaction_id)
    previous = row.status
    transition = decide(previous, InteractionStatus.FAILED)
    row.claim_expires_at = None
    if transition.changes:
        row.status = InteractionStatus.FAILED
        row.failed_at = now
        row.failure_reason = reason
    _status_event(
        session, row, previous, InteractionStatus.FAILED, transition.outcome, claim, now, reason
    )
    return row


def _status_event(
    session: Session,
    row: CustomerInteraction,
    previous: InteractionStatus,
    requested: InteractionStatus,
    outcome: str,
    claim: Claim,
    now: datetime,
    reason: str | None = None,
    source: str = SOURCE,
) -> None:
    _append_event(
        session,
        interaction_id=row.id,
        kind=EventKind.STATUS_CHANGED,
        from_status=previous,
        to_status=requested,
        outcome=outcome,
        attempt=claim.attempt,
        source=source,
        provider=row.provider,
        detail={"failure_reason": reason} if reason else None,
        occurred_at=now,
        recorded_at=now,
    )


def release(
    session: Session, claim: Claim, reason: str, now: datetime, source: str = SOURCE
) -> bool:
    """Give the claim back so a later attempt may take it; True when this caller still held it."""
    released = session.execute(
        sa.update(CustomerInteraction)
        .where(
            CustomerInteraction.id == claim.interaction_id,
            CustomerInteraction.status == InteractionStatus.PENDING,
            CustomerInteraction.attempt_count == claim.attempt,
            CustomerInteraction.claim_expires_at.is_not(None),
        )
        .values(claim_expires_at=None, failure_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _append_event(
        session,
        interaction_id=claim.interaction_id,
        kind=EventKind.ATTEMPT_RELEASED,
        from_status=InteractionStatus.PENDING,
        to_status=InteractionStatus.PENDING,
        attempt=claim.attempt,
        source=source,
        detail={"reason": reason},
        occurred_at=now,
        recorded_at=now,
    )
    return True


def give_up(session: Session, idempotency_key: str, reason: str, now: datetime) -> bool:
    """Mark a released attempt FAILED after its retries ran out; False when it moved on."""
    row = session.execute(
        sa.select(CustomerInteraction)
        .where(CustomerInteraction.idempotency_key == idempotency_key)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None or row.status is not InteractionStatus.PENDING or row.claim_expires_at:
        return False
    row.status = InteractionStatus.FAILED
    row.failed_at = now
    row.failure_reason = reason
    claim_ = Claim(ClaimState.CLAIMED, row.id, row.interaction_uuid, row.attempt_count)
    _status_event(
        session,
        row,
        InteractionStatus.PENDING,
        InteractionStatus.FAILED,
        "applied",
        claim_,
        now,
        reason,
    )
    return True
