"""Process bootstrap: the service and its collaborators, built once per process on first use."""

from __future__ import annotations

import os
import threading

from config.settings import Settings, get_settings
from models.session import get_engine, session_factory
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService

_lock = threading.Lock()
_services: dict[int, CommunicationService] = {}


def build_service(settings: Settings | None = None) -> CommunicationService:
    """A CommunicationService on this process's engine and the configured providers."""
    settings = settings or get_settings()
    return CommunicationService(
        session_factory(get_engine(settings)), ProviderRegistry.from_settings(settings), settings
    )


def service() -> CommunicationService:
    """This process's CommunicationService, shared by its threads (providers pool connections)."""
    pid = os.getpid()
    with _lock:
        if pid not in _services:
            _services.clear()
            _services[pid] = build_service()
        return _services[pid]
