"""Sending at a provider's pace: one limit per credential, shared by every worker through Redis.

Each credential (a provider and a fingerprint of its key) has a schedule of sending slots, one
per ``60 / per_minute`` seconds (the generic cell rate algorithm: Redis keeps the next free
slot). A sender takes the next slot when it is at most ``horizon`` seconds away and sleeps until
it; a slot further off is not taken, and the message is put back with a countdown instead, so
no worker thread waits long and no refused request is ever provoked. What the provider says
back reaches every sender at once: a 429 pushes the schedule back, a daily limit pauses the
channel until the limit resets, a refused key opens the breaker until the key changes or an
operator resets it, and a run of failures (an outage) opens it for a cool-down, after which a
single probe may try. All of it lives in Redis, so it holds across processes and hosts.
"""

from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

PREFIX = "interactions:pace"


class Hold(enum.StrEnum):
    """Why a send must wait, or GO when it may go now."""

    GO = "go"
    RATE = "rate"  # the shared schedule is booked further ahead than a thread may wait
    SLOW_DOWN = "slow_down"  # the provider answered 429: everyone backs off
    DAILY_LIMIT = "daily_limit"  # the provider's daily limit: paused until it resets
    KEY_REFUSED = "key_refused"  # 401/403: the breaker is open until the key changes
    OUTAGE = "outage"  # failures in a row: the breaker is open for a cool-down
    GATED = "gated"  # the gate asked for did not open (or has no copy in Redis): no slot taken


@dataclass(frozen=True)
class Credential:
    """One provider key: what the provider counts its limits against."""

    provider: str
    fingerprint: str
    per_minute: int

    @classmethod
    def of(cls, provider: str, secret: str, per_minute: int) -> Credential:
        """A credential named by a short hash of its secret, never the secret itself."""
        digest = hashlib.sha256(f"{provider}:{secret}".encode()).hexdigest()[:12]
        return cls(provider, digest, per_minute)

    @property
    def key(self) -> str:
        """The Redis key prefix of this credential's state."""
        return f"{PREFIX}:{self.provider}:{self.fingerprint}"


@dataclass(frozen=True)
class Admission:
    """The answer to "may I send?": go after ``wait`` seconds, or wait ``wait`` and ask again."""

    hold: Hold
    wait: float
    reason: str = ""
    probe: bool = False
    failing: bool = False  # failures are being counted: a success must clear them
    # Whether the gate asked for was read in the same call (GATED: closed, or no copy).
    gate_read: bool = False
    # The gate's copy as read when it did not open; None when it had none.
    gate_copy: str | None = None

    @property
    def admitted(self) -> bool:
        """Whether a slot was taken: the caller sleeps ``wait`` and sends."""
        return self.hold is Hold.GO


@dataclass(frozen=True)
class Gate:
    """A condition kept in Redis that must let a send go before any slot is booked for it.

    Its copy reads ``<word>|<not before, epoch ms>`` (0: no time set); it opens when the word is
    ``open_word`` and the time has come. The pacer reads it in the same round trip as the slot,
    so a message held by it costs no slot and no second call.
    """

    key: str
    open_word: str


@dataclass(frozen=True)
class PaceState:
    """What an operator is told about one credential."""

    credential: Credential
    paused_until: dict[str, datetime]  # channel -> when its daily limit resets
    breaker: Hold | None
    breaker_reason: str
    breaker_until: datetime | None  # None with a breaker: until the key changes or a reset
    backoff_until: datetime | None

    @property
    def sending(self) -> bool:
        """Whether nothing stops this credential's sends."""
        return not self.paused_until and self.breaker is None


class Pacer(Protocol):
    """The shared pace of every provider credential."""

    def admit(self, credential: Credential, channel: str, gate: Gate | None = None) -> Admission:
        """Take a slot for one send on ``channel`` (if ``gate`` opens), or say how long to wait."""

    def rate_limited(self, credential: Credential, retry_after: float | None) -> None:
        """The provider answered 429 for its per-minute limit: everyone backs off."""

    def daily_limit_reached(
        self, credential: Credential, channel: str, resume_at: datetime, reason: str
    ) -> bool:
        """Pause ``channel`` on this credential until ``resume_at``; True if newly paused."""

    def key_refused(self, credential: Credential, reason: str) -> bool:
        """Open the breaker until the key changes or a reset; True if newly opened."""

    def failed(self, credential: Credential, reason: str) -> bool:
        """Count a transient failure; True if it opened the breaker for an outage."""

    def succeeded(self, credential: Credential, probe: bool) -> bool:
        """A send went through; True if it closed a breaker (the probe answered)."""

    def state(self, credential: Credential) -> PaceState:
        """Where this credential stands."""

    def reset(self, credential: Credential) -> None:
        """Forget every hold on this credential (an operator's ``provider reset``)."""


