"""A provider wrapper that times every call and counts its errors for Prometheus."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from models.enums import ChannelType
from providers.base import (
    AmbiguousProviderError,
    LookupResult,
    LookupUnsupported,
    OutboundMessage,
    Provider,
    ProviderError,
    SendReceipt,
    TransientProviderError,
)
from telemetry import metrics

T = TypeVar("T")


def error_kind(exc: BaseException) -> str:
    """The label an error is counted under."""
    if isinstance(exc, AmbiguousProviderError):
        return "ambiguous"
    if isinstance(exc, TransientProviderError):
        return "transient"
    if isinstance(exc, ProviderError):
        return "permanent"
    return "unexpected"


class InstrumentedProvider(Provider):
    """Delegates to ``inner``, recording each call's latency and failure kind."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.credential = inner.credential

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Send through the wrapped provider."""
        return self._timed("send", lambda: self.inner.send(message))

    def lookup(self, reference: str) -> LookupResult:
        """Look up through the wrapped provider."""
        return self._timed("lookup", lambda: self.inner.lookup(reference))

    def check_template(self, template_key: str, channel: ChannelType, fields: set[str]) -> None:
        """Ask the wrapped provider."""
        self.inner.check_template(template_key, channel, fields)

    def _timed(self, operation: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            result = call()
        except LookupUnsupported:
            raise  # not a call at all: the provider cannot be asked
        except Exception as exc:
            self._observe(operation, started)
            metrics.PROVIDER_ERRORS.labels(self.name, operation, error_kind(exc)).inc()
            raise
        self._observe(operation, started)
        return result

    def _observe(self, operation: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        metrics.PROVIDER_SECONDS.labels(self.name, operation).observe(elapsed)


def instrumented(provider: Provider) -> Provider:
    """``provider`` wrapped for metrics (once)."""
    if isinstance(provider, InstrumentedProvider):
        return provider
    return InstrumentedProvider(provider)
