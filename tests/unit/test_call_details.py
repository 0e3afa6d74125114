"""What a viewer sees of an address, a card's preview, and reasons that never quote an address."""

from __future__ import annotations

import pytest

from models.enums import ChannelType
from services.errors import InvalidRecipient
from services.sending import validation
from services.support.lookup import channel_of
from services.support.masking import mask, preview


@pytest.mark.parametrize(
    ("channel", "address", "shown"),
    [
        (ChannelType.EMAIL, "ada.lovelace@example.org", "a••••@example.org"),
        (ChannelType.EMAIL, "ada.lovelace@exampleorg", "a••••@exampleorg"),
        (ChannelType.EMAIL, "no at sign", "••••"),
        (ChannelType.SMS, "+16045554567", "•••• ••• 4567"),
        (ChannelType.SMS, "12345", "••••"),
        (ChannelType.EMAIL, "a@x.org", "••••@x.org"),
        (ChannelType.EMAIL, "ab@x.org", "••••@x.org"),
        (ChannelType.EMAIL, "abc@x.org", "a••••@x.org"),
        (ChannelType.SMS, "555-0123", "•••• ••• 23"),
        (ChannelType.SMS, "613 555 012", "•••• ••• 12"),
        (ChannelType.SMS, "6135550123", "•••• ••• 0123"),
        (ChannelType.EMAIL, None, None),
    ],
)
def test_a_masked_address_keeps_enough_to_confirm_and_too_little_to_use(
    channel: ChannelType, address: str | None, shown: str | None
) -> None:
    assert mask(channel, address) == shown


def test_a_preview_is_one_line_cut_at_a_word() -> None:
    body = "Hello Ada,\n\nYour statement is ready to read in your account today."
    assert preview(body, 30) == "Hello Ada, Your statement is…"
    assert preview("Short.") == "Short." and preview(None) is None


@pytest.mark.parametrize(
    ("typed", "channel"),
    [("ada@example.org", ChannelType.EMAIL), ("(604) 555-0199", ChannelType.SMS)],
)
def test_the_search_box_reads_the_channel_from_the_format(typed: str, channel: ChannelType) -> None:
    assert channel_of(typed) is channel


def test_the_search_box_refuses_what_is_neither() -> None:
    with pytest.raises(ValueError, match="enter an email address"):
        channel_of("C-1234")


def test_the_validators_reason_is_specific_and_free_of_the_address() -> None:
    with pytest.raises(InvalidRecipient) as refused:
        validation.email_address("ada.lovelace@exampleorg")
    assert refused.value.message == (
        "not a valid email address: the domain is not valid: it should have a period"
    )
    quoted = "The domain name exampleorg.invalid does not exist for ada@exampleorg.invalid."
    reason = validation.email_reason(quoted, "ada@exampleorg.invalid")
    assert "exampleorg" not in reason and "ada" not in reason and "@" not in reason


@pytest.mark.parametrize(
    ("said", "address", "left"),
    [
        ("The domain name xy does not exist.", "jo@xy", "the domain name [the address] does not"),
        ("Codepoint U+00A0 at position 1 of 'é1' not allowed.", "é1@x.org", "of '[the address]'"),
        ('The part before the sign is "jo".', "jo@example.org", '"[the address]"'),
        ("There is a problem at x.", "jo@x", "there is a problem at [the address]"),
        ("It should have a period.", "a@b", "it should have a period"),
        ("The domain is not valid.", "is@no", "the domain is not valid"),
    ],
)
def test_a_short_part_of_the_address_is_taken_out_and_the_reasons_words_stay(
    said: str, address: str, left: str
) -> None:
    reason = validation.email_reason(said, address)
    assert left in reason, reason


@pytest.mark.parametrize(
    ("typed", "why"),
    [("+1 604", "too short"), ("12345678901234567", "too long"), ("+999 1234567", "country")],
)
def test_a_phone_numbers_reason_says_what_is_wrong(typed: str, why: str) -> None:
    with pytest.raises(InvalidRecipient, match=why):
        validation.phone_number(typed, "CA")
