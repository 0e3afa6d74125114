"""The Notify adapter against the real stub server, over HTTP, and through dispatch()."""

from __future__ import annotations

import http.server
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from config.settings import Settings
from devtools.stub.server import StubNotifyServer
from models.enums import ChannelType, InteractionStatus
from providers.base import (
    AmbiguousProviderError,
    KeyRefused,
    OutboundMessage,
    PermanentProviderError,
    TransientProviderError,
)
from providers.notify import ApiKey, NotifyProvider, notify_token
from providers.registry import ProviderRegistry
from services.records import DispatchOutcome
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email, unique_key
from tests.stub_fixtures import (
    SERVICE_ID,
    TEMPLATES,
    TEST_API_KEY,
    CallbackReceiver,
    notify_provider_for,
)

EMAIL = "ada.lovelace@example.org"
PHONE = "+16135550101"
WRONG_KEY = f"other-{SERVICE_ID}-{uuid.uuid4()}"


@pytest.fixture
def stub(stub_notify: StubNotifyServer) -> StubNotifyServer:
    return stub_notify


@pytest.fixture
def notify(stub: StubNotifyServer) -> Iterator[NotifyProvider]:
    provider = notify_provider_for(stub)
    yield provider
    provider.close()


def email(
    recipient: str = EMAIL, payload: dict[str, Any] | None = None, template: str = "welcome"
) -> OutboundMessage:
    return OutboundMessage(
        uuid.uuid4(), ChannelType.EMAIL, recipient, template, payload or {"name": "Ada"}
    )


