"""The suppression list: a permanent failure stops later sends to the address until lifted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from config.settings import SenderIdentity, Settings
from devtools.stub.notifications import receipt_body
from devtools.stub.server import StubNotifyServer
from models.base import utcnow
from models.batch import Batch
from models.enums import ChannelType, InteractionStatus
from models.suppression import Suppression
from providers.base import OutboundMessage
from providers.notify import NotifyProvider
from providers.registry import ProviderRegistry
from providers.smtp import SmtpProvider
from providers.templates import TemplateStore
from services.callbacks import status_events
from services.callbacks.parsing import parse_notify
from services.records import DispatchOutcome
from services.sending.batch_status import batch_status
from services.sending.communication import CommunicationService
from services.sending.suppression import SuppressionList
from tests.conftest import Database
from tests.console_fixtures import CapturedQueue, console_settings, sign_in
from tests.fakes import FakeProvider
from tests.smtp_fixtures import SmtpServer
from tests.stub_fixtures import TEMPLATES, TEST_API_KEY, notify_provider_for
from workers.console import create_app

ADDRESS = "Ada.Lovelace@Example.org"
REPLY_TO = "0c7b5a4e-1d2f-4e3a-9b8c-7d6e5f4a3b21"
SMS_SENDER = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
BATCH_REPLY_TO = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
UNSUBSCRIBE = "https://example.gov/unsubscribe/one-click"


@pytest.fixture
def notify(stub_notify: StubNotifyServer) -> Iterator[NotifyProvider]:
    provider = notify_provider_for(stub_notify)
    yield provider
    provider.close()


@pytest.fixture
def notify_service(
    db: Database, notify: NotifyProvider, test_settings: Settings
) -> CommunicationService:
    return CommunicationService(db.sessions, ProviderRegistry.single(notify), test_settings)


def _batch(db: Database, batch_id: str) -> None:
    with db.sessions() as session, session.begin():
        session.add(Batch(id=batch_id, channel=ChannelType.EMAIL, template_key="welcome"))


def _send(service: CommunicationService, batch_id: str) -> DispatchOutcome:
    key = f"{batch_id}:C-1"
    return service.dispatch(
        "C-1", "email", "welcome", {"name": "Ada"}, key, ADDRESS, batch_id=batch_id
    ).outcome


def _permanent_failure(db: Database, stub: StubNotifyServer) -> None:
    """Notify's callback saying the address is permanently undeliverable, applied."""
    [stored] = stub.notifications()
    body = json.dumps(receipt_body({**stored, "status": "permanent-failure"})).encode()
    update = status_events.apply(db.sessions, parse_notify(body).event, utcnow())
    assert update.current is InteractionStatus.FAILED


def test_a_hard_bounce_suppresses_until_lifted(
    db: Database,
    notify_service: CommunicationService,
    stub_notify: StubNotifyServer,
    test_settings: Settings,
) -> None:
    for batch_id in ("b-1", "b-2", "b-3"):
        _batch(db, batch_id)
    assert _send(notify_service, "b-1") is DispatchOutcome.SENT
    _permanent_failure(db, stub_notify)

    assert _send(notify_service, "b-2") is DispatchOutcome.FAILED
    assert _send(notify_service, "b-2") is DispatchOutcome.FAILED  # idempotent: one row, no call
    assert stub_notify.stats()["total"] == 1
    [row] = notify_service.find_by_recipient("email", ADDRESS.lower(), 10)[:1]
    today = f"{utcnow():%-d %B %Y}"
    assert row.failure_reason == f"suppressed: permanent failure on {today}"
    assert batch_status(db.sessions, "b-2", utcnow()).suppressed == 1
    assert batch_status(db.sessions, "b-1", utcnow()).suppressed == 0

    suppressions = SuppressionList(db.sessions, test_settings)
    found = suppressions.status("email", ADDRESS)
    assert found is not None and found.reason == "permanent failure"
    assert found.expires_at - found.suppressed_at == timedelta(days=90)
    assert suppressions.lift("email", ADDRESS, "o.perator", "customer fixed their mailbox")

    assert _send(notify_service, "b-3") is DispatchOutcome.SENT
    assert stub_notify.stats()["total"] == 2
    with db.sessions() as session:
        [kept] = session.scalars(sa.select(Suppression)).all()
    assert (kept.lifted_by, kept.lift_reason) == ("o.perator", "customer fixed their mailbox")
    assert ADDRESS.lower() not in kept.recipient_hash


