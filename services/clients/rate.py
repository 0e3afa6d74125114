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

    def check(self, caller: str) -> Verdict:
        """Count one request of ``caller``; refused once it is over the window's limit."""
        if self._redis is None:
            return Verdict(True)
        now = self._clock()
        window = int(now // self._window)
        key = f"{PREFIX}:{caller}:{window}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self._window + 1)
        count = int(pipe.execute()[0])
        if count <= self._limit:
            return Verdict(True)
        return Verdict(False, max(1, math.ceil((window + 1) * self._window - now)))
