"""Parking: dispatch messages held in Redis while their provider cannot take them for long.

A message whose provider has paused for its daily limit, or stopped on a refused key, would
otherwise come back every few minutes for hours. Parked, it waits in a hash per lot (a provider
credential and a channel) keyed by its idempotency key, so parking it twice keeps one copy;
its arguments are sealed, as they hold an address and a payload. The release task publishes a
lot's messages again once nothing holds its credential, and only then forgets them: a crash in
between publishes a message twice, which the claim makes harmless.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

INDEX = "interactions:parked"
PURPOSE = "parked.dispatch"


@dataclass(frozen=True)
class ParkedMessage:
    """One parked dispatch task's arguments, ready to publish again."""

    idempotency_key: str
    kwargs: dict[str, Any]

    def as_kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments."""
        return self.kwargs


class ParkingLot:
    """Parked dispatch messages, by lot, in Redis."""

    def __init__(
        self, client: redis.Redis, seal: Callable[[str], str], unseal: Callable[[str], str]
    ) -> None:
        self._redis = client
        self._seal = seal
        self._unseal = unseal

    def park(self, lot: str, idempotency_key: str, kwargs: dict[str, Any]) -> None:
        """Hold one message in ``lot``."""
        sealed = self._seal(json.dumps(kwargs, separators=(",", ":")))
        with self._redis.pipeline() as pipe:
            pipe.hset(_hash(lot), idempotency_key, sealed)
            pipe.sadd(INDEX, lot)
            pipe.execute()

    def lots(self) -> list[str]:
        """Every lot that may hold messages."""
        return sorted(_text(lot) for lot in self._redis.smembers(INDEX))

    def count(self, lot: str) -> int:
        """How many messages ``lot`` holds."""
        return int(self._redis.hlen(_hash(lot)))

    def messages(self, lot: str, chunk: int = 500) -> Iterator[list[ParkedMessage]]:
        """The messages of ``lot``, a chunk at a time."""
        batch: list[ParkedMessage] = []
        for key, sealed in self._redis.hscan_iter(_hash(lot), count=chunk):
            kwargs = json.loads(self._unseal(_text(sealed)))
            batch.append(ParkedMessage(_text(key), kwargs))
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def forget(self, lot: str, messages: list[ParkedMessage]) -> None:
        """Drop messages published again; an emptied lot leaves the index."""
        if messages:
            self._redis.hdel(_hash(lot), *(message.idempotency_key for message in messages))
        if not self._redis.exists(_hash(lot)):
            self._redis.srem(INDEX, lot)


def _hash(lot: str) -> str:
    return f"{INDEX}:{lot}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
