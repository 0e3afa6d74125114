"""Each bad input gets its own clear error and leaves every table as it was."""

from __future__ import annotations

from typing import Any

import pytest

from services.errors import InvalidInput
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email, unique_key
from tests.fakes import FakeProvider

GOOD: dict[str, Any] = {
    "customer_id": "C-1",
    "channel": "email",
    "template_key": "welcome",
    "payload": {"name": "Ada"},
    "idempotency_key": "bad-input-key",
    "recipient": "ada@example.org",
}

CASES = [
    ("channel", {"channel": "fax"}, "'fax' is not a valid ChannelType"),
    ("channel", {"channel": "EMAIL"}, "'EMAIL' is not a valid ChannelType"),
    ("channel", {"channel": "phone"}, "recorded with add_note"),
    ("idempotency_key", {"idempotency_key": ""}, "must be a non-empty string"),
    ("idempotency_key", {"idempotency_key": "k" * 256}, "at most 255"),
    ("customer_id", {"customer_id": ""}, "must be a non-empty string"),
    ("customer_id", {"customer_id": "1; DROP TABLE interactions"}, "may hold only"),
    ("payload", {"payload": {"blob": "x" * 20_000}}, "the limit is 16384"),
    ("payload", {"payload": "not an object"}, "must be a JSON object"),
    ("template_key", {"template_key": ""}, "must be 1-100 characters"),
]


@pytest.mark.parametrize(("field", "change", "message"), CASES, ids=[c[2] for c in CASES])
def test_bad_dispatch_input_writes_nothing(
    service: CommunicationService,
    provider: FakeProvider,
    db: Database,
    field: str,
    change: dict[str, Any],
    message: str,
) -> None:
    before = db.counts()
    with pytest.raises(InvalidInput) as caught:
        service.dispatch(**{**GOOD, **change})
    assert caught.value.field == field
    assert message in str(caught.value)
    assert db.counts() == before
    assert provider.call_count == 0


def test_a_key_reused_for_another_customer_is_refused(
    service: CommunicationService, provider: FakeProvider, db: Database
) -> None:
    key = unique_key()
    send_email(service, customer_id="C-1", key=key)
    before = db.counts()
    with pytest.raises(InvalidInput, match="already used for another customer"):
        send_email(service, customer_id="C-2", key=key)
    assert db.counts() == before
    assert provider.call_count == 1


@pytest.mark.parametrize(
    ("status", "message"),
    [("BOUNCED", "'bounced' is not a valid"), ("bounced", "'bounced' is not a valid")],
)
def test_bad_status_strings_write_nothing(
    service: CommunicationService, db: Database, status: str, message: str
) -> None:
    result = send_email(service)
    before = db.counts()
    with pytest.raises(InvalidInput, match=message):
        service.update_status(result.interaction.provider_reference or "", status)
    assert db.counts() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": "", "author": "agent"}, "content: must be non-empty"),
        ({"content": "x" * 10_001, "author": "agent"}, "at most 10000 characters"),
        ({"content": "called", "author": ""}, "author"),
    ],
)
def test_bad_notes_write_nothing(
    service: CommunicationService, db: Database, kwargs: dict[str, str], message: str
) -> None:
    before = db.counts()
    with pytest.raises(InvalidInput, match=message):
        service.add_note("C-1", **kwargs)
    assert db.counts() == before


def test_bad_contact_addresses_write_nothing(service: CommunicationService, db: Database) -> None:
    before = db.counts()
    with pytest.raises(InvalidInput, match="not a valid email"):
        service.upsert_contact("C-1", "nobody", None)
    with pytest.raises(InvalidInput, match="not a valid phone"):
        service.upsert_contact("C-1", None, "+1 000 000 0000")
    assert db.counts() == before


def test_nul_characters_in_a_note_are_refused(service: CommunicationService, db: Database) -> None:
    before = db.counts()
    with pytest.raises(InvalidInput, match="NUL"):
        service.add_note("C-1", "called\x00", author="agent")
    with pytest.raises(InvalidInput, match="printable"):
        service.add_note("C-1", "called", author="age\x00nt")
    assert db.counts() == before