def test_no_address_is_stored_in_clear(pg_db: Database, test_settings: Settings) -> None:
    SuppressionList(pg_db.sessions, test_settings).add("email", ADDRESS, "o.perator")
    with pg_db.sessions() as session:
        raw = session.execute(sa.text("SELECT * FROM suppressions")).one()
    assert "lovelace" not in repr(raw).lower()


def test_an_expired_suppression_no_longer_refuses(
    db: Database, notify_service: CommunicationService, test_settings: Settings
) -> None:
    old = SuppressionList(db.sessions, test_settings, clock=lambda: utcnow() - timedelta(days=91))
    old.add("email", ADDRESS, "o.perator")
    assert SuppressionList(db.sessions, test_settings).status("email", ADDRESS) is None
    _batch(db, "b-x")
    assert _send(notify_service, "b-x") is DispatchOutcome.SENT


def smtp_for(server: SmtpServer, settings: Settings, unsubscribe: str | None) -> SmtpProvider:
    return SmtpProvider(
        host=server.host,
        port=server.port,
        security="none",
        username=None,
        password=None,
        sender="no-reply@example.gov",
        message_id_domain="interactions.test",
        timeout=2.0,
        templates=TemplateStore(settings.templates_dir),
        list_unsubscribe_url=unsubscribe,
    )


def test_an_smtp_hard_bounce_suppresses_the_address(
    db: Database, smtp_server: SmtpServer, test_settings: Settings
) -> None:
    smtp = smtp_for(smtp_server, test_settings, None)
    service = CommunicationService(db.sessions, ProviderRegistry.single(smtp), test_settings)
    smtp_server.handler.rcpt_reply = "550 5.1.1 no such user"
    assert _send(service, "s-1") is DispatchOutcome.FAILED
    smtp_server.handler.rcpt_reply = None
    result = service.dispatch("C-1", "email", "welcome", {"name": "Ada"}, "s-2", ADDRESS)
    assert result.interaction.failure_reason is not None
    assert result.interaction.failure_reason.startswith("suppressed: permanent failure on ")
    assert smtp_server.received == []
    smtp.close()


def test_an_smtp_content_refusal_suppresses_nothing(
    db: Database, smtp_server: SmtpServer, test_settings: Settings
) -> None:
    smtp = smtp_for(smtp_server, test_settings, None)
    service = CommunicationService(db.sessions, ProviderRegistry.single(smtp), test_settings)
    smtp_server.handler.data_reply = "554 5.7.1 rejected as spam"
    assert _send(service, "s-3") is DispatchOutcome.FAILED
    assert SuppressionList(db.sessions, test_settings).status("email", ADDRESS) is None
    smtp.close()


def test_smtp_mail_carries_list_unsubscribe_when_configured(
    db: Database, smtp_server: SmtpServer, test_settings: Settings
) -> None:
    smtp = smtp_for(smtp_server, test_settings, UNSUBSCRIBE)
    service = CommunicationService(db.sessions, ProviderRegistry.single(smtp), test_settings)
    assert _send(service, "s-4") is DispatchOutcome.SENT
    [received] = smtp_server.received
    assert received.message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    smtp.close()


def test_notify_requests_carry_the_sender_identity(stub_notify: StubNotifyServer) -> None:
    identities = {
        "welcome": SenderIdentity(
            email_reply_to_id=REPLY_TO, one_click_unsubscribe_url=UNSUBSCRIBE
        ),
        "reminder": SenderIdentity(sms_sender_id=SMS_SENDER),
    }
    notify = NotifyProvider(stub_notify.url, TEST_API_KEY, TEMPLATES, sender_identities=identities)
    email = OutboundMessage(uuid.uuid4(), ChannelType.EMAIL, ADDRESS, "welcome", {})
    sms = OutboundMessage(uuid.uuid4(), ChannelType.SMS, "+16135550100", "reminder", {})
    own = OutboundMessage(
        uuid.uuid4(), ChannelType.EMAIL, ADDRESS, "welcome", {}, reply_to_id=BATCH_REPLY_TO
    )
    for message in (email, sms, own):
        notify.send(message)
    [sent_email] = stub_notify.notifications(email.reference)
    assert sent_email["email_reply_to_id"] == REPLY_TO
    assert sent_email["one_click_unsubscribe_url"] == UNSUBSCRIBE
    [sent_sms] = stub_notify.notifications(sms.reference)
    assert sent_sms["sms_sender_id"] == SMS_SENDER
    assert "email_reply_to_id" not in sent_sms
    [sent_own] = stub_notify.notifications(own.reference)
    assert sent_own["email_reply_to_id"] == BATCH_REPLY_TO
    notify.close()


