"""The console answers a call on one screen: where a message went, what it said, when, which
batch; a rejected address read back exactly; no note on a customer who does not exist
without a yes; a search by address that finds the contact directory too."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flask import Flask

from config.settings import Settings, get_settings
from models.batch import Batch, BatchAction, BatchState
from models.disclosure import StaffDisclosure
from models.enums import ChannelType
from models.interaction import CustomerInteraction
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService
from tasks.dispatch import dispatch
from tests.conftest import PG_URL, Database
from tests.console_fixtures import CapturedQueue, console_settings, sign_in
from tests.fakes import FakeProvider
from workers.console import create_app

CUSTOMER = "C-CALL-1"
ADDRESS = "ada.lovelace@example.org"
TYPO = "ada.lovelace@exampleorg"
PHONE = "+16045550123"
SUBJECT = "Your benefit statement is ready"
BODY = "Hello Ada,\n\nYour statement for November is ready to read in your account. " * 3


@pytest.fixture
def service(pg_db: Database, test_settings: Settings) -> CommunicationService:
    return CommunicationService(
        pg_db.sessions,
        ProviderRegistry.single(FakeProvider(body=BODY, subject=SUBJECT)),
        test_settings,
    )


@pytest.fixture
def app(pg_db: Database, test_settings: Settings) -> Flask:
    settings = console_settings(test_settings, console_time_zone="America/Vancouver")
    return create_app(settings, sessions=pg_db.sessions, publisher=CapturedQueue())


def _sent(service: CommunicationService, key: str, batch: str | None = None) -> uuid.UUID:
    result = service.dispatch(
        CUSTOMER, "email", "welcome", {"name": "Ada"}, key, ADDRESS, batch_id=batch
    )
    assert result.status.value == "sent"
    return result.interaction.interaction_uuid


def _disclosures(pg_db: Database) -> list[StaffDisclosure]:
    with pg_db.sessions() as session:
        return list(session.scalars(sa.select(StaffDisclosure).order_by(StaffDisclosure.id)))


def test_a_card_shows_where_and_what_to_an_agent_and_records_that_it_did(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    sent = _sent(service, "card-1")
    agent, _ = sign_in(app, "a.gent")
    page = agent.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert ADDRESS in page and SUBJECT in page
    assert "Hello Ada, Your statement for November" in page  # the preview, on one line
    assert BODY.strip() not in page  # the whole body is on the message's own page
    [seen] = _disclosures(pg_db)
    assert (seen.actor, seen.customer_id, seen.page) == ("a.gent", CUSTOMER, "timeline")
    assert seen.shown == ["address", "body", "subject"] and seen.interactions == [str(sent)]


def test_a_viewer_sees_the_address_masked_no_content_and_nothing_is_recorded(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    sent = _sent(service, "card-2")
    service.upsert_contact(CUSTOMER, ADDRESS, PHONE)
    viewer, _ = sign_in(app, "v.iewer")
    page = viewer.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert "a••••@example.org" in page and "•••• ••• 0123" in page
    assert ADDRESS not in page and PHONE not in page and "6045550123" not in page
    assert SUBJECT not in page and "Your statement" not in page
    detail = viewer.get(f"/customers/{CUSTOMER}/interactions/{sent}").get_data(as_text=True)
    assert "shown to agents and resenders only" in detail
    assert ADDRESS not in detail and "Your statement" not in detail
    assert _disclosures(pg_db) == []


@pytest.mark.parametrize("role", ["a.gent", "r.esender"])
def test_the_message_page_shows_the_whole_body_to_agents_and_resenders(
    app: Flask, service: CommunicationService, pg_db: Database, role: str
) -> None:
    sent = _sent(service, f"body-{role}")
    client, _ = sign_in(app, role)
    detail = client.get(f"/customers/{CUSTOMER}/interactions/{sent}").get_data(as_text=True)
    assert "What it said" in detail and BODY.strip().replace("\n", "") in detail.replace("\n", "")
    assert SUBJECT in detail and ADDRESS in detail
    [seen] = _disclosures(pg_db)
    assert seen.page == "interaction" and "body" in seen.shown and seen.actor == role


def test_times_are_shown_in_the_configured_zone_with_utc_beside_them(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    moments = {
        "times-1": datetime(2026, 12, 5, 6, 30, tzinfo=UTC),  # 22:30 the day before, PST
        "times-2": datetime(2026, 7, 15, 19, 0, tzinfo=UTC),  # noon in summer, PDT
        # 1 November 2026: clocks go back at 02:00 PDT, so 01:30 comes twice, an hour apart.
        "times-3": datetime(2026, 11, 1, 8, 30, tzinfo=UTC),  # 01:30 PDT
        "times-4": datetime(2026, 11, 1, 9, 30, tzinfo=UTC),  # 01:30 PST
    }
    for key, moment in moments.items():
        sent = _sent(service, key)
        with pg_db.sessions() as session, session.begin():
            session.execute(
                sa.update(CustomerInteraction)
                .where(CustomerInteraction.interaction_uuid == sent)
                .values(created_at=moment, sent_at=moment)
            )
    agent, _ = sign_in(app, "a.gent")
    page = agent.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert "2026-12-04 22:30:00 PST" in page and "(2026-12-05 06:30:00 UTC)" in page
    assert "2026-07-15 12:00:00 PDT" in page and "(19:00:00 UTC)" in page
    assert "2026-11-01 01:30:00 PDT" in page and "(08:30:00 UTC)" in page
    assert "2026-11-01 01:30:00 PST" in page and "(09:30:00 UTC)" in page


def test_the_card_links_its_batch_and_the_batch_page_says_how_it_went_and_who_paused_it(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    with pg_db.sessions() as session, session.begin():
        session.add(
            Batch(
                id="november-2026",
                channel=ChannelType.EMAIL,
                template_key="welcome",
                source="november.csv",
                total_rows=2,
                enqueued=2,
                runs=1,
                state=BatchState.PAUSED,
            )
        )
        session.flush()
        session.add(BatchAction(batch_id="november-2026", action="start", actor="ops.kim"))
        session.add(
            BatchAction(batch_id="november-2026", action="pause", actor="ops.lee", reason="typo")
        )
    _sent(service, "november-2026:C-CALL-1", batch="november-2026")
    viewer, _ = sign_in(app, "v.iewer")
    page = viewer.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert 'href="/batches/november-2026"' in page
    batch = viewer.get("/batches/november-2026")
    html = batch.get_data(as_text=True)
    assert batch.status_code == 200
    assert "paused" in html and "november.csv" in html
    assert "<strong>pause</strong> by ops.lee: typo" in html
    assert "by <strong>ops.kim</strong>, from <code>november.csv</code>" in html
    assert "<strong>started</strong> by ops.kim" in html
    assert '<th scope="row">Sent</th><td>1</td>' in html
    assert viewer.get("/batches/no-such-batch").status_code == 404


def test_a_rejected_address_is_kept_sealed_with_the_validators_reason(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    failed = service.dispatch(CUSTOMER, "email", "welcome", {}, "typo-1", TYPO)
    assert failed.status.value == "failed"
    reason = failed.interaction.failure_reason or ""
    assert reason == "not a valid email address: the domain is not valid: it should have a period"
    assert failed.interaction.recipient == TYPO
    with pg_db.sessions() as session:
        stored = session.execute(
            sa.text(
                "SELECT recipient, failure_reason FROM interactions "
                "WHERE idempotency_key = 'typo-1'"
            )
        ).one()
    assert "exampleorg" not in stored.recipient and "lovelace" not in stored.recipient
    assert stored.failure_reason == reason

    uuid_ = failed.interaction.interaction_uuid
    resender, _ = sign_in(app, "r.esender")
    page = resender.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert "Address tried" in page and TYPO in page and "it should have a period" in page
    detail = resender.get(f"/customers/{CUSTOMER}/interactions/{uuid_}").get_data(as_text=True)
    assert TYPO in detail
    assert "rejected_address" in _disclosures(pg_db)[-1].shown
    viewer, _ = sign_in(app, "v.iewer")
    masked = viewer.get(f"/customers/{CUSTOMER}/interactions/{uuid_}").get_data(as_text=True)
    assert "a••••@exampleorg" in masked and TYPO not in masked


def test_a_rejected_address_never_reaches_the_dispatch_tasks_log(
    committed_pg: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("INTERACTIONS_ENVIRONMENT", "test")
    monkeypatch.setenv("INTERACTIONS_DATABASE_URL", PG_URL)
    get_settings.cache_clear()
    caplog.set_level(logging.DEBUG)
    try:
        dispatch(
            idempotency_key="typo-task-1",
            customer_id=CUSTOMER,
            channel="email",
            template_key="welcome",
            recipient=TYPO,
        )
    finally:
        get_settings.cache_clear()
    outcome = [r for r in caplog.records if r.name == "tasks.dispatch"]
    assert [r.getMessage() for r in outcome] == ["dispatch failed"], "the task logged its outcome"
    with committed_pg.sessions() as session:
        failure = session.scalars(sa.select(CustomerInteraction.failure_reason)).one()
    assert failure and "it should have a period" in failure
    assert "exampleorg" not in caplog.text and "lovelace" not in caplog.text


def test_a_bounced_address_was_sent_to_and_is_not_called_tried(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    sent = service.dispatch(CUSTOMER, "email", "welcome", {}, "bounce-1", ADDRESS)
    service.update_status(sent.interaction.provider_reference or "", "failed", reason="bounced")
    assert service.get_history(CUSTOMER, 1).items[0].status.value == "failed"
    agent, _ = sign_in(app, "a.gent")
    page = agent.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert "Sent to" in page and "Address tried" not in page and ADDRESS in page
    shown = _disclosures(pg_db)[-1].shown
    assert "address" in shown and "rejected_address" not in shown


def test_an_unknown_customer_says_so_and_a_note_needs_a_yes(app: Flask, pg_db: Database) -> None:
    agent, token = sign_in(app, "a.gent")
    page = agent.get("/customers/C-9999").get_data(as_text=True)
    assert "No record of customer C-9999" in page and 'name="confirm_unknown"' in page
    refused = agent.post(
        "/customers/C-9999/notes", data={"content": "Asked about a letter", "csrf_token": token}
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "There is no record of customer C-9999" in html and 'href="#confirm_unknown"' in html
    assert "Asked about a letter" in html  # what was typed is kept in the form
    assert pg_db.counts()["interactions"] == 0
    confirmed = agent.post(
        "/customers/C-9999/notes",
        data={"content": "Asked about a letter", "confirm_unknown": "yes", "csrf_token": token},
    )
    assert confirmed.status_code == 303 and pg_db.counts()["interactions"] == 1
    after = agent.get("/customers/C-9999").get_data(as_text=True)
    assert "No record of customer" not in after and 'name="confirm_unknown"' not in after


def test_a_customer_with_only_a_contact_entry_is_known(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    service.upsert_contact("C-CONTACT-ONLY", ADDRESS, None)
    agent, token = sign_in(app, "a.gent")
    assert "No record of" not in agent.get("/customers/C-CONTACT-ONLY").get_data(as_text=True)
    noted = agent.post(
        "/customers/C-CONTACT-ONLY/notes", data={"content": "Called", "csrf_token": token}
    )
    assert noted.status_code == 303 and pg_db.counts()["interactions"] == 1


def test_a_viewer_is_told_there_is_no_record_and_is_offered_no_note(app: Flask) -> None:
    viewer, token = sign_in(app, "v.iewer")
    page = viewer.get("/customers/C-9999").get_data(as_text=True)
    assert "No record of customer C-9999" in page and 'name="content"' not in page
    answer = viewer.post(
        "/customers/C-9999/notes",
        data={"content": "x", "confirm_unknown": "yes", "csrf_token": token},
    )
    assert answer.status_code == 403


def test_search_finds_the_directory_by_either_format_and_past_sends(
    app: Flask, service: CommunicationService
) -> None:
    service.upsert_contact("C-ON-FILE", "Grace.Hopper@Example.org", "604 555 0199")
    _sent(service, "search-1")  # CUSTOMER was sent something at ADDRESS
    service.upsert_contact("C-ALSO", ADDRESS, None)
    viewer, token = sign_in(app, "v.iewer")

    def find(text: str) -> tuple[int, str, str]:
        answer = viewer.post("/find", data={"address": text, "csrf_token": token})
        return answer.status_code, answer.location or "", answer.get_data(as_text=True)

    assert find("grace.hopper@example.org")[:2] == (303, "/customers/C-ON-FILE")
    assert find("(604) 555-0199")[:2] == (303, "/customers/C-ON-FILE")
    status, _, html = find(ADDRESS)
    assert status == 200 and "C-ALSO" in html and CUSTOMER in html
    assert "on file in the contact directory" in html and "sent something at it" in html
    assert find("nobody@example.org")[0] == 404
    status, _, html = find("not an address")
    assert status == 400 and "enter an email address" in html
    assert find("ada@exampleorg")[0] == 400


def test_a_phone_number_in_the_id_box_is_searched_and_never_becomes_a_url(
    app: Flask, service: CommunicationService
) -> None:
    service.upsert_contact("C-ON-FILE", None, "604 555 0199")
    service.upsert_contact("6045550123", None, None)  # an id that happens to read as a number
    viewer, token = sign_in(app, "v.iewer")

    def open_id(text: str) -> tuple[int, str, str]:
        answer = viewer.post("/customer", data={"customer_id": text, "csrf_token": token})
        return answer.status_code, answer.location or "", answer.get_data(as_text=True)

    assert open_id("604-555-0199")[:2] == (303, "/customers/C-ON-FILE")
    status, location, html = open_id("604.555.0100")
    assert (status, location) == (404, "") and "604.555.0100" not in html
    assert open_id("6045550123")[:2] == (303, "/customers/6045550123")
    assert open_id("C-42")[:2] == (303, "/customers/C-42")


def test_the_timeline_filters_by_channel_and_status(
    app: Flask, service: CommunicationService
) -> None:
    _sent(service, "filter-sent")
    service.dispatch(CUSTOMER, "email", "welcome", {}, "filter-failed", TYPO)
    service.add_note(CUSTOMER, "Called about the letter", author="a.gent")
    agent, _ = sign_in(app, "a.gent")

    def entries(query: str) -> int:
        answer = agent.get(f"/customers/{CUSTOMER}{query}")
        assert answer.status_code == 200
        return answer.get_data(as_text=True).count('class="entry"')

    assert entries("") == 3
    assert entries("?channel=email") == 2
    assert entries("?channel=email&status=failed") == 1
    assert entries("?channel=phone") == 1
    assert entries("?status=sent") == 1
    assert entries("?channel=sms") == 0
    assert agent.get(f"/customers/{CUSTOMER}?status=lost").status_code == 400
