"""Process bootstrap: settings, logging, the engine and the service, built on first use."""

from __future__ import annotations

from config.settings import Settings, get_settings
from models.session import get_engine, session_factory
from providers.registry import ProviderRegistry
from services.communication import CommunicationService


def build_service(settings: Settings | None = None) -> CommunicationService:
    """A CommunicationService on this process's engine and the configured providers."""
    settings = settings or get_settings()
    return CommunicationService(
        session_factory(get_engine(settings)), ProviderRegistry.from_settings(settings), settings
    )
