"""Adapters that deliver messages: the port, and one module per provider."""

from providers.base import (
    AmbiguousProviderError,
    LookupResult,
    LookupUnsupported,
    OutboundMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    SendReceipt,
    TransientProviderError,
)

__all__ = [
    "AmbiguousProviderError",
    "LookupResult",
    "LookupUnsupported",
    "OutboundMessage",
    "PermanentProviderError",
    "Provider",
    "ProviderError",
    "SendReceipt",
    "TransientProviderError",
]
