"""The GOV.UK Notify / GC Notify API v2 adapter: sends email and SMS, looks messages up."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies
from urllib3.exceptions import MaxRetryError

from config.settings import SenderIdentity, Settings
from models.enums import ChannelType, InteractionStatus
from models.redaction import REDACTED, redact_personal
from providers.base import (
    AmbiguousProviderError,
    DailyLimitReached,
    KeyRefused,
    LookupResult,
    OutboundMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    RateLimited,
    SendReceipt,
    TemplateProblem,
    TransientProviderError,
)
from providers.pacing import Credential

# Notify refuses tokens issued more than 30 s ago; reusing one for 10 s leaves a wide margin.
TOKEN_REUSE_SECONDS = 10
# The error name Notify gives a 429 for its daily limit; its per-minute limit is RateLimitError.
DAILY_LIMIT_ERROR = "TooManyRequestsError"
MAX_DETAIL_CHARS = 150

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_KEY_FORMAT = (
    "a Notify API key has the form '{key name}-{service id}-{secret}', "
    "where the service id and the secret are each a 36-character UUID"
)
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# Shorter values identify no one, and erasing every "a" would leave the reason unreadable.
_SHORTEST_REDACTED = 3

_ENDPOINTS = {
    ChannelType.EMAIL: ("/v2/notifications/email", "email_address"),
    ChannelType.SMS: ("/v2/notifications/sms", "phone_number"),
}
# The sender identity fields Notify takes on each channel's endpoint.
_SENDER_FIELDS = {
    ChannelType.EMAIL: ("email_reply_to_id", "one_click_unsubscribe_url"),
    ChannelType.SMS: ("sms_sender_id",),
}
# The field a message's own reply-to id fills, on each channel.
_REPLY_TO_FIELD = {ChannelType.EMAIL: "email_reply_to_id", ChannelType.SMS: "sms_sender_id"}
_STATUSES = {
    "created": InteractionStatus.SENT,
    "sending": InteractionStatus.SENT,
    "pending": InteractionStatus.SENT,
    "sent": InteractionStatus.SENT,
    "delivered": InteractionStatus.DELIVERED,
    "permanent-failure": InteractionStatus.FAILED,
    "temporary-failure": InteractionStatus.FAILED,
    "technical-failure": InteractionStatus.FAILED,
    # Notify itself tracks no opens; Notify-compatible services that do report "opened".
    "opened": InteractionStatus.OPENED,
}


def notify_status(value: str) -> InteractionStatus | None:
    """Our status for one of Notify's status words; None for a word we do not track."""
    return _STATUSES.get(value)


@dataclass(frozen=True)
class ApiKey:
    """A Notify API key, split into the service id (the token's issuer) and the signing secret."""

    service_id: str
    secret: str = field(repr=False)

    @classmethod
    def parse(cls, key: str) -> ApiKey:
        """Split ``key``; the error explains the format and never repeats the key."""
        key = key.strip()
        named = len(key) > 73
        if len(key) < 73 or key[-37] != "-" or (named and key[-74] != "-"):
            raise ValueError(_KEY_FORMAT)
        service_id, secret = key[-73:-37], key[-36:]
        if not (_UUID.match(service_id) and _UUID.match(secret)):
            raise ValueError(_KEY_FORMAT)
        return cls(service_id, secret)


def notify_token(key: ApiKey, issued_at: int) -> str:
    """The bearer token Notify expects: HS256 over ``{"iss": service id, "iat": issued_at}``."""
    return jwt.encode({"iss": key.service_id, "iat": issued_at}, key.secret, algorithm="HS256")


