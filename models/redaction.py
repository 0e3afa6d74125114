"""Free text from outside (a provider's failure reason) with addresses and phone numbers taken out.

A bounce reason may quote the address it bounced ("550 5.1.1 <ada@example.org>: Recipient
address rejected"). Such text is stored only through the column types below, which take out
whatever looks like an email address or a phone number (seven digits or more, so an SMTP status
such as 550 5.1.1 stays readable) before it reaches the database.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

REDACTED = "[redacted]"
EMAIL_LIKE = re.compile(r"[^\s@,;:()<>\[\]\"']+@[^\s@,;:()<>\[\]\"']+")
PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")
PHONE_DIGITS = 7
# Keys of an event's detail whose values are a provider's free text.
FREE_TEXT_KEYS = frozenset({"failure_reason", "reason"})


def _phone(match: re.Match[str]) -> str:
    found = match.group(0)
    return REDACTED if sum(c.isdigit() for c in found) >= PHONE_DIGITS else found


def redact_personal(text: str) -> str:
    """``text`` with anything that looks like an address or a phone number replaced."""
    if "@" in text:
        text = EMAIL_LIKE.sub(REDACTED, text)
    return PHONE_LIKE.sub(_phone, text)


class RedactedText(sa.TypeDecorator[str]):
    """Text that never stores an address or a phone number."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else redact_personal(value)


class RedactedDetail(sa.TypeDecorator[dict[str, Any]]):
    """A JSON document whose free-text entries are redacted as they are stored."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if not value or not FREE_TEXT_KEYS.intersection(value):
            return value
        return {
            key: redact_personal(item) if key in FREE_TEXT_KEYS and isinstance(item, str) else item
            for key, item in value.items()
        }
