"""What support staff do for a customer who calls: read the history, correct an address, resend.

A resend never bypasses the pipeline: it updates the contact directory, records who asked and
why in the interaction's history, commits, and only then enqueues the ordinary dispatch task,
which resolves the address from the directory. The address itself is never written to an
event, a log line or a task argument.
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

from config.settings import Settings
from models.base import utcnow
from models.contact import Contact
from models.enums import ChannelType, EventKind, InteractionStatus
from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from services.errors import InvalidInput
from services.ledger import writes
from services.ledger.transitions import Move, Outcome, allows
from services.records import InteractionRecord
from services.sending import validation
from services.sending.batches import DispatchMessage, Publisher

SOURCE = "console"
RESEND_PREFIX = "resend:"
MAX_REASON_CHARS = 500
RESENDABLE = frozenset({ChannelType.EMAIL, ChannelType.SMS})
# Only these keys of an event's detail are shown; none of them holds an address.
SHOWN_DETAIL = ("failure_reason", "resend_key", "contact_updated", "provider_status")


class NotFound(LookupError):
    """No such interaction for this customer."""


class ResendRefused(Exception):
    """The resend is not allowed as asked; the message says why and is safe to show."""


class ResendConflict(ResendRefused):
    """The interaction changed since the page was shown (another resend came first)."""


class NotQueued(Exception):
    """The resend is recorded in the history, but the broker did not take the dispatch task."""

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(f"{idempotency_key}: recorded but not queued")
        self.idempotency_key = idempotency_key


class ResendKind(enum.StrEnum):
    """A new attempt on the failed interaction, or a new interaction beside a sent one."""

    RETRY = "retry"
    FORCED = "forced"


_MOVES = {ResendKind.RETRY: Move.RESEND, ResendKind.FORCED: Move.FORCED_RESEND}


@dataclass(frozen=True)
class ContactView:
    """A customer's addresses in the contact directory, decrypted for staff to read."""

    email: str | None
    phone: str | None


@dataclass(frozen=True)
class EventRecord:
    """One entry of an interaction's history, with the parts of its detail safe to show."""

    kind: EventKind
    from_status: InteractionStatus | None
    to_status: InteractionStatus | None
    outcome: str | None
    source: str
    actor: str | None
    attempt: int | None
    provider: str | None
    occurred_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class ResendResult:
    """What a resend did: which key was enqueued, and whether the directory changed."""

    kind: ResendKind
    idempotency_key: str
    contact_updated: bool


def resend_of(idempotency_key: str) -> str | None:
    """The interaction UUID a forced resend's key names, or None for any other key."""
    if not idempotency_key.startswith(RESEND_PREFIX):
        return None
    return idempotency_key.removeprefix(RESEND_PREFIX).rsplit(":", 1)[0]


