"""The shared pace on a real Redis: slots, back-off, daily pauses, breakers, resets, parking."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise

import pytest
import redis

from broker.parking import ParkingLot
from models.base import utcnow
from providers.pacing import Credential, Hold, PaceSettings, RedisPacer

BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
FAST = PaceSettings(
    horizon_seconds=1.0, failures_to_open=3, failure_window_seconds=10, cooldown_seconds=0.3
)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(BROKER)
    yield connection
    for key in connection.scan_iter("interactions:pace:test-*"):
        connection.delete(key)
    for key in connection.scan_iter("interactions:parked*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def credential() -> Credential:
    """A credential of its own for each test: 600 a minute, one slot each 100 ms."""
    return Credential.of(f"test-{uuid.uuid4().hex[:8]}", "secret", 600)


def test_slots_are_spaced_by_the_rate_and_a_far_one_is_not_taken(
    client: redis.Redis, credential: Credential
) -> None:
    pacer = RedisPacer(client, FAST)
    waits = [pacer.admit(credential, "email") for _ in range(10)]
    assert all(admission.admitted for admission in waits)
    gaps = [b.wait - a.wait for a, b in pairwise(waits)]
    assert all(0.09 <= gap <= 0.11 for gap in gaps), gaps
    far = [pacer.admit(credential, "email") for _ in range(5)]
    refused = [admission for admission in far if not admission.admitted]
    assert refused and all(admission.hold is Hold.RATE for admission in refused)
    # A refused admission books nothing: the next admitted slot follows the last one taken.
    assert refused[0].wait == pytest.approx(far[-1].wait, abs=0.05)


def test_many_threads_never_share_a_slot(client: redis.Redis, credential: Credential) -> None:
    pacer = RedisPacer(client, PaceSettings(horizon_seconds=30))
    taken: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(20):
            asked = time.time()  # the pacer's "now" is read just after this
            admission = pacer.admit(credential, "email")
            with lock:
                taken.append(asked + admission.wait)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots = sorted(taken)
    assert len(slots) == 160
    gaps = [b - a for a, b in pairwise(slots)]
    assert min(gaps) >= 0.095, min(gaps)


def test_a_429_pushes_everyone_back(client: redis.Redis, credential: Credential) -> None:
    pacer = RedisPacer(client, FAST)
    pacer.rate_limited(credential, retry_after=3)
    held = pacer.admit(credential, "sms")
    assert held.hold is Hold.SLOW_DOWN and 2.5 < held.wait <= 3.0
    assert pacer.state(credential).backoff_until is not None


def test_a_daily_limit_pauses_its_channel_until_the_reset(
    client: redis.Redis, credential: Credential
) -> None:
    pacer = RedisPacer(client, FAST)
    resume = utcnow() + timedelta(hours=2)
    assert pacer.daily_limit_reached(credential, "email", resume, "429 TooManyRequestsError")
    assert not pacer.daily_limit_reached(credential, "email", resume, "again")
    paused = pacer.admit(credential, "email")
    assert paused.hold is Hold.DAILY_LIMIT
    assert paused.wait == pytest.approx(7200, abs=5)
    assert pacer.admit(credential, "sms").admitted  # the limit is per channel
    state = pacer.state(credential)
    assert set(state.paused_until) == {"email"} and not state.sending


def test_a_refused_key_stops_sends_until_a_reset(
    client: redis.Redis, credential: Credential
) -> None:
    pacer = RedisPacer(client, FAST)
    assert pacer.key_refused(credential, "403 AuthError: Invalid token")
    assert not pacer.key_refused(credential, "403 again")
    assert pacer.admit(credential, "email").hold is Hold.KEY_REFUSED
    # Failures counted meanwhile do not turn a refused key into a passing outage.
    for _ in range(5):
        assert not pacer.failed(credential, "500")
    assert pacer.state(credential).breaker is Hold.KEY_REFUSED
    pacer.reset(credential)
    assert pacer.admit(credential, "email").admitted
    # A new key is a new credential: nothing held it.
    assert Credential.of(credential.provider, "new secret", 600).key != credential.key


def test_failures_in_a_row_open_the_breaker_and_one_probe_closes_it(
    client: redis.Redis, credential: Credential
) -> None:
    pacer = RedisPacer(client, FAST)
    assert not pacer.failed(credential, "connection refused")
    assert not pacer.failed(credential, "connection refused")
    assert pacer.failed(credential, "connection refused")
    assert pacer.admit(credential, "email").hold is Hold.OUTAGE
    time.sleep(0.35)
    probe = pacer.admit(credential, "email")
    assert probe.admitted and probe.probe
    assert pacer.admit(credential, "email").hold is Hold.OUTAGE  # one probe at a time
    assert pacer.succeeded(credential, probe=True)
    after = pacer.admit(credential, "email")
    assert after.admitted and not after.probe
    assert pacer.state(credential).sending


def test_a_failed_probe_opens_the_breaker_again(
    client: redis.Redis, credential: Credential
) -> None:
    pacer = RedisPacer(client, FAST)
    for _ in range(3):
        pacer.failed(credential, "timeout")
    time.sleep(0.35)
    assert pacer.admit(credential, "email").probe
    assert not pacer.failed(credential, "still down")  # reopened, not newly opened
    assert pacer.admit(credential, "email").hold is Hold.OUTAGE


def test_a_success_clears_the_count_so_failures_must_come_in_a_row(
    client: redis.Redis, credential: Credential
) -> None:
    pacer = RedisPacer(client, FAST)
    pacer.failed(credential, "timeout")
    pacer.failed(credential, "timeout")
    admission = pacer.admit(credential, "email")
    assert admission.failing
    pacer.succeeded(credential, probe=False)
    assert not pacer.admit(credential, "email").failing
    assert not pacer.failed(credential, "timeout")


def test_parking_keeps_one_sealed_copy_per_key(client: redis.Redis) -> None:
    lots = ParkingLot(client, lambda text: text[::-1], lambda text: text[::-1])
    kwargs = {"idempotency_key": "b:1", "recipient": "ada@example.org", "channel": "email"}
    lots.park("notify:abc:email", "b:1", kwargs)
    lots.park("notify:abc:email", "b:1", kwargs)
    lots.park("notify:abc:email", "b:2", {**kwargs, "idempotency_key": "b:2"})
    assert lots.lots() == ["notify:abc:email"] and lots.count("notify:abc:email") == 2
    stored = b"".join(client.hvals("interactions:parked:notify:abc:email"))
    assert b"ada@example.org" not in stored
    chunks = list(lots.messages("notify:abc:email", chunk=1))
    assert sorted(m.idempotency_key for chunk in chunks for m in chunk) == ["b:1", "b:2"]
    assert chunks[0][0].as_kwargs()["recipient"] == "ada@example.org"
    for chunk in chunks:
        lots.forget("notify:abc:email", chunk)
    assert lots.lots() == [] and lots.count("notify:abc:email") == 0