@dataclass(frozen=True)
class PaceSettings:
    """How the shared pace behaves; the same on every worker."""

    horizon_seconds: float = 5.0
    # A little under the provider's limit: a thread that wakes a few ms late must not make the
    # next request land inside a window the provider already counts as full.
    headroom: float = 0.98
    failures_to_open: int = 5
    failure_window_seconds: float = 60.0
    cooldown_seconds: float = 30.0
    backoff_seconds: float = 1.0


# KEYS: schedule, backoff, paused hash, breaker hash, probe flag, failure count, and a gate's
# copy when one is asked for (read first: a closed gate answers before anything is booked).
# The last answer is 1 for the probe of a half-open breaker, 2 when failures are being counted
# (so that a success must clear them), else 0; a closed gate's answer carries its copy (false
# when there is none).
# ARGV: now (ms), interval (ms), horizon (ms), probe lifetime (ms), channel, the gate's word.
_ADMIT = """
local now = tonumber(ARGV[1])
if KEYS[7] then
  local copy = redis.call('GET', KEYS[7])
  if not copy then
    return {'gated', 0, false, 0}
  end
  local bar = string.find(copy, '|', 1, true)
  local word = bar and string.sub(copy, 1, bar - 1) or copy
  local at = bar and tonumber(string.sub(copy, bar + 1)) or 0
  if word ~= ARGV[6] or (at or 0) > now then
    return {'gated', 0, copy, 0}
  end
end
local until_ms = tonumber(redis.call('HGET', KEYS[3], ARGV[5] .. ':until') or '0')
if until_ms > now then
  return {'daily_limit', until_ms - now, redis.call('HGET', KEYS[3], ARGV[5] .. ':reason') or '', 0}
end
local probe = 0
local breaker = redis.call('HMGET', KEYS[4], 'kind', 'until', 'reason')
if breaker[1] then
  if breaker[1] == 'key_refused' then
    return {'key_refused', 60000, breaker[3] or '', 0}
  end
  local reopen = tonumber(breaker[2] or '0')
  if reopen > now then
    return {breaker[1], reopen - now, breaker[3] or '', 0}
  end
  if not redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[4]) then
    return {breaker[1], 1000, breaker[3] or '', 0}
  end
  probe = 1
end
local interval = tonumber(ARGV[2])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local backoff = tonumber(redis.call('GET', KEYS[2]) or '0')
local held = 'rate'
if backoff > slot then
  slot = backoff
  held = 'slow_down'
end
if probe == 0 and slot - now > tonumber(ARGV[3]) then
  return {held, slot - now, '', 0}
end
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil(slot + interval - now) + 60000)
if probe == 0 and redis.call('EXISTS', KEYS[6]) == 1 then
  probe = 2
end
return {'go', slot - now, '', probe}
"""


_ADMIT_KEYS = ("schedule", "backoff", "paused", "breaker", "probe", "failures")


