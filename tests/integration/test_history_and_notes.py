"""get_history() and add_note(): the customer's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.enums import ChannelType, InteractionStatus
from services.errors import InvalidInput
from services.sending.communication import CommunicationService
from tests.factories import send_email, unique_key


def _timeline_keys(service: CommunicationService, customer: str, **kwargs: object) -> list[str]:
    keys: list[str] = []
    cursor = None
    while True:
        page = service.get_history(customer, 3, cursor=cursor, **kwargs)  # type: ignore[arg-type]
        keys.extend(r.idempotency_key for r in page.items)
        if page.next_cursor is None:
            return keys
        cursor = page.next_cursor


def test_pages_walk_the_whole_timeline_newest_first(service: CommunicationService) -> None:
    keys = [
        send_email(service, customer_id="C-9", key=unique_key("t")).interaction.idempotency_key
        for _ in range(8)
    ]
    send_email(service, customer_id="C-other")
    assert _timeline_keys(service, "C-9") == list(reversed(keys))


def test_rows_created_in_the_same_instant_are_ordered_by_id(service: CommunicationService) -> None:
    instant = datetime(2026, 5, 1, 12, tzinfo=UTC)
    notes = [
        service.add_note("C-5", f"call {i}", author="agent", occurred_at=instant) for i in range(5)
    ]
    assert _timeline_keys(service, "C-5") == [n.idempotency_key for n in reversed(notes)]


def test_filters_by_channel_and_status(service: CommunicationService) -> None:
    sent = send_email(service, customer_id="C-3")
    service.dispatch("C-3", "sms", "reminder", {}, unique_key(), "+16135550101")
    send_email(service, customer_id="C-3", recipient="invalid")
    service.add_note("C-3", "called", author="agent")
    emails = service.get_history("C-3", 10, channel="email").items
    assert {r.channel for r in emails} == {ChannelType.EMAIL}
    assert len(emails) == 2
    sent_only = service.get_history("C-3", 10, channel=ChannelType.EMAIL, status="sent").items
    assert [r.id for r in sent_only] == [sent.interaction.id]


@pytest.mark.parametrize(
    "customer", ["C-1' OR '1'='1", "C-1; DROP TABLE interactions; --", "%", "C-1\\"]
)
def test_sql_meta_characters_in_filters_are_refused(
    service: CommunicationService, customer: str
) -> None:
    send_email(service, customer_id="C-1")
    with pytest.raises(InvalidInput):
        service.get_history(customer, 10)
    with pytest.raises(InvalidInput):
        service.get_history("C-1", 10, status=customer)
    assert len(service.get_history("C-1", 10).items) == 1


def test_a_note_is_a_delivered_phone_interaction_with_its_author(
    service: CommunicationService,
) -> None:
    when = datetime.now(UTC) - timedelta(hours=2)
    note = service.add_note(
        "C-2", "Called about the overdue form.", author="j.doe", occurred_at=when
    )
    assert note.channel is ChannelType.PHONE
    assert note.status is InteractionStatus.DELIVERED
    assert note.author == "j.doe"
    assert note.body_content == "Called about the overdue form."
    assert note.created_at == note.delivered_at == when
    assert service.get_history("C-2", 5).items == [note]
