"""The dispatch's side of a provider's pace: wait for a slot, and pass on what the provider said.

A send waits for its slot before it claims anything, so a throttled message holds no claim and
spends no attempt. What the provider answers (a 429, its daily limit, a refused key, an outage)
is told to the shared pacer, so every worker on every host slows, pauses or stops at once, and
the message is deferred rather than failed. The first worker to see a daily limit or a refused
key says so in the log; the others stay quiet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from config.settings import Settings
from models.base import utcnow
from models.enums import ChannelType
from providers.base import DailyLimitReached, KeyRefused, Provider, ProviderError, RateLimited
from providers.pacing import Admission, Gate, Hold, Pacer, PaceState, Unpaced
from services.errors import Deferred
from telemetry import metrics

log = logging.getLogger(__name__)
# How soon a message held by a refused key asks again: the key may be fixed at any time.
KEY_REFUSED_RETRY_SECONDS = 60.0
GO_NOW = Admission(Hold.GO, 0.0)
# How late a thread may wake for its slot and still take it; and how often it books again.
LATE_WAKE_SECONDS = 0.010
MAX_REBOOKINGS = 3


class PaceKeeper:
    """Admits sends at the shared pace and reports the provider's push-back to every worker."""

    def __init__(
        self,
        pacer: Pacer | None,
        settings: Settings,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._pacer: Pacer = pacer or Unpaced()
        self._settings = settings
        self._sleep = sleep
        self._clock = clock

    def admit(
        self, provider: Provider, channel: ChannelType, gate: Gate | None = None
    ) -> Admission:
        """Wait for this send's slot, or raise Deferred when it is not near.

        With ``gate``, a closed gate is answered (``Hold.GATED``) before any slot is taken,
        and it is read again with each booking; the gate is the caller's to ask when the
        answer says it was not read (``gate_read`` False: the provider is not paced).
        """
        credential = provider.credential
        if credential is None:
            return GO_NOW
        for _ in range(MAX_REBOOKINGS):
            admission = self._pacer.admit(credential, channel.value, gate)
            if admission.hold is Hold.GATED:
                return admission
            if not admission.admitted:
                metrics.send_deferred(provider.name, admission.hold)
                raise Deferred(admission.hold, admission.wait, admission.reason)
            if admission.wait <= 0:
                return admission
            metrics.send_paced(provider.name, admission.wait)
            due = time.monotonic() + admission.wait
            self._sleep(admission.wait)
            # A thread woken late would send close behind the next slot's sender and crowd the
            # provider's window: it gives its slot up and books another.
            if time.monotonic() - due <= LATE_WAKE_SECONDS:
                return admission
        return admission

    def succeeded(self, provider: Provider, admission: Admission) -> None:
        """A send went through: clear a failure count, close a breaker the probe tested."""
        credential = provider.credential
        if credential is None or not (admission.probe or admission.failing):
            return
        if self._pacer.succeeded(credential, admission.probe):
            log.warning("%s answers again; sending resumes", provider.name)

    def pushed_back(self, provider: Provider, channel: ChannelType, exc: ProviderError) -> Deferred:
        """Tell every worker what the provider said; the deferral of this message."""
        credential = provider.credential
        if credential is None:
            metrics.provider_pushed_back(provider.name, Hold.SLOW_DOWN)
            return Deferred(Hold.SLOW_DOWN, self._settings.retry_backoff_base_seconds, exc.reason)
        if isinstance(exc, DailyLimitReached):
            resume = self.next_daily_reset()
            if self._pacer.daily_limit_reached(credential, channel.value, resume, exc.reason):
                metrics.provider_pushed_back(provider.name, Hold.DAILY_LIMIT)
                log.warning(
                    "%s daily limit reached for %s; sending paused until %s",
                    provider.name,
                    channel.value,
                    resume.isoformat(timespec="minutes"),
                )
            wait = max(1.0, (resume - self._clock()).total_seconds())
            return Deferred(Hold.DAILY_LIMIT, wait, exc.reason, resume)
        if isinstance(exc, KeyRefused):
            if self._pacer.key_refused(credential, exc.reason):
                metrics.provider_pushed_back(provider.name, Hold.KEY_REFUSED)
                log.error("%s refused our key; sending stopped: %s", provider.name, exc.reason)
            return Deferred(Hold.KEY_REFUSED, KEY_REFUSED_RETRY_SECONDS, exc.reason)
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        metrics.provider_pushed_back(provider.name, Hold.SLOW_DOWN)
        self._pacer.rate_limited(credential, retry_after)
        return Deferred(Hold.SLOW_DOWN, retry_after or 1.0, exc.reason)

    def failed(self, provider: Provider, reason: str) -> None:
        """Count a transient failure; enough in a row open the breaker for an outage."""
        credential = provider.credential
        if credential is not None and self._pacer.failed(credential, reason):
            metrics.provider_pushed_back(provider.name, Hold.OUTAGE)
            log.error("%s looks down; sending paused for a cool-down: %s", provider.name, reason)

    def next_daily_reset(self) -> datetime:
        """When the provider's daily limit next resets (its time of day, in its zone)."""
        zone = ZoneInfo(self._settings.notify_daily_reset_timezone)
        hour, minute, second = (
            [int(part) for part in self._settings.notify_daily_reset.split(":")] + [0]
        )[:3]
        local = self._clock().astimezone(zone)
        reset = local.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if reset <= local:
            reset += timedelta(days=1)
        return reset.astimezone(self._clock().tzinfo)


def describe(provider: str, state: PaceState, channel: str | None = None) -> str | None:
    """What holds a provider's sends, in words for an operator; None when nothing does."""
    paused = state.paused_until
    resumes = paused.get(channel) if channel else min(paused.values(), default=None)
    if state.breaker is Hold.KEY_REFUSED:
        return (
            f"stopped: {provider} refused our key ({state.breaker_reason}); fix the key, or run "
            f"`interactions provider reset {provider}` once it is fixed"
        )
    if resumes is not None:
        return f"paused: daily limit reached, resumes at {_when(resumes)}"
    if state.breaker is Hold.OUTAGE:
        after = f" after {_when(state.breaker_until)}" if state.breaker_until else ""
        return f"paused: {provider} looks down ({state.breaker_reason}); trying again{after}"
    if state.backoff_until is not None:
        return f"slowed: {provider} asked us to slow down until {_when(state.backoff_until)}"
    return None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
