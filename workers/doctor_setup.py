"""The doctor's checks of set-up: names that are no setting, the console, a real test send."""

from __future__ import annotations

import os
import uuid

from flask import Flask

from config.settings import Settings, unknown_variables
from models.enums import ChannelType
from providers.base import NoProviderForChannel, OutboundMessage, ProviderError
from providers.registry import ProviderRegistry
from workers.console_auth import ConsoleMisconfigured, configure_session
from workers.doctor_checks import Check, missing


def check_variable_names(_settings: Settings | None = None) -> list[Check]:
    """Every ``INTERACTIONS_*`` variable names a setting: a misspelt one would be ignored."""
    problems = unknown_variables(os.environ)
    if not problems:
        return [Check("variable names", True, "every INTERACTIONS_* variable is a setting")]
    return [Check("variable names", False, problem) for problem in problems]


def check_console(settings: Settings) -> list[Check]:
    """Whether the support console would start: its secret key, and someone able to sign in."""
    try:
        configure_session(Flask("doctor"), settings)
    except ConsoleMisconfigured as exc:
        return [missing(settings, "console", f"{exc}.")]
    if settings.console_oidc_enabled:
        return [Check("console", True, f"staff sign in through {settings.console_oidc_issuer}")]
    return [Check("console", True, f"{len(settings.console_users)} local user(s)")]


def send_test(settings: Settings, channel: str, recipient: str, template_key: str) -> Check:
    """One real message through the provider configured for ``channel``; nothing is recorded."""
    name = f"test send ({channel})"
    try:
        provider = ProviderRegistry.from_settings(settings).for_channel(ChannelType(channel))
        message = OutboundMessage(uuid.uuid4(), ChannelType(channel), recipient, template_key, {})
        receipt = provider.send(message)
    except (ProviderError, NoProviderForChannel, ValueError) as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    return Check(name, True, f"{provider.name} took it as {receipt.provider_reference}")
