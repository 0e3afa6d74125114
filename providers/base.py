"""The provider port: what the service needs from anything that delivers a message."""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass, field
from typing import Any

from models.enums import ChannelType, InteractionStatus
from providers.pacing import Credential


@dataclass(frozen=True)
class OutboundMessage:
    """One message to hand to a provider; ``reference`` is our interaction UUID."""

    interaction_uuid: uuid.UUID
    channel: ChannelType
    recipient: str
    template_key: str
    payload: dict[str, Any] = field(default_factory=dict)
    # A Notify reply-to (email) or sender (SMS) id for this message, over the template's own.
    reply_to_id: str | None = None

    @property
    def reference(self) -> str:
        """The reference the provider keeps, so it can be asked about the message later."""
        return str(self.interaction_uuid)


@dataclass(frozen=True)
class SendReceipt:
    """What a provider answered when it accepted a message."""

    provider: str
    provider_reference: str
    body: str | None = None
    # An email's subject line as rendered, when the provider says.
    subject: str | None = None


@dataclass(frozen=True)
class LookupResult:
    """What a provider knows of a message we may have sent it."""

    found: bool
    provider_reference: str | None = None
    status: InteractionStatus | None = None


class ProviderError(Exception):
    """A provider refused or failed a send; ``reason`` is safe to store (no personal data)."""

    transient = False

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class TransientProviderError(ProviderError):
    """Worth trying again later: a timeout, a dropped connection, a 429 or a 5xx."""

    transient = True


class RateLimited(TransientProviderError):
    """The provider's per-minute limit (a 429): every sender backs off, no attempt is spent."""

    def __init__(
        self, reason: str, *, status_code: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, status_code=status_code)
        self.retry_after = retry_after


class DailyLimitReached(TransientProviderError):
    """The provider's daily limit: this channel pauses until the limit resets."""


class KeyRefused(ProviderError):
    """The provider refused our credentials (401/403): the key, not the message, is at fault.

    No message can go until the key is fixed, and none is failed for it: the breaker opens.
    """


class PermanentProviderError(ProviderError):
    """Trying again cannot help: a validation error, an invalid address."""


class RecipientRefused(PermanentProviderError):
    """The address itself is refused for good (an SMTP 5xx hard bounce): it is suppressed."""


class AmbiguousProviderError(ProviderError):
    """The provider may or may not have taken the message (a read timeout after sending).

    Neither retrying nor failing is safe: the claim stays held until reconciliation asks
    the provider by reference, or a person decides where the provider cannot be asked.
    """


class LookupUnsupported(Exception):
    """The provider cannot be asked about a message (SMTP): a person must decide."""


class TemplateProblem(ValueError):
    """A template cannot be sent as asked: unknown to the provider, or missing placeholders."""


class NoProviderForChannel(LookupError):
    """No provider is configured for the channel asked for."""


class Provider(abc.ABC):
    """Delivers messages on one or more channels and, where it can, answers lookups."""

    name: str = "provider"
    # The key the provider counts its limits against; None: nothing to pace (the log provider).
    credential: Credential | None = None

    @abc.abstractmethod
    def send(self, message: OutboundMessage) -> SendReceipt:
        """Hand ``message`` to the provider; raise a ProviderError when it does not take it."""

    def lookup(self, reference: str) -> LookupResult:
        """Ask the provider about the message we sent with ``reference``."""
        raise LookupUnsupported(f"{self.name} cannot look messages up by reference")

    def check_template(  # noqa: B027 - accepting every key is the default, not a gap
        self, template_key: str, channel: ChannelType, fields: set[str]
    ) -> None:
        """Raise TemplateProblem unless ``template_key`` can be sent with payloads of ``fields``.

        Asked once per batch, before anything is enqueued; a provider that cannot tell
        accepts every key.
        """
