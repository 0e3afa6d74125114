"""Free text from providers keeps its meaning and loses addresses and phone numbers."""

from __future__ import annotations

import pytest

from models.redaction import REDACTED, redact_personal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "550 5.1.1 <ada.lovelace@example.org>: Recipient address rejected",
            f"550 5.1.1 <{REDACTED}>: Recipient address rejected",
        ),
        ("bounced: ADA@EXAMPLE.ORG said no", f"bounced: {REDACTED} said no"),
        ("undeliverable to +1 (613) 555-0101", f"undeliverable to {REDACTED}"),
        ("smtp server answered 550 5.1.1 to RCPT TO", "smtp server answered 550 5.1.1 to RCPT TO"),
        ("permanent-failure", "permanent-failure"),
        (
            "notify rejected the message (400 BadRequestError)",
            "notify rejected the message (400 BadRequestError)",
        ),
    ],
)
def test_addresses_and_phone_numbers_are_taken_out(text: str, expected: str) -> None:
    assert redact_personal(text) == expected