def test_a_batch_reply_to_id_reaches_notify_through_dispatch(
    db: Database, notify_service: CommunicationService, stub_notify: StubNotifyServer
) -> None:
    result = notify_service.dispatch(
        "C-1", "email", "welcome", {}, "r-1", ADDRESS, reply_to_id=BATCH_REPLY_TO
    )
    assert result.outcome is DispatchOutcome.SENT
    [sent] = stub_notify.notifications(str(result.interaction.interaction_uuid))
    assert sent["email_reply_to_id"] == BATCH_REPLY_TO


@pytest.fixture
def app(pg_db: Database, test_settings: Settings) -> Flask:
    return create_app(
        console_settings(test_settings), sessions=pg_db.sessions, publisher=CapturedQueue()
    )


def test_a_resender_sees_a_suppression_and_lifts_it_a_viewer_cannot(
    pg_db: Database, app: Flask, test_settings: Settings
) -> None:
    provider = FakeProvider()
    service = CommunicationService(pg_db.sessions, ProviderRegistry.single(provider), test_settings)
    service.upsert_contact("C-9", ADDRESS, None)
    suppressions = SuppressionList(pg_db.sessions, test_settings)
    suppressions.add("email", ADDRESS, "o.perator")
    record = service.dispatch("C-9", "email", "welcome", {}, "k-9", None).interaction
    assert record.failure_reason is not None and record.failure_reason.startswith("suppressed")
    assert provider.call_count == 0
    page = f"/customers/C-9/interactions/{record.interaction_uuid}"

    viewer, token = sign_in(app, "v.iewer")
    assert "This address is suppressed" in viewer.get(page).get_data(as_text=True)
    assert "Lift the suppression" not in viewer.get(page).get_data(as_text=True)
    refused = viewer.post(
        f"{page}/lift-suppression", data={"csrf_token": token, "lift_reason": "x"}
    )
    assert refused.status_code == 403
    assert suppressions.status("email", ADDRESS) is not None

    resender, token = sign_in(app, "r.esender")
    assert "suppressed" in resender.get("/customers/C-9").get_data(as_text=True)
    html = resender.get(page).get_data(as_text=True)
    assert "Lift the suppression" in html
    missing = resender.post(f"{page}/lift-suppression", data={"csrf_token": token})
    assert missing.status_code == 400
    lifted = resender.post(
        f"{page}/lift-suppression",
        data={"csrf_token": token, "lift_reason": "address confirmed by phone"},
    )
    assert lifted.status_code == 303
    assert suppressions.status("email", ADDRESS) is None
    with pg_db.sessions() as session:
        row = session.scalars(sa.select(Suppression)).one()
    assert row.lifted_by == "r.esender" and row.lift_reason == "address confirmed by phone"


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    return subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_line_reads_the_address_from_stdin(tmp_path: Path) -> None:
    env = {"INTERACTIONS_VAR_DIR": str(tmp_path / "var")}
    assert _cli(env, "migrate").returncode == 0
    added = _cli(env, "suppression", "add", "--by", "o.perator", stdin=f"{ADDRESS}\n")
    assert added.returncode == 0, added.stderr
    assert "added by an operator by o.perator" in added.stdout
    assert ADDRESS.lower() not in added.stdout.lower()
    listed = _cli(env, "suppression", "list")
    assert "email" in listed.stdout and "lovelace" not in listed.stdout.lower()
    assert "since" in _cli(env, "suppression", "check", stdin=f"{ADDRESS}\n").stdout
    no_reason = _cli(env, "suppression", "remove", stdin=f"{ADDRESS}\n")
    assert no_reason.returncode != 0
    removed = _cli(env, "suppression", "remove", "--reason", "asked by phone", stdin=f"{ADDRESS}\n")
    assert removed.returncode == 0, removed.stderr
    assert _cli(env, "suppression", "check", stdin=f"{ADDRESS}\n").stdout.strip() == (
        "not suppressed"
    )
    assert _cli(env, "suppression", "add").returncode != 0  # nothing on stdin
