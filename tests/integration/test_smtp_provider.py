"""The SMTP provider through CommunicationService, against a real local SMTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models import CustomerInteraction
from models.enums import InteractionStatus
from providers.registry import ProviderRegistry
from providers.smtp import SmtpProvider
from providers.templates import TemplateStore
from services.errors import TransientDispatchError
from services.records import DispatchOutcome
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email, unique_key
from tests.smtp_fixtures import (
    SmtpServer,
    free_port,
    running_smtp_server,
)

SENDER = "Interaction Service <no-reply@example.gov>"
DOMAIN = "interactions.test"


def smtp_provider_for(
    port: int, settings: Settings, timeout: float = 2.0, security: str = "none"
) -> SmtpProvider:
    return SmtpProvider(
        host="127.0.0.1",
        port=port,
        security=security,  # type: ignore[arg-type]
        username=None,
        password=None,
        sender=SENDER,
        message_id_domain=DOMAIN,
        timeout=timeout,
        templates=TemplateStore(settings.templates_dir),
    )


@pytest.fixture
def smtp(smtp_server: SmtpServer, test_settings: Settings) -> Iterator[SmtpProvider]:
    provider = smtp_provider_for(smtp_server.port, test_settings)
    yield provider
    provider.close()


@pytest.fixture
def smtp_service(db: Database, smtp: SmtpProvider, test_settings: Settings) -> CommunicationService:
    return CommunicationService(db.sessions, ProviderRegistry.single(smtp), test_settings)


def _row(db: Database, key: str) -> CustomerInteraction:
    with db.sessions() as session:
        return session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.idempotency_key == key)
        ).one()


def test_one_key_dispatched_twice_sends_one_email(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    key = unique_key()
    first = send_email(smtp_service, key=key)
    second = send_email(smtp_service, key=key)
    assert (first.outcome, second.outcome) == (DispatchOutcome.SENT, DispatchOutcome.ALREADY_SENT)
    assert len(smtp_server.received) == 1


def test_the_email_carries_the_interaction_in_its_headers(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
    db: Database,
) -> None:
    key = unique_key()
    record = send_email(smtp_service, key=key, recipient="ada@example.org").interaction
    [received] = smtp_server.received
    message = received.message
    message_id = f"<{record.interaction_uuid}@{DOMAIN}>"

    assert received.mail_from == "no-reply@example.gov"
    assert received.rcpt_tos == ("ada@example.org",)
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Welcome to your online account, Ada"
    assert message["Message-ID"] == message_id
    assert message["X-Interaction-Reference"] == str(record.interaction_uuid)
    assert message["Date"]
    assert message.get_all("Bcc") is None
    assert record.provider == "smtp"
    assert record.provider_reference == message_id
    assert record.body_content == received.text.rstrip("\n")
    assert _row(db, key).body_content.startswith("Hello Ada,")  # type: ignore[union-attr]


def test_a_payload_value_that_forges_a_header_is_refused(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    result = send_email(smtp_service, payload={"name": "Ada\r\nBcc: evil@example.org"})
    assert result.outcome is DispatchOutcome.FAILED
    reason = result.interaction.failure_reason or ""
    assert reason == "header injection refused: the subject contains control characters"
    assert "evil" not in reason
    assert smtp_server.received == []


def test_an_international_domain_is_sent_in_idna_form(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    assert send_email(smtp_service, recipient="ada@exämple.org").outcome is DispatchOutcome.SENT
    [received] = smtp_server.received
    assert received.rcpt_tos == ("ada@xn--exmple-cua.org",)
    assert received.message["To"] == "ada@xn--exmple-cua.org"


def test_a_non_ascii_local_part_fails_before_anything_is_sent(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    result = send_email(smtp_service, recipient="zoë@example.org")
    assert result.outcome is DispatchOutcome.FAILED
    assert result.interaction.failure_reason == (
        "recipient is not a single ASCII email address this provider can send to"
    )
    assert smtp_server.received == []


def test_a_recipient_the_server_refuses_fails_without_naming_it(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.rcpt_reply = "550 5.1.1 <ada@example.org>: Recipient address rejected"
    result = send_email(smtp_service, recipient="ada@example.org")
    assert result.outcome is DispatchOutcome.FAILED
    assert result.interaction.failure_reason == "smtp server answered 550 5.1.1 to RCPT TO"
    assert smtp_server.received == []


def test_a_message_refused_after_its_data_fails(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.data_reply = "554 5.7.1 Message rejected for ada@example.org"
    result = send_email(smtp_service, recipient="ada@example.org")
    assert result.outcome is DispatchOutcome.FAILED
    assert result.interaction.failure_reason == "smtp server answered 554 5.7.1 to end of data"


def test_a_451_releases_the_claim_for_a_retry(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
    db: Database,
) -> None:
    key = unique_key()
    smtp_server.handler.rcpt_reply = "451 4.7.1 Greylisted, try again later"
    with pytest.raises(TransientDispatchError) as caught:
        send_email(smtp_service, key=key)
    assert caught.value.reason == "smtp server answered 451 4.7.1 to RCPT TO"
    row = _row(db, key)
    assert (row.status, row.claim_expires_at) == (InteractionStatus.PENDING, None)

    smtp_server.handler.rcpt_reply = None
    assert send_email(smtp_service, key=key).outcome is DispatchOutcome.SENT
    assert len(smtp_server.received) == 1


def test_a_server_that_is_down_is_a_transient_error(db: Database, test_settings: Settings) -> None:
    provider = smtp_provider_for(free_port(), test_settings)
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
    key = unique_key()
    with pytest.raises(TransientDispatchError) as caught:
        send_email(service, key=key)
    assert caught.value.reason == "smtp session could not be opened (ConnectionRefusedError)"
    assert _row(db, key).claim_expires_at is None


def test_starttls_required_but_not_offered_is_a_transient_error(
    db: Database,
    test_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    provider = smtp_provider_for(smtp_server.port, test_settings, security="starttls")
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
    with pytest.raises(TransientDispatchError, match="could not be opened"):
        send_email(service)
    assert smtp_server.received == []


def test_a_timeout_after_data_holds_the_claim(
    db: Database,
    test_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    provider = smtp_provider_for(smtp_server.port, test_settings, timeout=0.3)
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
    smtp_server.handler.data_delay = 1.0
    key = unique_key()
    result = send_email(service, key=key)
    assert result.outcome is DispatchOutcome.IN_FLIGHT
    assert result.interaction.status is InteractionStatus.PENDING
    assert _row(db, key).claim_expires_at is not None
    # The server did take it: sending again on the held claim would have been a duplicate.
    assert send_email(service, key=key).outcome is DispatchOutcome.IN_FLIGHT
    assert len(smtp_server.received) == 1
    provider.close()


def test_other_channels_and_bad_templates_fail_permanently(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    sms = smtp_service.dispatch(
        "C-1", "sms", "welcome", {"name": "Ada"}, unique_key(), "6135550101"
    )
    unknown = send_email(smtp_service, template="nope")
    missing = send_email(smtp_service, payload={"nickname": "SECRET-VALUE"})
    assert sms.interaction.failure_reason == "smtp delivers email only, not sms"
    assert unknown.interaction.failure_reason == "template error: unknown email template 'nope'"
    assert missing.interaction.failure_reason == (
        "template error: template 'welcome' (email subject): missing variable 'name'"
    )
    assert smtp_server.received == []


def test_one_thread_reuses_its_session(
    smtp_service: CommunicationService,
    smtp_server: SmtpServer,
) -> None:
    for _ in range(3):
        send_email(smtp_service)
    received = smtp_server.received
    assert len(received) == 3
    assert len({r.peer for r in received}) == 1


def test_a_session_dropped_while_idle_is_reopened(db: Database, test_settings: Settings) -> None:
    with running_smtp_server(timeout=0.2) as server:
        provider = smtp_provider_for(server.port, test_settings)
        service = CommunicationService(
            db.sessions, ProviderRegistry.single(provider), test_settings
        )
        send_email(service)
        time.sleep(0.5)  # longer than the server's idle timeout
        assert send_email(service).outcome is DispatchOutcome.SENT
        received = server.received
        provider.close()
    assert len(received) == 2
    assert len({r.peer for r in received}) == 2


def test_from_settings_sends_through_the_configured_server(
    db: Database,
    test_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    settings = test_settings.model_copy(
        update={
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
            "smtp_message_id_domain": "mail.example.gov",
        }
    )
    provider = SmtpProvider.from_settings(settings)
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), settings)
    record = send_email(service).interaction
    provider.close()
    [received] = smtp_server.received
    assert received.mail_from == settings.smtp_sender
    assert received.message["Message-ID"] == f"<{record.interaction_uuid}@mail.example.gov>"


def test_many_threads_send_every_message_once(
    committed_pg: Database,
    test_settings: Settings,
    smtp: SmtpProvider,
    smtp_server: SmtpServer,
) -> None:
    service = CommunicationService(
        committed_pg.sessions, ProviderRegistry.single(smtp), test_settings
    )
    keys = [unique_key("thread") for _ in range(60)]

    def dispatch(key: str) -> DispatchOutcome:
        return send_email(service, key=key, customer_id=f"C-{key}").outcome

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(dispatch, keys))

    assert outcomes == [DispatchOutcome.SENT] * len(keys)
    with committed_pg.sessions() as session:
        uuids = session.scalars(sa.select(CustomerInteraction.interaction_uuid)).all()
    received_ids = sorted(r.message["Message-ID"] for r in smtp_server.received)
    assert received_ids == sorted(f"<{u}@{DOMAIN}>" for u in uuids)
    assert len(uuids) == len(keys)
    assert len({r.peer for r in smtp_server.received}) <= 12
