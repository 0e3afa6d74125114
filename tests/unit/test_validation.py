"""Input checks, with no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.enums import ChannelType, InteractionStatus, InvalidEnumValue, parse_enum
from services.errors import InvalidInput, InvalidRecipient
from services.sending import validation


@pytest.mark.parametrize("value", ["EMAIL", "Email", "e-mail", "", None, 3])
def test_channel_strings_must_be_exact_values(value: object) -> None:
    with pytest.raises(InvalidEnumValue, match="expected one of 'email', 'sms'"):
        parse_enum(ChannelType, value)


def test_enum_values_parse() -> None:
    assert parse_enum(ChannelType, "sms") is ChannelType.SMS
    assert parse_enum(InteractionStatus, InteractionStatus.OPENED) is InteractionStatus.OPENED


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "line\nbreak", None])
def test_bad_idempotency_keys(key: object) -> None:
    with pytest.raises(InvalidInput, match="idempotency_key"):
        validation.idempotency_key(key)


def test_a_255_character_key_is_accepted() -> None:
    assert validation.idempotency_key("k" * 255) == "k" * 255


@pytest.mark.parametrize("value", ["", "a b", "x" * 65, "semi;colon", "'; DROP TABLE x;--"])
def test_bad_customer_ids(value: str) -> None:
    with pytest.raises(InvalidInput, match="customer_id"):
        validation.customer_id(value)


def test_email_is_normalised() -> None:
    assert validation.email_address("Ada@EXAMPLE.org") == "Ada@example.org"


@pytest.mark.parametrize(
    "value", ["not-an-address", "a@", "@example.org", "a@b@c.org", "a@example.org\r\nBcc: x@y.org"]
)
def test_invalid_emails_do_not_echo_the_address(value: str) -> None:
    with pytest.raises(InvalidRecipient) as caught:
        validation.email_address(value)
    assert value not in str(caught.value)


def _verdict(check: object, value: str) -> tuple[str, str]:
    try:
        return ("ok", check(value))  # type: ignore[operator]
    except InvalidRecipient as exc:
        return ("refused", str(exc))


_PIECES = ["a", "Z", "0", ".", "-", "+", "_", "@", "..", "xn--", "bü", " ", '"', "com"]
_ODD = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)
_LONG = st.builds(lambda n, d: "x" * n + "@" + d, st.integers(60, 70), st.sampled_from(
    ["example.org", "EXAMPLE.ORG", "x" * 190 + ".org", "localhost", "a.b-c.ca"]))  # fmt: skip


@given(st.one_of(st.emails(), _ODD, _LONG))
def test_the_fast_email_path_agrees_with_the_full_validator(value: str) -> None:
    # Most of a batch takes the fast path: it must accept, refuse and normalise alike.
    assert _verdict(validation.email_address, value) == _verdict(
        validation.full_email_address, value
    )


def test_phone_numbers_become_e164_in_canada_by_default() -> None:
    assert validation.phone_number("613-555-0101", "CA") == "+16135550101"
    assert validation.phone_number("+44 20 7946 0958", "CA") == "+442079460958"


@pytest.mark.parametrize("value", ["12", "not a number", "+1 000 000 0000"])
def test_invalid_phone_numbers(value: str) -> None:
    with pytest.raises(InvalidRecipient):
        validation.phone_number(value, "CA")


def test_payload_limits() -> None:
    assert validation.payload(None, 100) == {}
    assert validation.payload({"a": 1}, 100) == {"a": 1}
    with pytest.raises(InvalidInput, match="bytes; the limit is 100"):
        validation.payload({"a": "x" * 200}, 100)
    with pytest.raises(InvalidInput, match="JSON object"):
        validation.payload(["a"], 100)
    nested: dict[str, object] = {}
    cursor = nested
    for _ in range(10):
        cursor["n"] = {}
        cursor = cursor["n"]  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match="nested deeper"):
        validation.payload(nested, 10_000)
    with pytest.raises(InvalidInput, match="JSON-serialisable"):
        validation.payload({"a": object()}, 10_000)


def test_template_keys() -> None:
    assert validation.template_key("welcome.v2") == "welcome.v2"
    with pytest.raises(InvalidInput, match="template_key"):
        validation.template_key("{{ 7*7 }}")
