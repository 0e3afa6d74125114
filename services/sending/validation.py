"""Checks on everything a caller hands the service, before anything is written."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from models.contact import address_index
from models.enums import SENT_CHANNELS, ChannelType, parse_enum
from models.interaction import CUSTOMER_ID_MAX, IDEMPOTENCY_KEY_MAX
from services.errors import InvalidInput, InvalidRecipient

_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_TEMPLATE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An address the full validator would take as it is: an unquoted ASCII dot-atom local part
# and a domain of ASCII labels. Anything else (quoted, international, odd) takes the full path.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@({_LABEL}(?:\.{_LABEL})+)")
LOCAL_PART_MAX, EMAIL_MAX = 64, 254
MAX_PAYLOAD_DEPTH = 8


def channel(value: object) -> ChannelType:
    """A channel by its value, any of them (searches, notes)."""
    try:
        return parse_enum(ChannelType, value)
    except ValueError as exc:
        raise InvalidInput("channel", str(exc)) from None


def sent_channel(value: object) -> ChannelType:
    """A channel a message is sent on: a phone call is recorded with add_note instead."""
    parsed = channel(value)
    if parsed not in SENT_CHANNELS:
        raise InvalidInput("channel", "phone calls are recorded with add_note, not sent")
    return parsed


def is_printable(value: str) -> bool:
    """Whether ``value`` holds no control characters."""
    return not _CONTROL.search(value)


def customer_id(value: object) -> str:
    """A customer id: letters, digits and ``_.:-``, at most 64 characters.

    The RFC numbers its customers: a non-negative integer is taken as its decimal string.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidInput("customer_id", "must be a non-empty string or a non-negative integer")
    if len(value) > CUSTOMER_ID_MAX:
        raise InvalidInput("customer_id", f"must be at most {CUSTOMER_ID_MAX} characters")
    if not _CUSTOMER_ID.match(value):
        raise InvalidInput("customer_id", "may hold only letters, digits and _ . : -")
    return value


def idempotency_key(value: object) -> str:
    """An idempotency key: 1 to 255 printable characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("idempotency_key", "must be a non-empty string")
    if len(value) > IDEMPOTENCY_KEY_MAX:
        raise InvalidInput("idempotency_key", f"must be at most {IDEMPOTENCY_KEY_MAX} characters")
    if _CONTROL.search(value):
        raise InvalidInput("idempotency_key", "must not contain control characters")
    return value


def template_key(value: object) -> str:
    """A template key: a short identifier naming the template to send."""
    if not isinstance(value, str) or not _TEMPLATE_KEY.match(value):
        raise InvalidInput("template_key", "must be 1-100 characters of letters, digits and _ . - ")
    return value


def sender_id(value: object) -> str | None:
    """A Notify reply-to or SMS sender id (a UUID), or None for the template's own."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _UUID.match(value):
        raise InvalidInput("reply_to_id", "must be a Notify reply-to or sender id (a UUID)")
    return value.lower()


def payload(value: object, max_bytes: int) -> dict[str, Any]:
    """A JSON object of at most ``max_bytes`` when encoded, nested no deeper than 8 levels."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("payload", "must be a JSON object")
    if _small_and_flat(value, max_bytes):
        return value
    _check_depth(value, 1)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInput("payload", f"must be JSON-serialisable ({type(exc).__name__})") from None
    if len(encoded) > max_bytes:
        raise InvalidInput("payload", f"is {len(encoded)} bytes; the limit is {max_bytes}")
    return value


def _small_and_flat(value: dict[Any, Any], max_bytes: int) -> bool:
    """Whether ``value`` surely passes without being encoded: text keys, text or integer values.

    A character encodes to at most 6 bytes (a ``\\u00XX`` escape), so a payload this short
    cannot be over the limit, and a flat one is one level deep: the common row of a batch
    (a few template fields) skips the encoding that would only measure it.
    """
    budget = max_bytes // 6 - 2
    for key, item in value.items():
        if type(key) is not str or not (type(item) is str or type(item) is int):
            return False
        budget -= len(key) + len(str(item)) + 6
    return budget >= 0


def _check_depth(value: object, depth: int) -> None:
    if depth > MAX_PAYLOAD_DEPTH:
        raise InvalidInput("payload", f"is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    for child in children:
        if isinstance(child, dict | list):
            _check_depth(child, depth + 1)


def email_address(value: str) -> str:
    """A deliverable-looking email address, normalised (domain lower-cased).

    A plain ASCII address (nearly all of a batch) has its domain checked once per process by
    the full validator, then only its shape and lengths: the same verdict and the same
    normalised form as the full validator's, at a fraction of its cost per row.
    """
    plain = _PLAIN_EMAIL.fullmatch(value)
    if plain is not None and len(plain[1]) <= LOCAL_PART_MAX and len(value) <= EMAIL_MAX:
        domain = _checked_domain(plain[2])
        if domain is not None:
            return f"{plain[1]}@{domain}"
    return full_email_address(value)


def full_email_address(value: str) -> str:
    """``email_address`` by the full validator alone, whatever the address."""
    if _CONTROL.search(value):
        raise InvalidRecipient("recipient", "email address contains control characters")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        reason = email_reason(str(exc), value)
        raise InvalidRecipient("recipient", f"not a valid email address: {reason}") from None


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    """The domain as the full validator normalises it, or None if it refuses it."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


