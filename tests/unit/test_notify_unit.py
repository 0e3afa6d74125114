"""The Notify adapter's pure pieces: keys, tokens, status words, error reasons; no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import jwt
import pytest
import requests
from pydantic import SecretStr

from config.settings import Settings
from devtools.stub.auth import verify_token
from devtools.stub.config import StubConfig
from models.enums import ChannelType, InteractionStatus
from providers.base import (
    DailyLimitReached,
    KeyRefused,
    OutboundMessage,
    PermanentProviderError,
    RateLimited,
    TransientProviderError,
)
from providers.notify import (
    ApiKey,
    NotifyProvider,
    TokenCache,
    http_error,
    notify_status,
    notify_token,
    redact,
    retry_after,
    sensitive_values,
)

SERVICE_ID = "26785a09-ab16-4eb0-8407-a37497a57506"
SECRET = "3d844edf-8d35-48ac-975b-e847b4f122b0"
KEY = f"my-test-key-{SERVICE_ID}-{SECRET}"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_key_splits_into_service_id_and_secret_whatever_its_name_holds() -> None:
    key = ApiKey.parse(KEY)
    assert (key.service_id, key.secret) == (SERVICE_ID, SECRET)
    assert SECRET not in repr(key)


@pytest.mark.parametrize(
    "bad",
    [
        SECRET,
        f"name{SERVICE_ID}-{SECRET}",
        f"name-{SERVICE_ID}{SECRET}x",
        f"name-{SERVICE_ID}-{SECRET[:-1]}z",
        f"name-{SERVICE_ID.replace('-', '_')}-{SECRET}",
    ],
)
def test_a_malformed_key_is_refused_without_repeating_it(bad: str) -> None:
    with pytest.raises(ValueError, match="the service id and the secret are each") as caught:
        ApiKey.parse(bad)
    assert SECRET[:8] not in str(caught.value)


def test_the_token_carries_the_service_as_issuer_and_the_time_issued() -> None:
    token = notify_token(ApiKey.parse(KEY), 1_700_000_000)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})
    assert claims == {"iss": SERVICE_ID, "iat": 1_700_000_000}


def test_a_token_is_reused_for_ten_seconds_then_signed_again() -> None:
    clock = FakeClock(1_700_000_000.5)
    tokens = TokenCache(ApiKey.parse(KEY), clock)
    first = tokens.token()
    clock.now += 9.0
    assert tokens.token() == first
    clock.now += 1.0
    renewed = tokens.token()
    assert renewed != first
    assert jwt.decode(renewed, options={"verify_signature": False})["iat"] == 1_700_000_010
    clock.now -= 60
    assert tokens.token() != renewed


def test_the_stub_accepts_a_fresh_token_and_refuses_stale_or_forged_ones() -> None:
    now = 1_700_000_000
    token = notify_token(ApiKey.parse(KEY), now)
    assert verify_token(token, SERVICE_ID, SECRET, now + 29) is None
    assert "30 seconds" in (verify_token(token, SERVICE_ID, SECRET, now + 31) or "")
    forged = notify_token(ApiKey(SERVICE_ID, str(uuid.uuid4())), now)
    assert "signature" in (verify_token(forged, SERVICE_ID, SECRET, now) or "")
    assert verify_token("not-a-token", SERVICE_ID, SECRET, now) == "Invalid token: not a JWT"


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("created", InteractionStatus.SENT),
        ("sending", InteractionStatus.SENT),
        ("pending", InteractionStatus.SENT),
        ("sent", InteractionStatus.SENT),
        ("delivered", InteractionStatus.DELIVERED),
        ("permanent-failure", InteractionStatus.FAILED),
        ("temporary-failure", InteractionStatus.FAILED),
        ("technical-failure", InteractionStatus.FAILED),
        ("returned-letter", None),
        ("Delivered", None),
    ],
)
def test_notify_status_words_map_to_ours(word: str, status: InteractionStatus | None) -> None:
    assert notify_status(word) is status


def test_a_reason_loses_the_recipient_and_payload_values_in_any_case() -> None:
    message = OutboundMessage(
        uuid.uuid4(),
        ChannelType.EMAIL,
        "Ada@Example.org",
        "welcome",
        {"name": "Augusta", "account": {"number": 12345678, "flags": ["VIP-gold"]}, "ok": True},
    )
    sensitive = sensitive_values(message)
    assert "12345678" in sensitive and "True" not in sensitive
    text = "ada@example.ORG: augusta has account 12345678 (vip-gold), a ValidationError"
    cleaned = redact(text, sensitive)
    for value in ("ada", "augusta", "12345678", "gold"):
        assert value not in cleaned.lower()
    assert cleaned.endswith("a ValidationError")


def test_a_reason_loses_anything_shaped_like_an_address_or_phone_number() -> None:
    cleaned = redact("cannot send to grace@example.gov or +1 (613) 555-0101 today", [])
    assert cleaned == "cannot send to [redacted] or [redacted] today"


def test_a_reason_keeps_short_values_readable_and_is_capped() -> None:
    assert redact("ValidationError", ["a", "Va"]) == "ValidationError"
    assert redact("Ada Adams", ["Ada Adams", "act", "Ada"]) == "[redacted]"
    capped = redact("x" * 500, [])
    assert len(capped) == 150
    assert capped.endswith("…")


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (400, PermanentProviderError, "rejected the message"),
        (401, KeyRefused, "credentials"),
        (403, KeyRefused, "credentials"),
        (404, PermanentProviderError, "rejected the message"),
        (429, RateLimited, "rate limiting"),
        (500, TransientProviderError, "notify failed"),
        (503, TransientProviderError, "notify failed"),
        (302, TransientProviderError, "base URL"),
    ],
)
def test_http_answers_map_to_provider_errors(status: int, kind: type, words: str) -> None:
    error = http_error(status, f"{status} SomeError: detail")
    assert type(error) is kind
    assert words in error.reason
    assert error.status_code == status


def test_settings_without_an_api_key_say_so() -> None:
    with pytest.raises(ValueError, match="INTERACTIONS_NOTIFY_API_KEY must be set"):
        NotifyProvider.from_settings(Settings(environment="test"))


def test_settings_build_a_provider_with_their_templates() -> None:
    settings = Settings(
        environment="test",
        notify_api_key=SecretStr(KEY),
        notify_templates={"welcome": str(uuid.uuid4())},
    )
    provider = NotifyProvider.from_settings(settings)
    message = OutboundMessage(uuid.uuid4(), ChannelType.EMAIL, "a@example.org", "other", {})
    # An unmapped template fails before any request, so no server is needed to see the map.
    with pytest.raises(PermanentProviderError, match="'other'"):
        provider.send(message)
    provider.close()


def test_a_base_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        NotifyProvider("api.notification.canada.ca", KEY, {})


@pytest.mark.parametrize(
    "change",
    [{"nonsense": 1}, {"failure_rate": 1.5}, {"latency_ms": True}, {"failure_status": 200}],
)
def test_the_stub_refuses_a_configuration_it_cannot_follow(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StubConfig().updated(change)


def test_a_429_for_the_daily_limit_is_told_apart_from_the_rate_limit() -> None:
    daily = http_error(429, "429 TooManyRequestsError: Exceeded send limits (500) for today")
    rate = http_error(429, "429 RateLimitError: Exceeded rate limit", retry_after=7.0)
    assert type(daily) is DailyLimitReached and "daily limit" in daily.reason
    assert type(rate) is RateLimited and rate.retry_after == 7.0
    assert daily.transient and rate.transient


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(_response({"Retry-After": "12"})) == 12.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after(_response({"Retry-After": later})) or 0) <= 30
    assert retry_after(_response({})) is None
    assert retry_after(_response({"Retry-After": "soon"})) is None


def _response(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return response
