"""Accepting one message over the API: recorded PENDING at once, sent later by the workers.

The caller is answered with the interaction's uuid before anything is sent, so the row is
written first, PENDING and unclaimed (``writes.accept``), and one ``tasks.dispatch`` is
published after the commit. The dispatch's claim takes the row over as attempt 1. Should the
publish fail, the row is still there: reconciliation enqueues a released row nobody picked up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from config.settings import Settings
from models.base import utcnow
from models.enums import ChannelType, InteractionStatus
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from providers.base import TemplateProblem
from services.errors import InvalidInput
from services.ledger import writes
from services.sending import validation
from services.sending.batches import DispatchMessage, Publisher, TemplateCheck

log = logging.getLogger(__name__)
SOURCE = "api"


class KeyReused(Exception):
    """The idempotency key was used before for another customer or channel."""


@dataclass(frozen=True)
class Accepted:
    """The interaction a message is, and whether this request created it."""

    interaction_uuid: uuid.UUID
    idempotency_key: str
    customer_id: str
    channel: ChannelType
    status: InteractionStatus
    created: bool


class Acceptance:
    """Records a message for the workers to send and hands it to them."""

    def __init__(
        self,
        sessions: SessionFactory,
        publisher: Publisher,
        settings: Settings,
        templates: TemplateCheck | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._settings = settings
        self._templates = templates
        self._clock = clock

    def accept(
        self,
        customer_id: str,
        channel: str,
        template_key: str,
        payload: dict[str, Any] | None,
        idempotency_key: str,
        recipient: str | None,
        client: str,
    ) -> Accepted:
        """The interaction for ``idempotency_key``, created and queued unless it already exists."""
        message = self._validated(
            customer_id, channel, template_key, payload, idempotency_key, recipient
        )
        parsed = ChannelType(message.channel)
        attempt = writes.Attempt(
            recipient=message.recipient,
            recipient_hash=(
                validation.recipient_index(parsed, message.recipient) if message.recipient else None
            ),
            template_key=message.template_key,
            batch_id=None,
            payload=message.payload,
            failure=None,
            lease_seconds=0,
        )
        new_uuid = uuid.uuid4()
        entry = writes.Entry(SOURCE, actor=client)
        with self._sessions() as session, session.begin():
            inserted = writes.accept(
                session,
                new_uuid,
                message.customer_id,
                message.idempotency_key,
                parsed,
                attempt,
                self._clock(),
                entry,
            )
            if inserted is None:
                return self._existing(session, message)
        self._hand_over(message)
        return Accepted(
            new_uuid,
            message.idempotency_key,
            message.customer_id,
            parsed,
            InteractionStatus.PENDING,
            True,
        )

    def _validated(
        self,
        customer_id: str,
        channel: str,
        template_key: str,
        payload: dict[str, Any] | None,
        idempotency_key: str,
        recipient: str | None,
    ) -> DispatchMessage:
        """The message as the dispatch will take it; InvalidInput names the field at fault."""
        parsed = validation.sent_channel(channel)
        template = validation.template_key(template_key)
        checked_payload = validation.payload(payload, self._settings.max_payload_bytes)
        address = (
            validation.recipient(parsed, recipient, self._settings.default_phone_region)
            if recipient is not None
            else None
        )
        if self._templates is not None:
            try:
                self._templates(parsed, template, set(checked_payload))
            except TemplateProblem as exc:
                raise InvalidInput("template_key", str(exc)) from None
        return DispatchMessage(
            idempotency_key=validation.idempotency_key(idempotency_key),
            customer_id=validation.customer_id(customer_id),
            channel=parsed.value,
            template_key=template,
            payload=checked_payload,
            recipient=address,
            batch_id=None,
        )

    def _existing(self, session: Any, message: DispatchMessage) -> Accepted:
        """The interaction the key already names; KeyReused if it is another customer's."""
        table = CustomerInteraction
        row = session.execute(
            sa.select(table.interaction_uuid, table.customer_id, table.channel, table.status).where(
                table.idempotency_key == message.idempotency_key
            )
        ).one()
        if row.customer_id != message.customer_id or row.channel.value != message.channel:
            raise KeyReused
        return Accepted(
            row.interaction_uuid,
            message.idempotency_key,
            row.customer_id,
            row.channel,
            row.status,
            False,
        )

    def _hand_over(self, message: DispatchMessage) -> None:
        """Publish the dispatch; a failure is left to reconciliation, which finds the row."""
        try:
            self._publisher.publish([message])
        except Exception as exc:  # the broker's own errors vary by transport
            log.warning(
                "accepted message not queued; reconciliation will enqueue it: %s",
                type(exc).__name__,
                extra={"idempotency_key": message.idempotency_key},
            )
