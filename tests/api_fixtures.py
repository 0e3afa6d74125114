"""The API under test: an app on the test database, a recording publisher, keys to call it with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.clients.identity import Scope
from services.clients.keys import ApiKeys


class RecordingPublisher:
    """Keeps what would have gone to the broker."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish(self, messages: Sequence[Any]) -> None:
        self.messages.extend(message.as_kwargs() for message in messages)


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header for ``secret``."""
    return {"Authorization": f"Bearer {secret}"}


def new_key(keys: ApiKeys, client: str, *scopes: Scope) -> str:
    """A new key's secret."""
    return keys.create(client, frozenset(scopes or tuple(Scope))).secret
