"""CommunicationService: the RFC's four operations over the interactions ledger."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from config.logging import bind as bind_log_ids
from config.settings import Settings, get_settings
from models.base import utcnow
from models.contact import Contact
from models.crypto import keyring
from models.enums import ChannelType, InteractionStatus, parse_status
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from providers.base import (
    AmbiguousProviderError,
    DailyLimitReached,
    KeyRefused,
    NoProviderForChannel,
    OutboundMessage,
    PermanentProviderError,
    Provider,
    RateLimited,
    RecipientRefused,
    SendReceipt,
    TransientProviderError,
)
from providers.pacing import Admission, Hold
from providers.registry import ProviderRegistry
from services.archive.timeline import history_with_archive
from services.callbacks import status_events
from services.errors import BatchHeld, InvalidInput, InvalidRecipient, TransientDispatchError
from services.ledger import history, writes
from services.records import (
    DispatchOutcome,
    DispatchResult,
    HistoryPage,
    InteractionRecord,
    StatusUpdate,
)
from services.sending import claims, suppression, validation
from services.sending.batch_control import BatchGate, Verdict
from services.sending.claims import Claim, ClaimState, DispatchRequest
from services.sending.pacing import PaceKeeper
from telemetry import metrics

log = logging.getLogger(__name__)

# The RFC numbers customers (101); the ledger stores every id as text ("101").
CustomerId = str | int
# Recorded as a note's author when the caller names no one.
AUTHOR_NOT_GIVEN = "(author not given)"
# The longest refused address kept: the longest an email address can be.
MAX_TRIED_CHARS = 320

_CLAIM_OUTCOMES = {
    ClaimState.ALREADY_SENT: DispatchOutcome.ALREADY_SENT,
    ClaimState.IN_FLIGHT: DispatchOutcome.IN_FLIGHT,
}


class CommunicationService:
    """Dispatches, records and reads interactions; one short transaction at a time."""

    def __init__(
        self,
        session_factory: SessionFactory,
        providers: ProviderRegistry,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utcnow,
        pace: PaceKeeper | None = None,
        alone: sa.Engine | None = None,
        batches: BatchGate | None = None,
    ) -> None:
        """``alone``: the engine whose connections (one kept by each thread) take the dispatch's
        two usual writes (the claim, SENT) each as a statement of its own, with no session
        around it; None runs
        them in sessions (a test's, rolled back at its end). ``batches``: the gate a batch's
        message must pass before anything is claimed; None sends whatever it is given."""
        self._sessions = session_factory
        self._alone = alone
        self._batches = batches
        self._providers = providers
        self._settings = settings or get_settings()
        self._clock = clock
        self._pace = pace or PaceKeeper(None, self._settings)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CommunicationService:
        """The same as ``services.connect(settings)``: the service on the configured database."""
        from services import connect  # noqa: PLC0415 - the package imports this module

        return connect(settings)

    def dispatch(
        self,
        customer_id: CustomerId,
        channel: ChannelType | str,
        template_key: str,
        payload: dict[str, Any] | None,
        idempotency_key: str,
        recipient: str | None = None,
        *,
        batch_id: str | None = None,
        reply_to_id: str | None = None,
    ) -> DispatchResult:
        """Send one message at most once per ``idempotency_key`` and record what happened.

        Claim the key in one transaction, call the provider holding no connection, record
        the result in a second. A transient provider error releases the claim and raises
        TransientDispatchError, so the caller may retry.
        """
        request = self._validated(customer_id, channel, template_key, payload, idempotency_key)
        request = DispatchRequest(
            **{
                **request.__dict__,
                "batch_id": batch_id,
                "reply_to_id": validation.sender_id(reply_to_id),
            }
        )
        try:
            provider = self._providers.for_channel(request.channel)
        except NoProviderForChannel as exc:
            raise InvalidInput("channel", str(exc)) from None
        admission = self._admit(provider, request.channel, batch_id)
        now = self._clock()
        lease = self._settings.claim_lease_seconds
        claim, address, failure = self._claim(request, recipient, now, lease)
        if claim.state is ClaimState.KEY_CONFLICT:
            raise InvalidInput(
                "idempotency_key", "was already used for another customer or channel"
            )
        if claim.state is not ClaimState.CLAIMED:
            return DispatchResult(_CLAIM_OUTCOMES[claim.state], self._record(claim.interaction_id))
        bind_log_ids(interaction_uuid=claim.interaction_uuid)
        metrics.attempt_claimed(request.channel, provider.name, claim.attempt, failure is not None)
        if failure is not None or address is None:
            return DispatchResult(DispatchOutcome.FAILED, self._record(claim.interaction_id))

        message = OutboundMessage(
            claim.interaction_uuid,
            request.channel,
            address,
            request.template_key,
            request.payload,
            request.reply_to_id,
        )
        try:
            receipt = provider.send(message)
        except (RateLimited, DailyLimitReached, KeyRefused) as exc:
            # Not the message's fault: it goes back unclaimed, and no attempt is spent.
            self._release(claim, exc.reason)
            raise self._pace.pushed_back(provider, request.channel, exc) from None
        except TransientProviderError as exc:
            self._pace.failed(provider, exc.reason)
            self._release(claim, exc.reason)
            raise TransientDispatchError(request.idempotency_key, exc.reason) from None
        except PermanentProviderError as exc:
            metrics.status_reached(InteractionStatus.FAILED, request.channel, provider.name)
            bounced = address if isinstance(exc, RecipientRefused) else None
            return self._failed(claim, exc.reason, request.channel, bounced, provider.name)
        except AmbiguousProviderError as exc:
            # The provider may have the message: keep the claim for reconciliation to settle.
            log.warning(
                "provider outcome unknown; claim held for reconciliation",
                extra={"idempotency_key": request.idempotency_key, "reason": exc.reason},
            )
            self._pace.failed(provider, exc.reason)
            return DispatchResult(DispatchOutcome.IN_FLIGHT, self._record(claim.interaction_id))
        self._pace.succeeded(provider, admission)
        return self._sent(claim, receipt, address)

    def _admit(self, provider: Provider, channel: ChannelType, batch_id: str | None) -> Admission:
        """The provider's slot for this send, once its batch (if any) lets it go.

        The batch's gate is read in the pace's own round trip where the provider is paced; a
        held or dropped message raises BatchHeld having booked nothing.
        """
        gates = self._batches
        if batch_id is None or gates is None:
            return self._pace.admit(provider, channel)
        admission = self._pace.admit(provider, channel, gates.pace_gate(batch_id))
        verdict = gates.verdict_after(batch_id, admission, self._clock())
        if verdict is not Verdict.GO:
            raise BatchHeld(batch_id, verdict)
        if admission.hold is Hold.GATED:
            # The gate had no copy in Redis; the database said go, and put the copy back.
            admission = self._pace.admit(provider, channel)
        return admission

    def _claim(
        self, request: DispatchRequest, recipient: str | None, now: datetime, lease: float
    ) -> tuple[Claim, str | None, str | None]:
        """The claim, and the address (or the one tried, and why it cannot be used)."""
        address: str | None = None
        failure: str | None = None
        check = request.channel in suppression.SUPPRESSIBLE
        claim: Claim | None = None
        engine = self._alone if recipient is not None else None
        alone = engine is not None
        if engine is not None:
            # The usual case (an address given, a new key) is one statement on its own; what
            # else may have happened (a taken key, a suppressed or refused address) is found
            # out in a session below.
            address, failure = self._resolve_recipient(None, request, recipient)
            if address is not None and failure is None:
                claim = claims.claim_new(engine, request, address, now, lease, check)
        if claim is None:
            with self._sessions() as session, session.begin():
                if not alone:
                    address, failure = self._resolve_recipient(session, request, recipient)
                if address is not None and failure is None:
                    if not alone:
                        claim = claims.claim_new(session, request, address, now, lease, check)
                    if claim is None:
                        failure = suppression.refusal(session, request.channel, address, now)
                if claim is None:
                    claim = claims.claim(session, request, address, failure, now, lease)
        return claim, address, failure

    def _validated(
        self,
        customer_id: CustomerId,
        channel: ChannelType | str,
        template_key: str,
        payload: dict[str, Any] | None,
        idempotency_key: str,
    ) -> DispatchRequest:
        return DispatchRequest(
            customer_id=validation.customer_id(customer_id),
            channel=validation.sent_channel(channel),
            template_key=validation.template_key(template_key),
            payload=validation.payload(payload, self._settings.max_payload_bytes),
            idempotency_key=validation.idempotency_key(idempotency_key),
            batch_id=None,
            reply_to_id=None,
        )

    def _resolve_recipient(
        self, session: Any, request: DispatchRequest, given: str | None
    ) -> tuple[str | None, str | None]:
        """The normalised address, or the address tried and why it cannot be used.

        A refused address is kept (sealed, like any recipient) so staff can read back to the
        caller exactly what was tried; the reason names the fault, never the address.
        """
        address = given
        if address is None:
            contact = session.get(Contact, request.customer_id)
            if request.channel is ChannelType.EMAIL:
                address = contact.email if contact else None
            elif request.channel is ChannelType.SMS:
                address = contact.phone if contact else None
            else:
                address = request.customer_id
            if not address:
                return None, f"no {request.channel.value} contact on file for the customer"
        try:
            normalised = validation.recipient(
                request.channel, address, self._settings.default_phone_region
            )
        except InvalidRecipient as exc:
            return address[:MAX_TRIED_CHARS], exc.message
        return normalised, None

    def _sent(self, claim: Claim, receipt: SendReceipt, address: str) -> DispatchResult:
        now = self._clock()
        columns = None
        if self._alone is not None:
            columns = claims.record_sent_first(self._alone, claim, receipt, now)
        if columns is not None:
            record = _sent_record(columns, address, receipt)
        else:
            with self._sessions() as session, session.begin():
                if self._alone is None:
                    columns = claims.record_sent_first(session, claim, receipt, now)
                if columns is not None:
                    record = _sent_record(columns, address, receipt)
                else:
                    row = claims.record_sent(session, claim, receipt, now)
                    record = InteractionRecord.of(row)
        metrics.status_reached(InteractionStatus.SENT, record.channel, receipt.provider)
        return DispatchResult(DispatchOutcome.SENT, record)

    def _failed(
        self,
        claim: Claim,
        reason: str,
        channel: ChannelType,
        bounced: str | None = None,
        source: str = claims.SOURCE,
    ) -> DispatchResult:
        """Record the attempt FAILED; a ``bounced`` address is suppressed in the same commit."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = claims.record_failed(session, claim, reason, now)
            if bounced is not None:
                suppression.suppress(
                    session,
                    channel,
                    validation.recipient_index(channel, bounced),
                    now,
                    self._settings.suppression_days,
                    reason=suppression.PERMANENT_FAILURE,
                    source=source,
                    interaction_uuid=claim.interaction_uuid,
                )
            record = InteractionRecord.of(row)
        return DispatchResult(DispatchOutcome.FAILED, record)

    def _release(self, claim: Claim, reason: str) -> None:
        with self._sessions() as session, session.begin():
            claims.release(session, claim, reason, self._clock())

    def _record(self, interaction_id: int) -> InteractionRecord:
        with self._sessions() as session:
            return InteractionRecord.of(session.get_one(CustomerInteraction, interaction_id))

    def find_by_recipient(
        self, channel: ChannelType | str, address: str, limit: int = 100
    ) -> list[InteractionRecord]:
        """Everything sent to ``address`` on ``channel``, newest first, found by its blind index."""
        parsed = validation.channel(channel)
        if not 1 <= limit <= self._settings.history_max_limit:
            raise InvalidInput("limit", f"must be from 1 to {self._settings.history_max_limit}")
        normalised = validation.recipient(parsed, address, self._settings.default_phone_region)
        digest = validation.recipient_index(parsed, normalised)
        table = CustomerInteraction
        with self._sessions() as session:
            rows = session.scalars(
                sa.select(table)
                .where(table.recipient_hash == digest, table.channel == parsed)
                .order_by(table.created_at.desc(), table.id.desc())
                .limit(limit)
            )
            return [InteractionRecord.of(row) for row in rows]

    def give_up(self, idempotency_key: str, reason: str) -> bool:
        """Mark a released attempt FAILED once its retries ran out."""
        with self._sessions() as session, session.begin():
            return claims.give_up(session, idempotency_key, reason, self._clock())

    def get_history(
        self,
        customer_id: CustomerId,
        limit: int = 50,
        *,
        cursor: str | None = None,
        channel: ChannelType | str | None = None,
        status: InteractionStatus | str | None = None,
        include_archived: bool = False,
    ) -> HistoryPage:
        """A customer's interactions, newest first, one keyset page at a time.

        The page iterates over its records and has a ``len()``; ``reversed(page)`` reads it
        oldest first, and ``page.next_cursor`` asks for the next (older) page.

        With ``include_archived`` the page also draws on the cold archive (slower: it reads
        the archived files that may hold the customer).
        """
        query = history.HistoryQuery.build(
            validation.customer_id(customer_id),
            limit,
            self._settings.history_max_limit,
            cursor,
            channel,
            status,
        )
        if include_archived:
            return history_with_archive(self._sessions, self._settings, query)
        with self._sessions() as session:
            return history.read_page(session, query)

    def update_status(
        self,
        provider_ref: str,
        status: InteractionStatus | str,
        *,
        provider: str | None = None,
        provider_event_id: str | None = None,
        occurred_at: datetime | None = None,
        reason: str | None = None,
        source: str = "provider",
        detail: dict[str, Any] | None = None,
        own_reference: str | None = None,
    ) -> StatusUpdate:
        """Apply a status event through the transition table; every event is recorded."""
        event = status_event(
            provider_ref, status, provider, provider_event_id, occurred_at, reason, source, detail
        )
        if own_reference:
            event = dataclasses.replace(event, own_reference=own_reference)
        return status_events.apply(self._sessions, event, self._clock())

    def add_note(
        self,
        customer_id: CustomerId,
        content: str,
        *,
        author: str = AUTHOR_NOT_GIVEN,
        occurred_at: datetime | None = None,
    ) -> InteractionRecord:
        """Record a phone call (or any manual notation) as it happened, with its author.

        The console and the API pass the signed-in identity as ``author``; a caller that
        names no one is recorded as ``AUTHOR_NOT_GIVEN``.
        """
        customer = validation.customer_id(customer_id)
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("content", "must be non-empty text")
        if "\x00" in content:
            raise InvalidInput("content", "must not contain NUL characters")
        if len(content) > self._settings.max_note_chars:
            raise InvalidInput(
                "content", f"must be at most {self._settings.max_note_chars} characters"
            )
        if (
            not isinstance(author, str)
            or not author.strip()
            or len(author) > 100
            or not validation.is_printable(author)
        ):
            raise InvalidInput("author", "must be 1-100 printable characters naming who made it")
        now = self._clock()
        when = occurred_at or now
        if when.tzinfo is None:
            raise InvalidInput("occurred_at", "must carry a time zone")
        with self._sessions() as session, session.begin():
            row = writes.add_note(session, customer, content, author.strip(), when, now, "staff")
            return InteractionRecord.of(row)

    def upsert_contact(self, customer_id: CustomerId, email: str | None, phone: str | None) -> None:
        """Put a customer's addresses in the contact directory, normalised.

        An address given as None is left as it was: correcting the email keeps the phone.
        """
        customer = validation.customer_id(customer_id)
        clean_email = validation.email_address(email) if email else None
        clean_phone = (
            validation.phone_number(phone, self._settings.default_phone_region) if phone else None
        )
        with self._sessions() as session, session.begin():
            contact = session.get(Contact, customer) or Contact(customer_id=customer)
            if clean_email is not None:
                contact.email = clean_email
            if clean_phone is not None:
                contact.phone = clean_phone
            contact.updated_at = self._clock()
            session.add(contact)


def _sent_record(columns: dict[str, Any], address: str, receipt: SendReceipt) -> InteractionRecord:
    """The record of a SENT row from the columns its update returned and what was sent.

    The sealed values are the ones just sent; a body or subject the receipt did not bring is
    an earlier attempt's, opened from what is stored.
    """
    stored_body, stored_subject = columns.pop("body_content"), columns.pop("subject")
    return InteractionRecord(
        **columns,
        recipient=address,
        body_content=_given_or_stored(receipt.body, stored_body, "interactions.body_content"),
        subject=_given_or_stored(receipt.subject, stored_subject, "interactions.subject"),
    )


def _given_or_stored(given: str | None, stored: str | None, purpose: str) -> str | None:
    if given is not None or stored is None:
        return given
    return keyring().open(stored, purpose)


def status_event(
    provider_ref: str,
    requested: InteractionStatus | str,
    provider: str | None,
    provider_event_id: str | None,
    occurred_at: datetime | None,
    reason: str | None,
    source: str,
    detail: dict[str, Any] | None,
) -> status_events.StatusEvent:
    """A validated status event."""
    if not isinstance(provider_ref, str) or not provider_ref or len(provider_ref) > 255:
        raise InvalidInput("provider_ref", "must be 1-255 characters")
    try:
        parsed = parse_status(requested)
    except ValueError as exc:
        raise InvalidInput("status", str(exc)) from None
    return status_events.StatusEvent(
        reference=provider_ref,
        status=parsed,
        provider=provider,
        provider_event_id=provider_event_id,
        occurred_at=occurred_at,
        reason=reason,
        source=source,
        detail=detail,
    )
