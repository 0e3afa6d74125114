"""Applying callbacks: before the SENT commit, orphans matched later, polling for silence."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from config.settings import Settings
from models import Batch, CustomerInteraction, InboundEvent, InteractionEvent
from models.base import utcnow
from models.enums import InteractionStatus
from providers.base import LookupResult, OutboundMessage, SendReceipt
from providers.registry import ProviderRegistry
from services.callbacks import inbox
from services.callbacks.parsing import parse_notify
from services.ledger.transitions import Outcome
from services.sending.batch_status import batch_status
from services.sending.communication import CommunicationService
from services.sending.polling import Poller
from services.sending.reconciliation import Reconciler
from tests.conftest import Database
from tests.factories import send_email
from tests.fakes import FakeProvider
from tests.webhook_fixtures import notify_receipt


def _store(db: Database, body: bytes) -> int:
    return inbox.store(db.sessions, "notify", parse_notify(body), body, utcnow()).inbound_id


class CallbackFirstProvider(FakeProvider):
    """A provider whose delivery receipt arrives, and is applied, before send() returns."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    def send(self, message: OutboundMessage) -> SendReceipt:
        body = notify_receipt("N-early", message.reference)
        outcome = inbox.apply(self.db.sessions, _store(self.db, body), final=False, now=utcnow())
        assert outcome is Outcome.APPLIED
        return SendReceipt(provider="fake", provider_reference="N-early")


def test_a_callback_that_beats_the_sent_commit_is_applied_not_lost(
    db: Database, test_settings: Settings
) -> None:
    provider = CallbackFirstProvider(db)
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
    result = send_email(service)
    record = result.interaction
    assert record.status is InteractionStatus.DELIVERED
    assert record.provider_reference == "N-early"
    assert record.sent_at is not None and record.delivered_at is not None


def test_an_unknown_reference_waits_then_becomes_an_orphan_then_is_matched(
    db: Database, test_settings: Settings
) -> None:
    inbound_id = _store(db, notify_receipt("N-later", str(uuid.uuid4())))
    assert (
        inbox.apply(db.sessions, inbound_id, final=False, now=utcnow()) is Outcome.UNKNOWN_REFERENCE
    )
    with db.sessions() as session:
        assert session.get_one(InboundEvent, inbound_id).state.value == "received"
        assert session.scalar(sa.select(sa.func.count()).select_from(InteractionEvent)) == 0
    assert (
        inbox.apply(db.sessions, inbound_id, final=True, now=utcnow()) is Outcome.UNKNOWN_REFERENCE
    )
    with db.sessions() as session:
        assert session.get_one(InboundEvent, inbound_id).state.value == "orphan"
        orphans = session.scalars(
            sa.select(InteractionEvent).where(InteractionEvent.interaction_id.is_(None))
        ).all()
    assert [(o.reference, o.outcome) for o in orphans] == [("N-later", "unknown_reference")]

    class Later(FakeProvider):
        def send(self, message: OutboundMessage) -> SendReceipt:
            super().send(message)
            return SendReceipt(provider="fake", provider_reference="N-later")

    service = CommunicationService(db.sessions, ProviderRegistry.single(Later()), test_settings)
    send_email(service)
    later = utcnow() + timedelta(seconds=test_settings.status_retry_window_seconds + 120)
    reconciler = Reconciler(
        db.sessions,
        ProviderRegistry.single(FakeProvider()),
        _NoPublisher(),
        test_settings,
        lambda: later,
    )
    assert reconciler.run().callbacks_matched == 1
    assert service.get_history("C-1", 1).items[0].status is InteractionStatus.DELIVERED
    with db.sessions() as session:
        assert session.get_one(InboundEvent, inbound_id).state.value == "applied"


class _NoPublisher:
    def publish(self, messages: object) -> None:
        raise AssertionError("nothing should be re-enqueued here")


class ReportingProvider(FakeProvider):
    """Answers lookups with a status, as Notify's API does."""

    def __init__(self, statuses: dict[str, InteractionStatus | None]) -> None:
        super().__init__()
        self.statuses = statuses

    def lookup(self, reference: str) -> LookupResult:
        status = self.statuses.get(reference)
        return LookupResult(found=status is not None, provider_reference=None, status=status)


def test_polling_asks_about_silent_interactions_and_marks_the_hopeless_unknown(
    db: Database, test_settings: Settings
) -> None:
    provider = ReportingProvider({})
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
    answered = send_email(service, customer_id="C-1", key="b:C-1").interaction
    silent = send_email(service, customer_id="C-2", key="b:C-2").interaction
    fresh = send_email(service, customer_id="C-3", key="b:C-3").interaction
    with db.sessions() as session, session.begin():
        for interaction, hours in ((answered, 7), (silent, 73), (fresh, 1)):
            session.execute(
                sa.update(CustomerInteraction)
                .where(CustomerInteraction.id == interaction.id)
                .values(sent_at=utcnow() - timedelta(hours=hours), batch_id="b")
            )
        session.add(Batch(id="b", channel="email", template_key="welcome", enqueued=3))
    provider.statuses[str(answered.interaction_uuid)] = InteractionStatus.DELIVERED
    report = Poller(db.sessions, ProviderRegistry.single(provider), test_settings, utcnow).run()
    assert (report.asked, report.updated, report.marked_unknown) == (2, 1, 1)
    statuses = {
        r.customer_id: (r.status, r.interaction_uuid) for r in service.get_history("C-1", 5).items
    }
    assert statuses["C-1"][0] is InteractionStatus.DELIVERED
    status = batch_status(db.sessions, "b", utcnow())
    assert status.outcome_unknown == 1
    again = Poller(db.sessions, ProviderRegistry.single(provider), test_settings, utcnow).run()
    assert again.marked_unknown == 0 and again.asked == 0
