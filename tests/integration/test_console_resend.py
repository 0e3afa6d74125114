"""Correcting an address and resending from the console, on PostgreSQL.

The enqueue is captured at the publisher boundary and then run through the dispatch service
as the task would, so the tests see which address the new attempt really went to.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from models.enums import EventKind, InteractionStatus
from models.event import InteractionEvent
from providers.registry import ProviderRegistry
from services.records import InteractionRecord
from services.sending.communication import CommunicationService
from services.support.service import SupportService
from tests.conftest import Database
from tests.console_fixtures import CapturedQueue, console_settings, sign_in
from tests.factories import send_email
from tests.fakes import FakeProvider
from workers.console import create_app

CUSTOMER = "C-RESEND-1"
OLD = "old.address@example.org"
NEW = "New.Address@Example.org"


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def service(
    pg_db: Database, test_settings: Settings, provider: FakeProvider
) -> CommunicationService:
    return CommunicationService(pg_db.sessions, ProviderRegistry.single(provider), test_settings)


@pytest.fixture
def queue() -> CapturedQueue:
    return CapturedQueue()


@pytest.fixture
def app(pg_db: Database, test_settings: Settings, queue: CapturedQueue) -> Flask:
    return create_app(console_settings(test_settings), sessions=pg_db.sessions, publisher=queue)


def _failed_email(service: CommunicationService, provider: FakeProvider) -> InteractionRecord:
    service.upsert_contact(CUSTOMER, OLD, "+1 613 555 0100")
    provider.fail_next(provider.permanent("the address bounced"))
    result = service.dispatch(
        CUSTOMER, "email", "welcome", {"name": "Ada"}, f"b1:{CUSTOMER}", None, batch_id="b1"
    )
    assert result.interaction.status is InteractionStatus.FAILED
    return result.interaction


def _resend(
    client: FlaskClient, token: str, record: InteractionRecord, **form: str
) -> tuple[int, str, str]:
    answer = client.post(
        f"/customers/{record.customer_id}/interactions/{record.interaction_uuid}/resend",
        data={**form, "csrf_token": token},
    )
    return answer.status_code, answer.location or "", answer.get_data(as_text=True)


def _staff_events(db: Database, interaction_id: int) -> list[InteractionEvent]:
    with db.sessions() as session:
        return list(
            session.scalars(
                sa.select(InteractionEvent)
                .where(
                    InteractionEvent.interaction_id == interaction_id,
                    InteractionEvent.kind == EventKind.STAFF_ACTION,
                )
                .order_by(InteractionEvent.id)
            )
        )


def test_a_viewer_cannot_resend(
    app: Flask,
    service: CommunicationService,
    provider: FakeProvider,
    queue: CapturedQueue,
    pg_db: Database,
    test_settings: Settings,
) -> None:
    failed = _failed_email(service, provider)
    client, token = sign_in(app, "v.iewer")
    status, _, page = _resend(client, token, failed, address=NEW)
    assert status == 403 and "Ask for the resender role" in page
    assert queue.messages == [] and _staff_events(pg_db, failed.id) == []
    assert SupportService(pg_db.sessions, queue, test_settings).contact(CUSTOMER).email == OLD


def test_correcting_a_failed_email_updates_the_directory_and_the_new_attempt_uses_it(
    app: Flask,
    service: CommunicationService,
    provider: FakeProvider,
    queue: CapturedQueue,
    pg_db: Database,
    test_settings: Settings,
) -> None:
    failed = _failed_email(service, provider)
    client, token = sign_in(app, "r.esender")
    form = client.get(f"/customers/{CUSTOMER}/interactions/{failed.interaction_uuid}")
    assert f'value="{OLD}"' in form.get_data(as_text=True), "the form offers the address on file"

    status, location, _ = _resend(client, token, failed, address=NEW)
    assert (status, location) == (303, f"/customers/{CUSTOMER}")
    page = client.get(location).get_data(as_text=True)
    assert "Resend queued: a new attempt on this message." in page
    again = client.get(f"/customers/{CUSTOMER}/interactions/{failed.interaction_uuid}")
    assert "queued or in flight" in again.get_data(as_text=True)
    assert 'name="address"' not in again.get_data(as_text=True), "the form is not offered again"
    status, _, page = _resend(client, token, failed, address=NEW)
    assert status == 409 and "a resend of this message is already queued" in page
    support = SupportService(pg_db.sessions, queue, test_settings)
    assert (support.contact(CUSTOMER).email or "").lower() == NEW.lower()
    [message] = queue.messages
    assert message.idempotency_key == failed.idempotency_key
    assert (message.template_key, message.payload, message.batch_id) == (
        "welcome",
        {"name": "Ada"},
        "b1",
    )
    assert message.recipient is None, "the address travels through the directory, not the queue"
    [event] = _staff_events(pg_db, failed.id)
    assert (event.actor, event.outcome, event.source, event.from_status, event.to_status) == (
        "r.esender",
        "resend_requested",
        "console",
        InteractionStatus.FAILED,
        InteractionStatus.PENDING,
    )
    assert event.detail == {"resend_key": failed.idempotency_key, "contact_updated": True}
    with pg_db.sessions() as session:
        raw = session.execute(
            sa.text("SELECT CAST(detail AS TEXT) FROM interaction_events WHERE id = :id"),
            {"id": event.id},
        ).scalar_one()
        sealed = session.execute(
            sa.text("SELECT email FROM contacts WHERE customer_id = :c"), {"c": CUSTOMER}
        ).scalar_one()
    assert "example.org" not in raw.lower() and "example.org" not in sealed.lower()

    # What the dispatch task does with the message: a new attempt on the same row.
    result = service.dispatch(**message.as_kwargs())
    assert result.interaction.id == failed.id
    assert (result.interaction.status, result.interaction.attempt_count) == (
        InteractionStatus.SENT,
        2,
    )
    assert provider.sent[-1].recipient.lower() == NEW.lower()
    history = client.get(f"/customers/{CUSTOMER}/interactions/{failed.interaction_uuid}")
    text = history.get_data(as_text=True)
    assert "resend requested" in text and "by r.esender" in text and "attempt 2" in text


def test_a_resend_without_a_change_keeps_the_directory_and_without_any_address_is_refused(
    app: Flask,
    service: CommunicationService,
    queue: CapturedQueue,
    pg_db: Database,
) -> None:
    nowhere = service.dispatch("C-NOWHERE", "email", "welcome", {}, "k-nowhere", None).interaction
    assert nowhere.failure_reason == "no email contact on file for the customer"
    client, token = sign_in(app, "r.esender")
    status, _, page = _resend(client, token, nowhere)
    assert status == 400 and "no email address is on file: give one" in page
    status, _, page = _resend(client, token, nowhere, address="not an address")
    problem = page.split('role="alert"')[1].split("</div>")[0]
    assert status == 400 and "There is a problem" in problem and "not an address" not in problem
    assert 'value="not an address"' in page, "the form keeps what was typed, to correct it"
    assert queue.messages == [] and _staff_events(pg_db, nowhere.id) == []

    service.upsert_contact("C-NOWHERE", "here@example.org", None)
    assert _resend(client, token, nowhere)[0] == 303
    [event] = _staff_events(pg_db, nowhere.id)
    assert event.detail == {"resend_key": "k-nowhere", "contact_updated": False}


def test_a_delivered_email_is_resent_only_with_a_reason_as_a_new_linked_message(
    app: Flask,
    service: CommunicationService,
    queue: CapturedQueue,
    pg_db: Database,
) -> None:
    service.upsert_contact(CUSTOMER, OLD, None)
    sent = send_email(service, customer_id=CUSTOMER, recipient=None).interaction
    service.update_status(sent.provider_reference or "", "delivered")
    client, token = sign_in(app, "r.esender")

    status, _, page = _resend(client, token, sent)
    assert status == 400 and "already delivered: say why it must be sent again" in page
    assert queue.messages == [] and _staff_events(pg_db, sent.id) == []

    reason = "Customer deleted it by mistake"
    page_url = f"/customers/{CUSTOMER}/interactions/{sent.interaction_uuid}"
    assert 'name="seen_resends" value="0"' in client.get(page_url).get_data(as_text=True)
    assert _resend(client, token, sent, reason=reason, seen_resends="0")[0] == 303
    status, _, page = _resend(client, token, sent, reason=reason, seen_resends="0")
    assert status == 409 and "sent again after the page was shown: reload the page" in page
    assert _resend(client, token, sent, reason=reason)[0] == 409, "a form without the count"
    assert [m.idempotency_key for m in queue.messages] == [f"resend:{sent.interaction_uuid}:1"]
    # Reloaded, the page shows one resend; sending again on purpose makes the second.
    assert 'name="seen_resends" value="1"' in client.get(page_url).get_data(as_text=True)
    assert _resend(client, token, sent, reason=reason, seen_resends="1")[0] == 303
    assert queue.messages[-1].idempotency_key == f"resend:{sent.interaction_uuid}:2"
    assert len(queue.messages) == 2
    assert queue.messages[-1].batch_id is None and queue.messages[-1].recipient is None
    events = _staff_events(pg_db, sent.id)
    assert [(e.outcome, e.actor, e.from_status) for e in events] == [
        ("forced_resend", "r.esender", InteractionStatus.DELIVERED)
    ] * 2
    assert events[0].detail == {
        "resend_key": f"resend:{sent.interaction_uuid}:1",
        "contact_updated": False,
    }
    assert events[0].reason == reason
    with pg_db.sessions() as session:
        detail, sealed = session.execute(
            sa.text("SELECT CAST(detail AS TEXT), reason FROM interaction_events WHERE id = :id"),
            {"id": events[0].id},
        ).one()
    assert "mistake" not in detail and sealed.startswith("v1:") and "mistake" not in sealed
    assert service.get_history(CUSTOMER).items[0].status is InteractionStatus.DELIVERED

    linked = service.dispatch(**queue.messages[0].as_kwargs())
    assert linked.interaction.id != sent.id and linked.status is InteractionStatus.SENT
    page = client.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert f'/interactions/{sent.interaction_uuid}">the earlier message' in page
    detail = client.get(f"/customers/{CUSTOMER}/interactions/{sent.interaction_uuid}")
    assert f"reason: {reason}" in detail.get_data(as_text=True)


def test_an_attempt_in_flight_or_a_phone_note_cannot_be_resent(
    app: Flask, service: CommunicationService, queue: CapturedQueue, pg_db: Database
) -> None:
    note = service.add_note(CUSTOMER, "called", author="agent")
    client, token = sign_in(app, "r.esender")
    status, _, page = _resend(client, token, note, reason="why not")
    assert status == 400 and "only an email or an SMS can be sent again" in page
    with pg_db.sessions() as session, session.begin():
        session.execute(
            sa.text(
                "INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key,"
                " channel, status, attempt_count, template_key, created_at, updated_at,"
                " claim_expires_at) VALUES (gen_random_uuid(), :c, 'k-flight', 'email',"
                " 'pending', 1, 'welcome', now(), now(), now() + interval '5 minutes')"
            ),
            {"c": CUSTOMER},
        )
    pending = next(
        r for r in service.get_history(CUSTOMER).items if r.idempotency_key == "k-flight"
    )
    status, _, page = _resend(client, token, pending, address="a@example.org", reason="x")
    assert status == 409 and "an attempt is in flight" in page
    assert queue.messages == []


def test_a_broker_failure_is_reported_and_the_request_stays_in_the_history(
    app: Flask,
    service: CommunicationService,
    provider: FakeProvider,
    queue: CapturedQueue,
    pg_db: Database,
) -> None:
    failed = _failed_email(service, provider)
    queue.broken = True
    client, token = sign_in(app, "r.esender")
    status, _, page = _resend(client, token, failed, address=NEW)
    assert status == 503 and "could not be queued. Try again." in page
    events = _staff_events(pg_db, failed.id)
    assert [(e.outcome, e.from_status, e.to_status) for e in events] == [
        ("resend_requested", InteractionStatus.FAILED, InteractionStatus.PENDING),
        ("resend_not_queued", InteractionStatus.PENDING, InteractionStatus.FAILED),
    ]
    assert service.get_history(CUSTOMER).items[0].status is InteractionStatus.FAILED
    queue.broken = False
    assert _resend(client, token, failed, address=NEW)[0] == 303, "trying again works"
    assert [m.idempotency_key for m in queue.messages] == [failed.idempotency_key]