class SupportService:
    """The console's operations; each is one short transaction, enqueueing after commit."""

    def __init__(
        self,
        sessions: SessionFactory,
        publisher: Publisher,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._settings = settings
        self._clock = clock

    def contact(self, customer_id: str) -> ContactView:
        """The customer's addresses on file (both None when there is no entry)."""
        with self._sessions() as session:
            contact = session.get(Contact, validation.customer_id(customer_id))
            if contact is None:
                return ContactView(None, None)
            return ContactView(contact.email, contact.phone)

    def hot_ids(self, ids: list[int]) -> set[int]:
        """Which of these interactions are still in the database (the rest are archived)."""
        if not ids:
            return set()
        with self._sessions() as session:
            found = session.scalars(
                sa.select(CustomerInteraction.id).where(CustomerInteraction.id.in_(ids))
            )
            return set(found)

    def interaction(
        self, customer_id: str, interaction_uuid: str
    ) -> tuple[InteractionRecord, list[EventRecord]]:
        """One of the customer's interactions and its whole history, oldest event first."""
        with self._sessions() as session:
            row = _find(session, customer_id, interaction_uuid)
            events = session.scalars(
                sa.select(InteractionEvent)
                .where(InteractionEvent.interaction_id == row.id)
                .order_by(InteractionEvent.id)
            )
            return InteractionRecord.of(row), [_event_record(event) for event in events]

    def interaction_by_uuid(
        self, interaction_uuid: str
    ) -> tuple[InteractionRecord, list[EventRecord]]:
        """Any customer's interaction by its uuid, with its history (for the API's readers)."""
        try:
            parsed = uuid.UUID(interaction_uuid)
        except (ValueError, TypeError, AttributeError):
            raise NotFound(interaction_uuid) from None
        with self._sessions() as session:
            customer = session.scalar(
                sa.select(CustomerInteraction.customer_id).where(
                    CustomerInteraction.interaction_uuid == parsed
                )
            )
        if customer is None:
            raise NotFound(interaction_uuid)
        return self.interaction(customer, interaction_uuid)

    def resend(
        self,
        customer_id: str,
        interaction_uuid: str,
        actor: str,
        address: str | None,
        reason: str | None,
        seen_resends: int | None = None,
    ) -> ResendResult:
        """Correct the address (when given) and send again through the dispatch task.

        A FAILED email or SMS gets a new attempt under its own key: it becomes PENDING in
        the same transaction, so a second resend is refused. One already SENT, DELIVERED or
        OPENED cannot move back, so it gets a new interaction whose key names the original,
        only when a reason is given and only if ``seen_resends`` (how many forced resends
        the page showed) is still the count, so a double click makes one, not two.
        """
        reason = _reason(reason)
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = _find(session, customer_id, interaction_uuid, lock=True)
            kind, key = self._plan(session, row, reason, seen_resends)
            updated = self._correct(session, row, address, now)
            entry = writes.Entry(
                SOURCE,
                actor=actor,
                attempt=row.attempt_count,
                detail={"resend_key": key, "contact_updated": updated},
                reason=reason,
            )
            writes.request_resend(session, row, _MOVES[kind], entry, now)
            message = DispatchMessage(
                idempotency_key=key,
                customer_id=row.customer_id,
                channel=row.channel.value,
                template_key=row.template_key or "",
                payload=dict((row.meta_data or {}).get("payload") or {}),
                # The directory supplies the address, so the corrected one is what is used.
                recipient=None,
                batch_id=row.batch_id if kind is ResendKind.RETRY else None,
                reply_to_id=(row.meta_data or {}).get("reply_to_id"),
            )
        try:
            self._publisher.publish([message])
        except Exception as exc:  # the broker's own errors vary by transport
            if kind is ResendKind.RETRY:
                self._undo_retry(row.id, row.attempt_count, actor)
            raise NotQueued(key) from exc
        return ResendResult(kind, key, updated)

    def _undo_retry(self, interaction_id: int, attempt: int, actor: str) -> None:
        """Put a resend that was never queued back to FAILED, unless a dispatch took it."""
        now = self._clock()
        entry = writes.Entry(SOURCE, actor=actor, attempt=attempt)
        with self._sessions() as session, session.begin():
            writes.undo_resend(session, interaction_id, attempt, entry, now)

    def _plan(
        self,
        session: Session,
        row: CustomerInteraction,
        reason: str | None,
        seen_resends: int | None,
    ) -> tuple[ResendKind, str]:
        if row.channel not in RESENDABLE:
            raise ResendRefused("only an email or an SMS can be sent again")
        if not row.template_key:
            raise ResendRefused("this interaction names no template to send again")
        if allows(Move.RESEND, row.status):
            return ResendKind.RETRY, row.idempotency_key
        if not allows(Move.FORCED_RESEND, row.status):
            if row.claim_expires_at is None:
                raise ResendConflict(
                    "a resend of this message is already queued: reload the page to follow it"
                )
            raise ResendConflict("an attempt is in flight; wait until it is sent or fails")
        if not reason:
            raise ResendRefused(
                f"this message is already {row.status.value}: say why it must be sent again"
            )
        earlier = int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(InteractionEvent)
                .where(
                    InteractionEvent.interaction_id == row.id,
                    InteractionEvent.outcome == Outcome.FORCED_RESEND.value,
                )
            )
            or 0
        )
        if seen_resends != earlier:
            raise ResendConflict(
                "this message was sent again after the page was shown: reload the page, "
                "and send it again only if it is still needed"
            )
        return ResendKind.FORCED, f"{RESEND_PREFIX}{row.interaction_uuid}:{earlier + 1}"

    def _correct(
        self, session: Session, row: CustomerInteraction, address: str | None, now: datetime
    ) -> bool:
        """Put ``address`` in the directory for the row's channel; True when it changed."""
        contact = session.get(Contact, row.customer_id)
        current = None
        if contact is not None:
            current = contact.email if row.channel is ChannelType.EMAIL else contact.phone
        if not address or not address.strip():
            if not current:
                raise InvalidInput(
                    "address", f"no {row.channel.value} address is on file: give one"
                )
            return False
        normalised = validation.recipient(
            row.channel, address.strip(), self._settings.default_phone_region
        )
        if normalised == current:
            return False
        if contact is None:
            contact = Contact(customer_id=row.customer_id)
            session.add(contact)
        if row.channel is ChannelType.EMAIL:
            contact.email = normalised
        else:
            contact.phone = normalised
        contact.updated_at = now
        return True


def forced_resends(events: list[EventRecord]) -> int:
    """How many forced resends of the interaction its history records."""
    return sum(1 for event in events if event.outcome == Outcome.FORCED_RESEND)


def _find(
    session: Session, customer_id: str, interaction_uuid: str, lock: bool = False
) -> CustomerInteraction:
    try:
        parsed = uuid.UUID(interaction_uuid)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(interaction_uuid) from None
    statement = sa.select(CustomerInteraction).where(
        CustomerInteraction.interaction_uuid == parsed,
        CustomerInteraction.customer_id == validation.customer_id(customer_id),
    )
    row = session.scalars(statement.with_for_update() if lock else statement).one_or_none()
    if row is None:
        raise NotFound(interaction_uuid)
    return row


def _reason(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = " ".join(value.split())
    if len(value) > MAX_REASON_CHARS or not validation.is_printable(value):
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} printable characters")
    return value


def _event_record(event: InteractionEvent) -> EventRecord:
    detail = event.detail or {}
    return EventRecord(
        kind=event.kind,
        from_status=event.from_status,
        to_status=event.to_status,
        outcome=event.outcome,
        source=event.source,
        actor=event.actor,
        attempt=event.attempt,
        provider=event.provider,
        occurred_at=event.occurred_at,
        detail={
            **({"reason": event.reason} if event.reason else {}),
            **{name: detail[name] for name in SHOWN_DETAIL if name in detail},
        },
    )