class TokenCache:
    """Hands out one token for up to TOKEN_REUSE_SECONDS, to many threads, then signs another."""

    def __init__(self, key: ApiKey, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._issued_at = 0

    def token(self) -> str:
        """A token no older than TOKEN_REUSE_SECONDS."""
        now = self._clock()
        with self._lock:
            age = now - self._issued_at
            # A clock stepped backwards would make a cached token look issued in the future.
            if not self._token or age >= TOKEN_REUSE_SECONDS or age < 0:
                self._issued_at = int(now)
                self._token = notify_token(self._key, self._issued_at)
            return self._token


def sensitive_values(message: OutboundMessage) -> list[str]:
    """The recipient and every scalar in the payload: what a stored reason must never hold."""
    return [message.recipient, *_scalars(message.payload)]


def _scalars(value: object) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


def redact(text: str, sensitive: Iterable[str], limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` without any of ``sensitive`` (in any case), addresses or phone numbers, capped."""
    values = sorted({v for v in sensitive if len(v) >= _SHORTEST_REDACTED}, key=len, reverse=True)
    if values:
        # One pass, longest first: a value inside a longer one, or inside the marker, stays put.
        pattern = "|".join(re.escape(value) for value in values)
        text = re.sub(pattern, REDACTED, text, flags=re.IGNORECASE)
    text = redact_personal(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_detail(response: requests.Response, sensitive: Iterable[str]) -> str:
    """Notify's ``errors`` as 'Kind: message; ...', redacted; never the raw body."""
    try:
        errors = response.json().get("errors")
        parts = [f"{e.get('error', 'Error')}: {e.get('message', '')}" for e in errors]
    except (ValueError, AttributeError, TypeError):
        return f"{response.status_code} with no readable error"
    return redact(f"{response.status_code} {'; '.join(parts)}", sensitive)


def http_error(
    status: int, detail: str, action: str = "the message", retry_after: float | None = None
) -> ProviderError:
    """The provider error for an HTTP answer other than success; ``detail`` is already safe."""
    if status in (401, 403):
        return KeyRefused(
            f"notify refused our credentials ({detail}); check the API key", status_code=status
        )
    if status == 429 and DAILY_LIMIT_ERROR in detail:
        return DailyLimitReached(f"notify's daily limit is reached ({detail})", status_code=status)
    if status == 429:
        return RateLimited(f"notify is rate limiting us ({detail})", retry_after=retry_after)
    if status >= 500:
        return TransientProviderError(f"notify failed ({detail})", status_code=status)
    if status >= 400:
        return PermanentProviderError(f"notify rejected {action} ({detail})", status_code=status)
    # A redirect or other surprise means a misconfigured URL, which someone may yet fix.
    return TransientProviderError(
        f"notify answered an unexpected {status}; check the base URL", status_code=status
    )


def retry_after(response: requests.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number or an HTTP date), if any."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def connection_error(exc: requests.ConnectionError) -> ProviderError:
    """Transient when the request never left (no connection); ambiguous when one dropped later."""
    # With read retries off, urllib3 only gives up with MaxRetryError before anything is sent;
    # a connection aborted while waiting for the answer comes through bare.
    cause = exc.args[0] if exc.args else None
    if isinstance(exc, requests.ConnectTimeout) or isinstance(cause, MaxRetryError):
        return TransientProviderError(f"could not connect to notify ({type(exc).__name__})")
    return AmbiguousProviderError(
        "the connection to notify dropped after the message was sent; it may have been accepted"
    )


class NotifyProvider(Provider):
    """Talks to the Notify API v2 over one pooled HTTP session shared by every thread."""

    name = "notify"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        templates: Mapping[str, str],
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        pool_size: int = 32,
        per_minute: int = 3000,
        sender_identities: Mapping[str, SenderIdentity] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the Notify base URL must be an http:// or https:// URL")
        self._base_url = base_url.rstrip("/")
        self._tokens = TokenCache(ApiKey.parse(api_key))
        self._templates = dict(templates)
        self._identities = dict(sender_identities or {})
        self._timeouts = (connect_timeout, timeout)
        self._session = _pooled_session(pool_size, self._base_url)
        self._adapter = self._session.get_adapter(self._base_url)
        self._headers = {name: str(value) for name, value in self._session.headers.items()}
        verify = self._session.verify
        self._verify: bool | str = True if verify is None else verify
        self.credential = Credential.of(self.name, api_key, per_minute)

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyProvider:
        """The provider that the ``notify_*`` and ``provider_*`` settings describe."""
        if settings.notify_api_key is None:
            raise ValueError("INTERACTIONS_NOTIFY_API_KEY must be set to send through Notify")
        return cls(
            settings.notify_base_url,
            settings.notify_api_key.get_secret_value(),
            settings.notify_templates,
            timeout=settings.provider_timeout_seconds,
            connect_timeout=settings.provider_connect_timeout_seconds,
            pool_size=settings.provider_pool_size,
            per_minute=settings.notify_rate_per_minute,
            sender_identities=settings.notify_sender_identity,
        )

    def check_template(self, template_key: str, channel: ChannelType, fields: set[str]) -> None:
        """The key must map to a Notify template id; its placeholders live at Notify."""
        if template_key not in self._templates:
            known = ", ".join(sorted(self._templates)) or "none"
            raise TemplateProblem(
                f"template {template_key!r} is not mapped to a Notify template "
                f"(INTERACTIONS_NOTIFY_TEMPLATES knows: {known})"
            )

    def send(self, message: OutboundMessage) -> SendReceipt:
        """POST the message to Notify; the interaction UUID travels as Notify's ``reference``."""
        path, recipient_field = self._endpoint(message)
        body = {
            recipient_field: message.recipient,
            "template_id": self._template_id(message.template_key),
            "personalisation": message.payload,
            "reference": message.reference,
            **self._sender_fields(message),
        }
        try:
            response = self._post(path, body)
        except requests.ReadTimeout as exc:
            raise AmbiguousProviderError(
                f"notify did not answer within {self._timeouts[1]:g}s; it may have the message"
            ) from exc
        except requests.ConnectionError as exc:
            raise connection_error(exc) from exc
        except requests.RequestException as exc:
            # A broken answer (truncated, undecodable) still means the request arrived.
            raise AmbiguousProviderError(
                f"notify's answer could not be read ({type(exc).__name__}); it may have the message"
            ) from exc
        if not 200 <= response.status_code < 300:
            detail = error_detail(response, sensitive_values(message))
            raise http_error(response.status_code, detail, retry_after=retry_after(response))
        return _receipt(response)

    def lookup(self, reference: str) -> LookupResult:
        """Ask Notify for the notification sent with ``reference``; the newest one if several."""
        try:
            response = self._session.get(
                f"{self._base_url}/v2/notifications",
                params={"reference": reference},
                headers=self._auth(),
                timeout=self._timeouts,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # A lookup changes nothing, so any failure is worth trying again.
            raise TransientProviderError(
                f"notify could not be asked about a message ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            detail = error_detail(response, [reference])
            raise http_error(response.status_code, detail, action="the lookup")
        return _lookup_result(response)

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def _post(self, path: str, body: dict[str, Any]) -> requests.Response:
        """POST ``body`` as JSON on the pooled connections, the answer read whole.

        The request is built here and handed straight to the session's adapter: what
        ``Session.post`` adds around it (URL parsing and quoting, cookies, hooks, redirects,
        merged settings) is half the CPU of a send and none of it applies to a fixed API URL
        with its own Authorization header. Timeouts, the proxy, TLS verification and the
        errors raised are the session's own.
        """
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = self._base_url + path
        prepared.body = json.dumps(body, allow_nan=False).encode()
        prepared.headers = CaseInsensitiveDict(
            {
                **self._headers,
                **self._auth(),
                "Content-Type": "application/json",
                "Content-Length": str(len(prepared.body)),
            }
        )
        prepared.hooks = {"response": []}
        response = self._adapter.send(
            prepared,
            timeout=self._timeouts,
            verify=self._verify,
            proxies=self._session.proxies,
        )
        # Read now, as the session would: a broken answer raises here, and the connection
        # goes back to the pool.
        _ = response.content
        return response

    def _endpoint(self, message: OutboundMessage) -> tuple[str, str]:
        try:
            return _ENDPOINTS[message.channel]
        except KeyError:
            raise PermanentProviderError(
                f"notify cannot deliver {message.channel.value} messages"
            ) from None

    def _template_id(self, template_key: str) -> str:
        try:
            return self._templates[template_key]
        except KeyError:
            raise PermanentProviderError(
                f"no Notify template is mapped for template key {template_key!r}"
            ) from None

    def _sender_fields(self, message: OutboundMessage) -> dict[str, str]:
        """The template's sender identity for the message's channel, its own reply-to first."""
        identity = self._identities.get(message.template_key) or SenderIdentity()
        configured = identity.model_dump(exclude_none=True)
        if message.reply_to_id is not None and message.channel in _REPLY_TO_FIELD:
            configured[_REPLY_TO_FIELD[message.channel]] = message.reply_to_id
        wanted = _SENDER_FIELDS.get(message.channel, ())
        return {name: value for name, value in configured.items() if name in wanted}

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.token()}"}


def _pooled_session(pool_size: int, base_url: str) -> requests.Session:
    session = requests.Session()
    # What requests would read from the environment on every request (about a third of a
    # millisecond of CPU per message), read once: the proxy for the one host this session
    # talks to, and the CA bundle. No .netrc: our own Authorization header must stand.
    session.trust_env = False
    session.proxies.update(get_environ_proxies(base_url))
    bundle = next(filter(None, map(os.environ.get, _CA_BUNDLE_VARIABLES)), None)
    if bundle:
        session.verify = bundle
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": "interaction-service"})
    return session


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _receipt(response: requests.Response) -> SendReceipt:
    data = _json_object(response)
    notification_id = data.get("id") if data else None
    if not data or not isinstance(notification_id, str) or not notification_id:
        raise AmbiguousProviderError(
            f"notify answered {response.status_code} without a notification id; "
            "it may have the message",
            status_code=response.status_code,
        )
    content = data.get("content")
    body = content.get("body") if isinstance(content, dict) else None
    subject = content.get("subject") if isinstance(content, dict) else None
    return SendReceipt(
        provider=NotifyProvider.name,
        provider_reference=notification_id,
        body=body if isinstance(body, str) else None,
        subject=subject if isinstance(subject, str) else None,
    )


def _lookup_result(response: requests.Response) -> LookupResult:
    data = _json_object(response)
    notifications = data.get("notifications") if data else None
    if not isinstance(notifications, list):
        raise TransientProviderError(
            "notify answered a lookup with an unexpected body", status_code=response.status_code
        )
    if not notifications or not isinstance(notifications[0], dict):
        return LookupResult(found=False)
    newest = notifications[0]
    status = newest.get("status")
    return LookupResult(
        found=True,
        provider_reference=str(newest.get("id")),
        status=notify_status(status) if isinstance(status, str) else None,
    )
