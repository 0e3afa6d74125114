"""The RFC's own calls, spelled exactly as the RFC spells them, on both databases."""

from __future__ import annotations

import pytest

from models.enums import ChannelType, InteractionStatus
from services.errors import InvalidInput
from services.records import DispatchOutcome
from services.sending.communication import AUTHOR_NOT_GIVEN, CommunicationService
from tests.fakes import FakeProvider


def test_the_rfc_example_runs_as_written(
    service: CommunicationService, provider: FakeProvider
) -> None:
    service.upsert_contact(101, "ada@example.org", None)
    result = service.dispatch(
        customer_id=101,
        channel=ChannelType.EMAIL,
        template_key="order_confirm",
        payload={"order_id": 55},
        idempotency_key="batch_66_user_101",
    )
    assert result.outcome is DispatchOutcome.SENT
    assert result.interaction.customer_id == "101"
    service.update_status(result.interaction.provider_reference or "", "DELIVERED")
    customer_id, content = 101, "Called about order 55."
    note = service.add_note(customer_id, content)
    assert note.author == AUTHOR_NOT_GIVEN
    history = service.get_history(customer_id=101, limit=10)
    assert len(history) == 2
    assert [record.channel for record in history] == [ChannelType.PHONE, ChannelType.EMAIL]
    assert next(iter(reversed(history))).channel is ChannelType.EMAIL
    assert list(history)[1].status is InteractionStatus.DELIVERED
    assert provider.call_count == 1


def test_an_integer_and_its_decimal_string_are_one_customer(
    service: CommunicationService,
) -> None:
    service.add_note("101", "first", author="agent")
    service.add_note(101, "second", author="agent")
    assert len(service.get_history(101)) == len(service.get_history("101")) == 2


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_negative_boolean_and_fractional_ids_are_refused(
    service: CommunicationService, bad: object
) -> None:
    with pytest.raises(InvalidInput, match="customer_id"):
        service.get_history(bad)  # type: ignore[arg-type]


def test_a_status_filter_in_upper_case_reads_as_lower(service: CommunicationService) -> None:
    note = service.add_note(7, "called", author="agent")
    assert len(service.get_history(7, status=note.status.value.upper())) == 1
