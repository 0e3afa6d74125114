"""The broker's epoch: a token that lives as long as the broker's contents do.

Redis here keeps nothing on disk: restarted, it comes back empty, and every message it held is
gone. A random token set in it when missing marks its lifetime. Whoever records what it
published notes the token; a record that names another token than the broker's own was
published into a broker that has since lost it.
"""

from __future__ import annotations

import uuid

import redis

KEY = "interactions:broker-epoch"


class BrokerEpoch:
    """Reads the broker's current epoch, starting one when there is none."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def current(self) -> str:
        """The token of the broker's present lifetime."""
        self._redis.set(KEY, uuid.uuid4().hex, nx=True)
        value = self._redis.get(KEY)
        return value.decode() if isinstance(value, bytes) else str(value)
