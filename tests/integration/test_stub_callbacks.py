"""The stub's delivery receipts: sequences, duplicates, shuffling, keep-alive and failures."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from devtools.stub.callbacks import CALLBACK_WORKERS
from devtools.stub.server import StubNotifyServer
from models.enums import ChannelType, InteractionStatus
from providers.base import OutboundMessage
from providers.notify import NotifyProvider
from tests.stub_fixtures import CallbackReceiver, ReceivedCallback, notify_provider_for

EMAIL = "grace.hopper@example.org"


@pytest.fixture
def stub(stub_notify: StubNotifyServer) -> StubNotifyServer:
    return stub_notify


@pytest.fixture
def notify(stub: StubNotifyServer) -> Iterator[NotifyProvider]:
    provider = notify_provider_for(stub)
    yield provider
    provider.close()


def email() -> OutboundMessage:
    return OutboundMessage(uuid.uuid4(), ChannelType.EMAIL, EMAIL, "welcome", {"name": "Grace"})


def send(notify: NotifyProvider, count: int) -> list[str]:
    """Send ``count`` emails; the stub's notification ids, in sending order."""
    return [notify.send(email()).provider_reference for _ in range(count)]


def statuses_by_notification(received: list[ReceivedCallback]) -> dict[str, list[str]]:
    """Each notification's receipt statuses, in the order they arrived."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for callback in received:
        grouped[callback.body["id"]].append(callback.body["status"])
    return dict(grouped)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)


class KeepAliveReceiver(CallbackReceiver):
    """A receiver on HTTP/1.1 that counts connections; it can be slow, or hang up after each answer.

    Hanging up without a ``Connection: close`` header is what a receiver's idle timeout looks
    like to a client: the next request on that connection fails.
    """

    def __init__(self, delay: float = 0.0, hang_up: bool = False) -> None:
        self.delay, self.hang_up = delay, hang_up
        self.connections = 0
        self._connections_lock = threading.Lock()
        super().__init__()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler_class()
        receiver = self

        class Handler(base):  # type: ignore[valid-type,misc]
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with receiver._connections_lock:
                    receiver.connections += 1

            def do_POST(self) -> None:
                time.sleep(receiver.delay)
                super().do_POST()
                self.close_connection = receiver.hang_up

        return Handler


def test_each_notification_gets_its_receipts_in_the_configured_order(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with CallbackReceiver() as receiver:
        stub.configure(
            callback_url=receiver.url,
            callback_token="callback-secret",
            callback_statuses=["sending", "delivered", "opened"],
        )
        ids = send(notify, 30)
        received = receiver.wait_for(90)

    assert statuses_by_notification(received) == {
        notification_id: ["sending", "delivered", "opened"] for notification_id in ids
    }
    assert {callback.authorization for callback in received} == {"Bearer callback-secret"}
    first = [c.body for c in received if c.body["id"] == ids[0]]
    assert first[0]["completed_at"] is None
    assert first[1]["completed_at"] is not None
    assert first[2]["completed_at"] == first[1]["completed_at"]
    assert {n["status"] for n in stub.notifications()} == {"opened"}
    # The receiver can hold the last callback a moment before the stub counts it as sent.
    wait_until(lambda: stub.stats()["callbacks"]["sent"] == 90)
    assert stub.stats()["callbacks"] == {"sent": 90, "failed": 0}


def test_the_stored_status_follows_the_latest_receipt(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    message = email()
    with CallbackReceiver() as receiver:
        stub.configure(callback_url=receiver.url, callback_statuses=["delivered", "opened"])
        notify.send(message)
        receiver.wait_for(2)
    assert notify.lookup(message.reference).status is InteractionStatus.OPENED

    failed = email()
    with CallbackReceiver() as receiver:
        stub.configure(callback_url=receiver.url, callback_statuses=["permanent-failure"])
        notify.send(failed)
        receiver.wait_for(1)
    assert notify.lookup(failed.reference).status is InteractionStatus.FAILED


def test_every_receipt_is_posted_again_as_many_times_as_asked(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with CallbackReceiver() as receiver:
        stub.configure(
            callback_url=receiver.url,
            callback_statuses=["delivered", "opened"],
            callback_duplicates=2,
        )
        ids = send(notify, 10)
        received = receiver.wait_for(60)
        time.sleep(0.2)
        assert len(receiver.wait_for(60)) == 60, "no receipt beyond the duplicates asked for"

    grouped = statuses_by_notification(received)
    assert grouped == {i: ["delivered"] * 3 + ["opened"] * 3 for i in ids}
    # A duplicate is the same receipt again, byte for byte.
    bodies = Counter(tuple(sorted(c.body.items())) for c in received)
    assert sorted(bodies.values()) == [3] * 20
    # The receiver can hold the last callback a moment before the stub counts it as sent.
    wait_until(lambda: stub.stats()["callbacks"]["sent"] == 60)
    assert stub.stats()["callbacks"] == {"sent": 60, "failed": 0}


def test_shuffled_receipts_all_arrive_in_orders_that_vary(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    statuses = ["sending", "delivered", "opened"]
    with CallbackReceiver() as receiver:
        stub.configure(
            callback_url=receiver.url,
            callback_statuses=statuses,
            callback_duplicates=1,
            callback_shuffle=True,
        )
        ids = send(notify, 40)
        received = receiver.wait_for(240)

    grouped = statuses_by_notification(received)
    assert set(grouped) == set(ids)
    assert all(Counter(order) == Counter(statuses * 2) for order in grouped.values())
    # 40 notifications in one of 90 orders each: all alike would be a broken shuffle.
    assert len({tuple(order) for order in grouped.values()}) > 5
    stored = {n["id"]: n["status"] for n in stub.notifications()}
    assert stored == {i: order[-1] for i, order in grouped.items()}


def test_receipts_travel_on_a_few_keep_alive_connections(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with KeepAliveReceiver() as receiver:
        stub.configure(callback_url=receiver.url, callback_statuses=["delivered", "opened"])
        send(notify, 50)
        receiver.wait_for(100)
        assert 1 <= receiver.connections <= CALLBACK_WORKERS


def test_a_connection_the_receiver_closed_is_replaced_without_losing_a_receipt(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with KeepAliveReceiver(hang_up=True) as receiver:
        stub.configure(callback_url=receiver.url, callback_statuses=["delivered", "opened"])
        ids = send(notify, 20)
        received = receiver.wait_for(40)
        wait_until(lambda: stub.stats()["callbacks"]["sent"] == 40)

    assert statuses_by_notification(received) == {i: ["delivered", "opened"] for i in ids}
    assert stub.stats()["callbacks"] == {"sent": 40, "failed": 0}


def test_a_slow_receiver_does_not_slow_sends_down(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with KeepAliveReceiver(delay=1.0) as receiver:
        stub.configure(callback_url=receiver.url)
        started = time.monotonic()
        send(notify, CALLBACK_WORKERS + 2)
        elapsed = time.monotonic() - started
        receiver.wait_for(CALLBACK_WORKERS + 2, timeout=10)
    # Every callback thread was busy with the receiver while the sends were answered.
    assert elapsed < 1.0


def test_every_failed_post_is_counted_and_the_stub_carries_on(
    stub: StubNotifyServer, notify: NotifyProvider
) -> None:
    with CallbackReceiver(status=500) as receiver:
        stub.configure(callback_url=receiver.url, callback_duplicates=2)
        send(notify, 3)
        receiver.wait_for(9)
        wait_until(lambda: stub.stats()["callbacks"]["failed"] == 9)
    assert stub.stats()["callbacks"] == {"sent": 0, "failed": 9}
    send(notify, 1)
    assert stub.stats()["total"] == 4


def test_the_callback_plan_is_configured_over_http(stub: StubNotifyServer) -> None:
    url = f"{stub.url}/_stub/config"
    plan = {"callback_statuses": ["delivered", "opened"], "callback_duplicates": 1}
    config = requests.post(url, json={**plan, "callback_shuffle": True}, timeout=2).json()
    assert config["callback_statuses"] == ["delivered", "opened"]
    assert (config["callback_duplicates"], config["callback_shuffle"]) == (1, True)
    assert config["callback_status"] == "opened"
    assert requests.post(url, json=config, timeout=2).status_code == 200

    single = requests.post(url, json={"callback_status": "permanent-failure"}, timeout=2).json()
    assert single["callback_statuses"] == ["permanent-failure"]


@pytest.mark.parametrize(
    "change",
    [
        {"callback_statuses": []},
        {"callback_statuses": "delivered"},
        {"callback_statuses": ["delivered", ""]},
        {"callback_statuses": ["delivered"] * 21},
        {"callback_statuses": ["delivered", "opened"], "callback_status": "delivered"},
        {"callback_duplicates": -1},
        {"callback_duplicates": 1.5},
        {"callback_duplicates": 101},
        {"callback_shuffle": "yes"},
        {"callback_shuffle": 1},
    ],
)
def test_a_bad_callback_plan_is_refused(stub: StubNotifyServer, change: dict[str, object]) -> None:
    answer = requests.post(f"{stub.url}/_stub/config", json=change, timeout=2)
    assert answer.status_code == 400
    with pytest.raises(ValueError):
        stub.configure(**change)