class RedisPacer:
    """The shared pace, kept in Redis with one round trip per admission."""

    def __init__(self, client: redis.Redis, settings: PaceSettings | None = None) -> None:
        self._redis = client
        self._settings = settings or PaceSettings()
        self._admit = client.register_script(_ADMIT)

    @classmethod
    def from_url(cls, url: str, settings: PaceSettings | None = None) -> RedisPacer:
        """A pacer on the Redis server at ``url`` (the broker's, usually)."""
        return cls(redis.Redis.from_url(url, socket_timeout=5), settings)

    def admit(self, credential: Credential, channel: str, gate: Gate | None = None) -> Admission:
        """Take a slot for one send on ``channel``, or say how long to wait.

        With ``gate``, the slot is taken only if the gate opens, read in the same round trip.
        """
        interval_ms = 60_000.0 / (max(1, credential.per_minute) * self._settings.headroom)
        keys = [_k(credential, name) for name in _ADMIT_KEYS]
        args: list[Any] = [
            _now_ms(),
            interval_ms,
            self._settings.horizon_seconds * 1000,
            int(self._settings.cooldown_seconds * 1000),
            channel,
        ]
        if gate is not None:
            keys.append(gate.key)
            args.append(gate.open_word)
        hold, wait_ms, reason, flag = self._admit(keys=keys, args=args)
        held = Hold(_text(hold))
        if held is Hold.GATED:
            return Admission(held, 0.0, gate_read=True, gate_copy=_text(reason) or None)
        return Admission(
            held, float(wait_ms) / 1000, _text(reason), flag == 1, flag == 2, gate is not None
        )

    def rate_limited(self, credential: Credential, retry_after: float | None) -> None:
        """Push the whole schedule back by the provider's Retry-After, or a short back-off."""
        seconds = retry_after if retry_after and retry_after > 0 else self._settings.backoff_seconds
        until = _now_ms() + seconds * 1000
        self._redis.set(_k(credential, "backoff"), int(until), px=int(seconds * 1000) + 60_000)

    def daily_limit_reached(
        self, credential: Credential, channel: str, resume_at: datetime, reason: str
    ) -> bool:
        """Pause ``channel`` on this credential until ``resume_at``; True if newly paused."""
        key = _k(credential, "paused")
        until = int(resume_at.timestamp() * 1000)
        with self._redis.pipeline() as pipe:
            pipe.hget(key, f"{channel}:until")
            pipe.hset(key, mapping={f"{channel}:until": until, f"{channel}:reason": reason})
            pipe.pexpireat(key, until + 60_000)
            before, *_ = pipe.execute()
        return before is None or int(before) <= _now_ms()

    def key_refused(self, credential: Credential, reason: str) -> bool:
        """Open the breaker until the key changes or a reset; True if newly opened."""
        key = _k(credential, "breaker")
        with self._redis.pipeline() as pipe:
            pipe.hget(key, "kind")
            pipe.hset(key, mapping={"kind": Hold.KEY_REFUSED.value, "until": 0, "reason": reason})
            before, *_ = pipe.execute()
        return _text(before) != Hold.KEY_REFUSED.value

    def failed(self, credential: Credential, reason: str) -> bool:
        """Count a transient failure; True if it opened the breaker for an outage."""
        count_key, breaker = _k(credential, "failures"), _k(credential, "breaker")
        with self._redis.pipeline() as pipe:
            pipe.incr(count_key)
            pipe.pexpire(count_key, int(self._settings.failure_window_seconds * 1000))
            pipe.hget(breaker, "kind")
            count, _, kind = pipe.execute()
        if _text(kind) == Hold.KEY_REFUSED.value:
            return False
        probing = kind is not None
        if not probing and int(count) < self._settings.failures_to_open:
            return False
        until = _now_ms() + self._settings.cooldown_seconds * 1000
        self._redis.hset(
            breaker, mapping={"kind": Hold.OUTAGE.value, "until": int(until), "reason": reason}
        )
        self._redis.delete(_k(credential, "probe"))
        return not probing

    def succeeded(self, credential: Credential, probe: bool) -> bool:
        """A send went through; True if it closed a breaker (the probe answered)."""
        with self._redis.pipeline() as pipe:
            pipe.delete(_k(credential, "failures"))
            if probe:
                pipe.delete(_k(credential, "breaker"), _k(credential, "probe"))
            results = pipe.execute()
        return probe and bool(results[-1])

    def state(self, credential: Credential) -> PaceState:
        """Where this credential stands."""
        with self._redis.pipeline() as pipe:
            pipe.hgetall(_k(credential, "paused"))
            pipe.hgetall(_k(credential, "breaker"))
            pipe.get(_k(credential, "backoff"))
            paused, breaker, backoff = pipe.execute()
        now = _now_ms()
        fields = {_text(name): _text(value) for name, value in paused.items()}
        resumes = {
            name.removesuffix(":until"): _moment(int(value))
            for name, value in fields.items()
            if name.endswith(":until") and int(value) > now
        }
        found = {_text(name): _text(value) for name, value in breaker.items()}
        kind = Hold(found["kind"]) if "kind" in found else None
        reopen = int(found.get("until") or 0)
        backoff_ms = int(backoff or 0)
        return PaceState(
            credential,
            resumes,
            kind,
            found.get("reason", ""),
            _moment(reopen) if reopen else None,
            _moment(backoff_ms) if backoff_ms > now else None,
        )

    def reset(self, credential: Credential) -> None:
        """Forget every hold on this credential (an operator's ``provider reset``)."""
        names = ("backoff", "paused", "breaker", "probe", "failures")
        self._redis.delete(*(_k(credential, name) for name in names))


class Unpaced:
    """No shared pace: the embedded default, whose broker is not Redis and serves one machine."""

    def admit(self, credential: Credential, channel: str, gate: Gate | None = None) -> Admission:
        """Always go; a gate is not read here (``gate_read`` False: its caller asks it)."""
        return Admission(Hold.GO, 0.0)

    def rate_limited(self, credential: Credential, retry_after: float | None) -> None:
        """Nothing is shared, so nothing to push back."""

    def daily_limit_reached(
        self, credential: Credential, channel: str, resume_at: datetime, reason: str
    ) -> bool:
        """Nothing is shared; report it as new so the caller still logs it."""
        return True

    def key_refused(self, credential: Credential, reason: str) -> bool:
        """Nothing is shared; report it as new so the caller still logs it."""
        return True

    def failed(self, credential: Credential, reason: str) -> bool:
        """Nothing is counted."""
        return False

    def succeeded(self, credential: Credential, probe: bool) -> bool:
        """Nothing to close."""
        return False

    def state(self, credential: Credential) -> PaceState:
        """Always sending."""
        return PaceState(credential, {}, None, "", None, None)

    def reset(self, credential: Credential) -> None:
        """Nothing to forget."""


def _k(credential: Credential, name: str) -> str:
    return f"{credential.key}:{name}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
