"""Each client's request rate, counted in Redis so every API process and host shares it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

PREFIX = "interactions:api:rate"


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on, and if not how long until it may."""

    allowed: bool
    retry_after: int = 0


class RateLimit:
    """A fixed window per client: one INCR (and its expiry) per request."""

    def __init__(
        self,
        client: redis.Redis | None,
        limit: int,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._limit = limit
        self._window = window_seconds
        self._clock = clock

    @property
    def counted(self) -> bool:
        """Whether requests are counted at all (not without Redis)."""
        return self._redis is not None

    def window(self) -> tuple[int, int]:
        """The current window's number and how long its count is kept, in seconds."""
        return int(self._clock() // self._window), self._window + 1

    def check(self, caller: str) -> Verdict:
        """Count one request of ``caller``; refused once it is over the window's limit."""
        if self._redis is None:
            return Verdict(True)
        window, expiry = self.window()
        key = f"{PREFIX}:{caller}:{window}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, expiry)
        return self.verdict(int(pipe.execute()[0]), window)

    def verdict(self, count: int, window: int) -> Verdict:
        """The answer for the ``count``-th request of ``window`` (counted by whoever counted)."""
        if count <= self._limit:
            return Verdict(True)
        return Verdict(False, max(1, math.ceil((window + 1) * self._window - self._clock())))
