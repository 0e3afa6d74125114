"""A provider that delivers nothing and logs only what is safe, for development and demos."""

from __future__ import annotations

import logging
import threading

from providers.base import LookupResult, OutboundMessage, Provider, SendReceipt

log = logging.getLogger(__name__)


class LogProvider(Provider):
    """Accepts every message and remembers its reference, so lookups can be answered."""

    name = "log"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, str] = {}

    def send(self, message: OutboundMessage) -> SendReceipt:
        provider_reference = f"log-{message.reference}"
        with self._lock:
            self._sent[message.reference] = provider_reference
        log.info(
            "log provider accepted a message",
            extra={"reference": message.reference, "channel": message.channel.value},
        )
        return SendReceipt(provider=self.name, provider_reference=provider_reference)

    def lookup(self, reference: str) -> LookupResult:
        with self._lock:
            provider_reference = self._sent.get(reference)
        return LookupResult(
            found=provider_reference is not None, provider_reference=provider_reference
        )