# The library's wording, said without the "@" that makes the text look like an address.
_EMAIL_WORDING = (
    ("There must be something after the @-sign", "the domain is missing"),
    ("The part after the @-sign", "the domain"),
    ("After the @-sign", "in the domain"),
    ("after the @-sign", "in the domain"),
    ("before the @-sign", "before the at sign"),
    ("an @-sign", "an at sign"),
    ("the @-sign", "the at sign"),
    ("'@'", "a second at sign"),
)


_ADDRESS_TEXT = "[the address]"
# Parts this long are taken out wherever they appear; a shorter one (a, ab) is too often a
# piece of the reason's own words, so only where it stands alone.
_SCRUBBED_ANYWHERE = 3
# Short words the validator's reasons are written with: a part equal to one is left there.
_REASON_WORDS = frozenset(
    {"a", "an", "as", "at", "be", "by", "do", "if", "in", "is", "it", "no", "of", "on", "or", "to"}
)


def _scrub(text: str, part: str) -> str:
    """``text`` without ``part`` of an address: anywhere when long, else where it stands alone.

    A short part is taken out where it is quoted ('a', "ab") and where it is a whole token,
    unless it is one of the short words the reason itself is written with ("a", "is"): such a
    part says nothing about whom the address reaches, and the reason would not read.
    """
    escaped = re.escape(part)
    if len(part) >= _SCRUBBED_ANYWHERE:
        return re.sub(escaped, _ADDRESS_TEXT, text, flags=re.IGNORECASE)
    text = re.sub(rf"(['\"`]){escaped}\1", rf"\1{_ADDRESS_TEXT}\1", text, flags=re.IGNORECASE)
    if part.lower() in _REASON_WORDS:
        return text
    alone = rf"(?<![^\s(<\[]){escaped}(?=[\s)>\],;:!?]|\.(?:\s|$)|$)"
    return re.sub(alone, _ADDRESS_TEXT, text, flags=re.IGNORECASE)


def email_reason(text: str, address: str) -> str:
    """The validator's specific reason, free of the address it was about.

    The validator's reasons name the fault ("the domain is not valid. It should have a
    period."), not the address; any part of the address that still appears is taken out, so
    the reason can be stored in clear and logged.
    """
    local, _, domain = address.rpartition("@")
    for part in sorted({address, local, domain} - {""}, key=len, reverse=True):
        text = _scrub(text, part)
    for said, plain in _EMAIL_WORDING:
        text = text.replace(said, plain)
    text = text.replace("@", " at sign ").strip().rstrip(".")
    text = re.sub(r"\.\s+(\w)", lambda found: f": {found.group(1).lower()}", text)
    return (text[:1].lower() + text[1:])[:160]


_PHONE_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "its country code is not known",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}
_PHONE_LENGTH_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "its country code is not known",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "it has the wrong number of digits",
}


def phone_number(value: str, default_region: str) -> str:
    """A valid phone number in E.164 form, read in ``default_region`` when it has no +code."""
    if _CONTROL.search(value):
        raise InvalidRecipient("recipient", "phone number contains control characters")
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        why = _PHONE_PARSE_REASONS.get(exc.error_type)
        raise InvalidRecipient(
            "recipient", f"not a phone number: {why}" if why else "not a phone number"
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        why = _PHONE_LENGTH_REASONS.get(phonenumbers.is_possible_number_with_reason(parsed))
        message = f"not a valid phone number: {why}" if why else "not a valid phone number"
        raise InvalidRecipient("recipient", message)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def recipient(channel: ChannelType, value: str, default_region: str) -> str:
    """The recipient normalised for ``channel``; PHONE and SYSTEM take any short label."""
    if channel is ChannelType.EMAIL:
        return email_address(value)
    if channel is ChannelType.SMS:
        return phone_number(value, default_region)
    if _CONTROL.search(value) or len(value) > 320:
        raise InvalidRecipient("recipient", "must be at most 320 printable characters")
    return value


def recipient_index(channel: ChannelType, normalised: str) -> str:
    """The blind index of an address already normalised for ``channel`` (the directory's too)."""
    return address_index(channel, normalised)