def sms(recipient: str = PHONE) -> OutboundMessage:
    return OutboundMessage(uuid.uuid4(), ChannelType.SMS, recipient, "reminder", {"day": "Monday"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def canned_server(answer: bytes | None) -> Iterator[str]:
    """A server that reads one request and sends ``answer`` raw, or hangs up when it is None."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            if answer is not None:
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        thread.join(timeout=5)
        listener.close()


def test_an_email_reaches_notify_with_its_template_personalisation_and_reference(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    message = email(payload={"name": "Ada", "amount": "12.50"})
    receipt = notify.send(message)

    [stored] = stub.notifications(message.reference)
    assert stored["type"] == "email"
    assert stored["email_address"] == EMAIL
    assert stored["template"]["id"] == TEMPLATES["welcome"]
    assert stored["personalisation"] == {"name": "Ada", "amount": "12.50"}
    assert receipt.provider == "notify"
    assert receipt.provider_reference == stored["id"]
    assert receipt.body is not None and "amount: 12.50" in receipt.body
    assert stub.stats()["receipts"] == {message.reference: 1}


def test_an_sms_reaches_notify_with_its_phone_number(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    message = sms()
    receipt = notify.send(message)

    [stored] = stub.notifications(message.reference)
    assert (stored["type"], stored["phone_number"]) == ("sms", PHONE)
    assert stored["template"]["id"] == TEMPLATES["reminder"]
    assert stored["personalisation"] == {"day": "Monday"}
    assert receipt.provider_reference == stored["id"]
    assert stub.stats()["total"] == 1


def test_a_token_signed_with_another_key_is_a_refused_key(stub: StubNotifyServer) -> None:
    provider = notify_provider_for(stub, api_key=WRONG_KEY)
    with pytest.raises(KeyRefused) as caught:
        provider.send(email())
    assert caught.value.status_code == 403
    assert "credentials" in caught.value.reason
    assert stub.stats()["total"] == 0


def test_a_request_without_a_token_is_refused(stub: StubNotifyServer) -> None:
    answer = requests.post(f"{stub.url}/v2/notifications/email", json={}, timeout=2)
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["error"] == "AuthError"


def test_a_400_is_permanent_and_its_reason_holds_no_personal_data(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    stub.configure(reject_recipients_containing="lovelace")
    with pytest.raises(PermanentProviderError) as caught:
        notify.send(email(payload={"name": "Augusta"}))
    reason = caught.value.reason
    assert caught.value.status_code == 400
    assert reason.startswith("notify rejected the message (400 ValidationError: ")
    assert "lovelace" not in reason.lower() and "Augusta" not in reason
    assert len(reason) <= 200
    assert stub.stats()["total"] == 0


@pytest.mark.parametrize(("status", "kind"), [(429, "RateLimitError"), (500, "Exception")])
def test_rate_limits_and_server_errors_are_transient(
    stub: StubNotifyServer, notify: NotifyProvider, status: int, kind: str
) -> None:
    stub.configure(fail_next=1, failure_status=status)
    with pytest.raises(TransientProviderError) as caught:
        notify.send(email())
    assert caught.value.status_code == status
    assert f"{status} {kind}" in caught.value.reason
    assert stub.stats()["total"] == 0
    # Only the next one was to fail.
    notify.send(email())
    assert stub.stats()["total"] == 1


def test_a_reply_slower_than_the_read_timeout_is_ambiguous_though_notify_has_it(
    stub: StubNotifyServer,
) -> None:
    impatient = notify_provider_for(stub, timeout=0.2)
    stub.configure(hold_ms=1500)
    message = email()
    with pytest.raises(AmbiguousProviderError):
        impatient.send(message)
    assert stub.stats()["receipts"] == {message.reference: 1}
    # Which is why reconciliation asks by reference before sending again.
    assert impatient.lookup(message.reference).found


def test_a_provider_that_cannot_be_reached_is_transient() -> None:
    provider = NotifyProvider(f"http://127.0.0.1:{free_port()}", TEST_API_KEY, TEMPLATES, 1, 1, 1)
    with pytest.raises(TransientProviderError) as caught:
        provider.send(email())
    assert caught.value.status_code is None


@pytest.mark.parametrize(
    "answer",
    [
        None,
        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK",
        b'HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{"status":"ok"}',
    ],
    ids=["hung-up", "not-json", "no-id"],
)
def test_an_answer_that_cannot_be_read_is_ambiguous(answer: bytes | None) -> None:
    with canned_server(answer) as url:
        provider = NotifyProvider(url, TEST_API_KEY, TEMPLATES, 2, 1, 1)
        with pytest.raises(AmbiguousProviderError):
            provider.send(email())


def test_a_server_error_page_is_not_echoed_into_the_reason() -> None:
    page = f"<html>upstream failed for {EMAIL}</html>".encode()
    head = f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: {len(page)}\r\n\r\n".encode()
    with canned_server(head + page) as url:
        provider = NotifyProvider(url, TEST_API_KEY, TEMPLATES, 2, 1, 1)
        with pytest.raises(TransientProviderError) as caught:
            provider.send(email())
    assert caught.value.status_code == 502
    assert "html" not in caught.value.reason and EMAIL not in caught.value.reason


def test_messages_notify_cannot_carry_fail_permanently_before_any_request(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with pytest.raises(PermanentProviderError, match="no Notify template is mapped for template"):
        notify.send(email(template="unmapped"))
    alert = OutboundMessage(uuid.uuid4(), ChannelType.SYSTEM, "ops", "welcome", {})
    with pytest.raises(PermanentProviderError, match="cannot deliver system"):
        notify.send(alert)
    assert stub.stats()["total"] == 0


def test_lookup_finds_a_sent_message_by_reference(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    message = email()
    receipt = notify.send(message)
    found = notify.lookup(message.reference)
    assert found.found
    assert found.provider_reference == receipt.provider_reference
    assert found.status is InteractionStatus.SENT


def test_lookup_of_an_unknown_reference_finds_nothing(notify: NotifyProvider) -> None:
    result = notify.lookup(str(uuid.uuid4()))
    assert not result.found
    assert result.provider_reference is None


def test_a_lookup_that_fails_on_notify_side_is_transient() -> None:
    answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    with canned_server(answer) as url:
        provider = NotifyProvider(url, TEST_API_KEY, TEMPLATES, 2, 1, 1)
        with pytest.raises(TransientProviderError) as caught:
            provider.lookup(str(uuid.uuid4()))
    assert caught.value.status_code == 503


@pytest.mark.parametrize(
    ("notify_word", "ours"),
    [("delivered", InteractionStatus.DELIVERED), ("permanent-failure", InteractionStatus.FAILED)],
)
def test_delivery_receipts_are_posted_with_the_bearer_token(
    stub: StubNotifyServer, notify: NotifyProvider, notify_word: str, ours: InteractionStatus
) -> None:
    with CallbackReceiver() as receiver:
        stub.configure(
            callback_url=f"{receiver.url}/webhooks/notify",
            callback_token="callback-secret",
            callback_status=notify_word,
        )
        message = email()
        receipt = notify.send(message)
        [callback] = receiver.wait_for(1)

    assert callback.path == "/webhooks/notify"
    assert callback.authorization == "Bearer callback-secret"
    body = callback.body
    assert body["id"] == receipt.provider_reference
    assert body["reference"] == message.reference
    assert (body["to"], body["status"], body["notification_type"]) == (EMAIL, notify_word, "email")
    assert body["completed_at"] is not None
    assert set(body) == {
        "id",
        "reference",
        "to",
        "status",
        "created_at",
        "completed_at",
        "sent_at",
        "notification_type",
    }
    assert notify.lookup(message.reference).status is ours


def test_a_failing_callback_receiver_does_not_stop_the_stub(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with CallbackReceiver(status=500) as receiver:
        stub.configure(callback_url=receiver.url)
        notify.send(email())
        receiver.wait_for(1)
    stub.configure(callback_url=f"http://127.0.0.1:{free_port()}/gone")
    notify.send(email())
    deadline = time.monotonic() + 5
    while stub.stats()["callbacks"]["failed"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stub.stats()["callbacks"] == {"sent": 0, "failed": 2}
    notify.send(email())
    assert stub.stats()["total"] == 3


def test_sends_from_twenty_threads_through_one_provider_are_all_counted(
    stub: StubNotifyServer,
) -> None:
    provider = notify_provider_for(stub, pool_size=20)
    messages = [email() if n % 2 else sms() for n in range(200)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        receipts = list(pool.map(provider.send, messages))
    provider.close()

    stats = stub.stats()
    assert (stats["total"], stats["unique_references"], stats["duplicates"]) == (200, 200, 0)
    assert set(stats["receipts"]) == {m.reference for m in messages}
    assert len({r.provider_reference for r in receipts}) == 200


def test_the_stub_counts_a_second_accepted_send_as_a_duplicate(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    message = email()
    notify.send(message)
    notify.send(message)
    stats = stub.stats()
    assert (stats["total"], stats["unique_references"], stats["duplicates"]) == (2, 1, 1)
    assert len({n["id"] for n in stub.notifications(message.reference)}) == 2


def test_the_stub_validates_what_notify_requires(stub: StubNotifyServer) -> None:
    token = notify_token(ApiKey.parse(TEST_API_KEY), int(time.time()))
    auth = {"Authorization": f"Bearer {token}"}
    no_template = {"email_address": EMAIL}
    answer = requests.post(
        f"{stub.url}/v2/notifications/email", json=no_template, headers=auth, timeout=2
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "errors": [{"error": "ValidationError", "message": "template_id is not a valid UUID"}],
        "status_code": 400,
    }
    bad_phone = {"phone_number": "call me", "template_id": TEMPLATES["reminder"]}
    answer = requests.post(
        f"{stub.url}/v2/notifications/sms", json=bad_phone, headers=auth, timeout=2
    )
    assert answer.status_code == 400


def test_the_stub_is_controlled_over_http(stub: StubNotifyServer, notify: NotifyProvider) -> None:
    config = requests.post(f"{stub.url}/_stub/config", json={"fail_next": 1}, timeout=2)
    assert config.json()["fail_next"] == 1
    with pytest.raises(TransientProviderError):
        notify.send(email())
    notify.send(email())
    assert requests.get(f"{stub.url}/_stub/stats", timeout=2).json()["total"] == 1
    assert requests.post(f"{stub.url}/_stub/reset", timeout=2).status_code == 200
    assert stub.stats() == {
        "received": 0,
        "accepted": 0,
        "refused": {"rate_limited": 0, "daily_limit": 0, "revoked": 0, "outage": 0},
        "sent_today": {},
        "total": 0,
        "unique_references": 0,
        "duplicates": 0,
        "receipts": {},
        "rejected": 0,
        "callbacks": {"sent": 0, "failed": 0},
    }
    refused = requests.post(f"{stub.url}/_stub/config", json={"failure_rate": 2}, timeout=2)
    assert refused.status_code == 400


def test_the_stub_runs_as_a_command_until_sigterm() -> None:
    port = free_port()
    command = [sys.executable, "-m", "devtools.stub", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == f"stub notify listening on http://127.0.0.1:{port}\n"
        provider = NotifyProvider(f"http://127.0.0.1:{port}", TEST_API_KEY, TEMPLATES, 2, 1, 1)
        provider.send(email())
        stats = requests.get(f"http://127.0.0.1:{port}/_stub/stats", timeout=2).json()
        assert stats["total"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()


def test_dispatch_twice_reaches_notify_once_and_keeps_its_id(
    db: Database, stub: StubNotifyServer, notify: NotifyProvider, test_settings: Settings
) -> None:
    service = CommunicationService(db.sessions, ProviderRegistry.single(notify), test_settings)
    key = unique_key("notify")
    first = send_email(service, key=key)
    second = send_email(service, key=key)

    assert (first.outcome, second.outcome) == (DispatchOutcome.SENT, DispatchOutcome.ALREADY_SENT)
    record = first.interaction
    [stored] = stub.notifications(str(record.interaction_uuid))
    assert stub.stats()["receipts"] == {str(record.interaction_uuid): 1}
    assert record.provider == "notify"
    assert record.provider_reference == stored["id"]
    assert second.interaction.provider_reference == stored["id"]
    assert record.status is InteractionStatus.SENT


def test_dispatch_records_a_notify_rejection_without_personal_data(
    db: Database, stub: StubNotifyServer, notify: NotifyProvider, test_settings: Settings
) -> None:
    service = CommunicationService(db.sessions, ProviderRegistry.single(notify), test_settings)
    stub.configure(reject_recipients_containing="blocked")
    result = send_email(service, recipient="blocked.person@example.org")
    assert result.outcome is DispatchOutcome.FAILED
    reason = result.interaction.failure_reason
    assert reason is not None and "notify rejected the message (400" in reason
    assert "blocked.person" not in reason


@contextmanager
def forwarding_proxy() -> Iterator[tuple[str, list[str]]]:
    """A plain HTTP proxy on loopback that forwards each request and notes the URL asked for."""
    asked: list[str] = []

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            asked.append(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in ("host", "proxy-connection", "connection")
            }
            direct = requests.Session()
            direct.trust_env = False  # the proxy itself goes straight to the stub
            answer = direct.post(self.path, data=body, headers=headers, timeout=5)
            direct.close()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_named_by_the_environment_carries_the_sends(
    stub: StubNotifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with forwarding_proxy() as (proxy, asked):
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy)
        provider = notify_provider_for(stub)
        try:
            message = email()
            receipt = provider.send(message)
        finally:
            provider.close()
    assert asked == [f"{stub.url}/v2/notifications/email"]
    [stored] = stub.notifications(message.reference)
    assert receipt.provider_reference == stored["id"]
