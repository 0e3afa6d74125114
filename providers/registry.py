"""Which provider serves which channel, built from settings."""

from __future__ import annotations

from collections.abc import Mapping

from config.settings import Settings
from models.enums import ChannelType
from providers.base import NoProviderForChannel, Provider
from providers.instrumented import instrumented
from providers.log import LogProvider
from providers.notify import NotifyProvider
from providers.smtp import SmtpProvider


class ProviderRegistry:
    """Maps each channel to the provider that delivers on it."""

    def __init__(self, providers: Mapping[ChannelType, Provider]) -> None:
        self._providers = dict(providers)

    def for_channel(self, channel: ChannelType) -> Provider:
        """The provider for ``channel``; a clear error when none is configured."""
        try:
            return self._providers[channel]
        except KeyError:
            raise NoProviderForChannel(f"no provider is configured for {channel.value}") from None

    def all(self) -> list[Provider]:
        """Each configured provider once."""
        return list({id(provider): provider for provider in self._providers.values()}.values())

    @classmethod
    def single(cls, provider: Provider) -> ProviderRegistry:
        """One provider for every channel that is sent (email, SMS, system alerts)."""
        return cls({c: provider for c in (ChannelType.EMAIL, ChannelType.SMS, ChannelType.SYSTEM)})

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        """The providers the settings name for email and SMS; system alerts go to the log."""
        built: dict[str, Provider] = {}

        def named(name: str) -> Provider:
            if name not in built:
                built[name] = instrumented(_build(name, settings))
            return built[name]

        return cls(
            {
                ChannelType.EMAIL: named(settings.email_provider),
                ChannelType.SMS: named(settings.sms_provider),
                ChannelType.SYSTEM: named("log"),
            }
        )


def _build(name: str, settings: Settings) -> Provider:
    if name == "notify":
        return NotifyProvider.from_settings(settings)
    if name == "smtp":
        return SmtpProvider.from_settings(settings)
    return LogProvider()
