"""dispatch(): claim, send, record, on PostgreSQL and the embedded SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models import CustomerInteraction, InteractionEvent
from models.enums import EventKind, InteractionStatus
from providers.base import OutboundMessage, SendReceipt
from providers.registry import ProviderRegistry
from services.errors import TransientDispatchError
from services.records import DispatchOutcome, InteractionRecord
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email, unique_key
from tests.fakes import FakeProvider


def _events(db: Database, interaction_id: int) -> list[InteractionEvent]:
    with db.sessions() as session:
        return list(
            session.scalars(
                sa.select(InteractionEvent)
                .where(InteractionEvent.interaction_id == interaction_id)
                .order_by(InteractionEvent.id)
            )
        )


def test_the_rfc_example_twice_calls_the_provider_once(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    def rfc_example() -> object:
        return service.dispatch(
            customer_id="101",
            channel="email",
            template_key="monthly_statement",
            payload={"name": "Ada", "amount": "12.50"},
            idempotency_key="batch_66_user_101",
            recipient="ada@example.org",
        )

    first = rfc_example()
    second = rfc_example()
    assert provider.call_count == 1
    assert first.outcome is DispatchOutcome.SENT  # type: ignore[attr-defined]
    assert second.outcome is DispatchOutcome.ALREADY_SENT  # type: ignore[attr-defined]
    assert db.counts()["interactions"] == 1
    assert db.counts()["interaction_events"] <= 2
    assert first.interaction.id == second.interaction.id  # type: ignore[attr-defined]


def test_a_sent_interaction_records_the_provider_and_our_reference(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    result = send_email(service)
    record = result.interaction
    assert record.status is InteractionStatus.SENT
    assert record.provider == "fake"
    assert record.provider_reference and record.provider_reference.startswith("fake-")
    assert record.sent_at is not None
    assert provider.sent[0].reference == str(record.interaction_uuid)
    with db.sessions() as session:
        row = session.get_one(CustomerInteraction, record.id)
        assert row.notify_reference == str(record.interaction_uuid)
        assert row.claim_expires_at is None
        assert row.meta_data == {"payload": {"name": "Ada"}}
    kinds = [(e.kind, e.to_status) for e in _events(db, record.id)]
    assert kinds == [
        (EventKind.ATTEMPT_STARTED, InteractionStatus.PENDING),
        (EventKind.STATUS_CHANGED, InteractionStatus.SENT),
    ]


def test_failed_then_dispatched_again_is_a_new_attempt_on_the_same_row(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    key = unique_key()
    provider.fail_next(provider.permanent("recipient rejected by provider"))
    failed = send_email(service, key=key)
    assert failed.outcome is DispatchOutcome.FAILED
    assert failed.interaction.failure_reason == "recipient rejected by provider"

    retried = send_email(service, key=key, recipient="corrected@example.org")
    assert retried.outcome is DispatchOutcome.SENT
    assert retried.interaction.id == failed.interaction.id
    assert retried.interaction.attempt_count == 2
    assert retried.interaction.failure_reason is None
    assert provider.call_count == 2
    assert db.counts()["interactions"] == 1
    history = [(e.kind, e.attempt, e.to_status) for e in _events(db, failed.interaction.id)]
    assert history == [
        (EventKind.ATTEMPT_STARTED, 1, InteractionStatus.PENDING),
        (EventKind.STATUS_CHANGED, 1, InteractionStatus.FAILED),
        (EventKind.ATTEMPT_STARTED, 2, InteractionStatus.PENDING),
        (EventKind.STATUS_CHANGED, 2, InteractionStatus.SENT),
    ]


def test_a_transient_error_releases_the_claim_for_a_retry(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    key = unique_key()
    provider.fail_next(provider.transient("provider answered 503"))
    with pytest.raises(TransientDispatchError) as caught:
        send_email(service, key=key)
    assert caught.value.reason == "provider answered 503"
    with db.sessions() as session:
        row = session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.idempotency_key == key)
        ).one()
        assert row.status is InteractionStatus.PENDING
        assert row.claim_expires_at is None
    retried = send_email(service, key=key)
    assert retried.outcome is DispatchOutcome.SENT
    assert retried.interaction.attempt_count == 2


def test_retries_that_run_out_end_failed_with_the_reason(
    service: CommunicationService, provider: FakeProvider
) -> None:
    key = unique_key()
    provider.fail_next(provider.transient("provider answered 429"))
    with pytest.raises(TransientDispatchError):
        send_email(service, key=key)
    assert service.give_up(key, "gave up after retries: provider answered 429")
    page = service.get_history("C-1", 10)
    assert page.items[0].status is InteractionStatus.FAILED
    assert page.items[0].failure_reason == "gave up after retries: provider answered 429"
    assert not service.give_up(key, "again")


def test_a_live_claim_belongs_to_its_worker(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    key = unique_key()
    # A worker that died after claiming leaves a PENDING row with a live lease.
    provider.fail_next(RuntimeError("worker died mid-call"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        send_email(service, key=key)
    again = send_email(service, key=key)
    assert again.outcome is DispatchOutcome.IN_FLIGHT
    assert again.interaction.status is InteractionStatus.PENDING
    assert provider.call_count == 1


def test_the_contact_directory_supplies_missing_recipients(
    service: CommunicationService, provider: FakeProvider
) -> None:
    service.upsert_contact("C-7", "Grace@Example.ORG", "613 555 0101")
    email = send_email(service, customer_id="C-7", recipient=None)
    sms = service.dispatch("C-7", "sms", "reminder", {}, unique_key())
    assert email.outcome is sms.outcome is DispatchOutcome.SENT
    assert [m.recipient for m in provider.sent] == ["Grace@example.org", "+16135550101"]


def test_giving_one_address_keeps_the_other(
    service: CommunicationService, provider: FakeProvider
) -> None:
    service.upsert_contact("C-8", "ada@example.org", "613 555 0102")
    service.upsert_contact("C-8", "ada.l@example.org", None)
    service.dispatch("C-8", "sms", "reminder", {}, unique_key())
    send_email(service, customer_id="C-8", recipient=None)
    assert [m.recipient for m in provider.sent] == ["+16135550102", "ada.l@example.org"]


def test_a_customer_with_no_contact_is_recorded_failed(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    result = send_email(service, customer_id="C-404", recipient=None)
    assert result.outcome is DispatchOutcome.FAILED
    assert result.interaction.failure_reason == "no email contact on file for the customer"
    assert provider.call_count == 0
    assert db.counts()["interactions"] == 1


def test_an_invalid_address_is_recorded_failed_without_echoing_it(
    service: CommunicationService, provider: FakeProvider
) -> None:
    result = send_email(service, recipient="someone-at-example.org")
    assert result.outcome is DispatchOutcome.FAILED
    assert result.interaction.failure_reason
    assert "someone" not in result.interaction.failure_reason
    assert provider.call_count == 0


class _CallbackFirst(FakeProvider):
    """Delivers the message and reports it delivered before the send returns."""

    service: CommunicationService

    def send(self, message: OutboundMessage) -> SendReceipt:
        receipt = super().send(message)
        self.service.update_status(
            receipt.provider_reference, "delivered", own_reference=message.reference
        )
        return receipt


def test_the_record_a_dispatch_returns_is_the_row_as_stored(
    db: Database, test_settings: Settings
) -> None:
    service = CommunicationService(
        db.sessions,
        ProviderRegistry.single(FakeProvider(body="Dear Ada", subject="Your letter")),
        test_settings,
    )
    result = send_email(service)
    with db.sessions() as session:
        stored = InteractionRecord.of(session.get_one(CustomerInteraction, result.interaction.id))
    assert result.interaction == stored
    assert stored.body_content == "Dear Ada"
    assert stored.subject == "Your letter"
    assert stored.recipient == "person@example.org"


def test_a_receipt_that_beats_the_sent_record_is_kept(
    db: Database, test_settings: Settings
) -> None:
    provider = _CallbackFirst()
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
    provider.service = service
    result = send_email(service)
    record = result.interaction
    assert record.status is InteractionStatus.DELIVERED
    assert record.sent_at is not None
    assert record.provider_reference and record.provider_reference.startswith("fake-")
    kinds = [(e.kind, e.from_status, e.to_status) for e in _events(db, record.id)]
    assert kinds[0] == (EventKind.ATTEMPT_STARTED, None, InteractionStatus.PENDING)
    assert (EventKind.STATUS_CHANGED, InteractionStatus.DELIVERED, InteractionStatus.SENT) in kinds
    assert provider.call_count == 1
