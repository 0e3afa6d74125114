"""Notify's limits on sending: a sliding-window rate limit per key and a daily cap per service."""

from __future__ import annotations

from collections import Counter, deque

from devtools.stub.config import StubConfig
from devtools.stub.errors import StubError, over_daily_limit, rate_limited


class SendLimits:
    """Each key's recent send times and sends today; the caller holds the ledger's lock."""

    def __init__(self, now: float) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._window_size = 0
        self.sent_today: Counter[str] = Counter()
        self.day_started = now

    def new_day(self, now: float) -> None:
        """Start the daily cap's period again now, with nothing sent."""
        self.sent_today.clear()
        self.day_started = now

    def refusal(self, key: str, config: StubConfig, now: float) -> tuple[str, StubError] | None:
        """Why a send by ``key`` is over a limit now (a reason and the answer), or None."""
        self._roll_day(config.daily_reset_seconds, now)
        if config.rate_limit and self._over_rate(key, config, now):
            error = rate_limited(
                config.rate_limit, config.rate_window_seconds, config.retry_after_seconds
            )
            return "rate_limited", error
        if config.daily_limit and self.sent_today[key] >= config.daily_limit:
            return "daily_limit", over_daily_limit(config.daily_limit)
        return None

    def count_accepted(self, key: str) -> None:
        """Count one send accepted towards the key's daily cap."""
        self.sent_today[key] += 1

    def _roll_day(self, period: float, now: float) -> None:
        if now - self.day_started >= period:
            # Periods follow one another from the start, however long no one sent.
            self.day_started += (now - self.day_started) // period * period
            self.sent_today.clear()

    def _over_rate(self, key: str, config: StubConfig, now: float) -> bool:
        # Only the newest `rate_limit` times matter: the window is full when the oldest of
        # them is still inside it, which keeps each check O(1) however hard a client pushes.
        window = self._window(key, config.rate_limit)
        full = len(window) == config.rate_limit and window[0] > now - config.rate_window_seconds
        if not full or config.rate_limit_counts_refused:
            window.append(now)
        return full

    def _window(self, key: str, size: int) -> deque[float]:
        if size != self._window_size:
            # Keeping the newest times lets a limit changed while sending slide on, not restart.
            self._windows = {k: deque(w, maxlen=size) for k, w in self._windows.items()}
            self._window_size = size
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque(maxlen=size)
        return window
