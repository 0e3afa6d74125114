"""The delivery receipts the stub posts to a callback URL, from a few threads, in planned order."""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from devtools.stub.ledger import Ledger
from devtools.stub.notifications import receipt_body

log = logging.getLogger(__name__)

CALLBACK_WORKERS = 4
CALLBACK_TIMEOUT_SECONDS = 5.0


@dataclass
class Receipts:
    """One notification's delivery receipts still to post, and where to post them."""

    notification_id: str
    url: str
    token: str | None
    statuses: list[str]
    posted: int = 0


class CallbackSender:
    """Posts delivery receipts from a few daemon threads, each receipt when it falls due.

    A notification's next receipt is queued only once the one before it was posted (or failed),
    so its receipts arrive in the planned order whichever threads carry them, and receipts of
    many notifications interleave instead of one long plan holding a thread.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._due: list[tuple[float, int, Receipts]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._stopped = threading.Event()
        self._started = False

    def schedule(self, receipts: Receipts, delay_seconds: float) -> None:
        """Post ``receipts`` one after another, the first after ``delay_seconds``."""
        with self._ready:
            if not self._started:
                self._start()
            heapq.heappush(
                self._due, (time.monotonic() + delay_seconds, next(self._order), receipts)
            )
            self._ready.notify()

    def stop(self) -> None:
        """Drop what is pending and let the threads end after the post they are in."""
        with self._ready:
            self._stopped.set()
            self._stopped = threading.Event()
            self._due.clear()
            self._started = False
            self._ready.notify_all()

    def _start(self) -> None:
        for number in range(CALLBACK_WORKERS):
            thread = threading.Thread(
                target=self._work,
                args=(self._stopped,),
                name=f"stub-callback-{number}",
                daemon=True,
            )
            thread.start()
        self._started = True

    def _next(self, stopped: threading.Event) -> Receipts | None:
        with self._ready:
            while not stopped.is_set():
                wait = self._due[0][0] - time.monotonic() if self._due else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._ready.wait(wait)
            return None

    def _work(self, stopped: threading.Event) -> None:
        connections = Connections()
        try:
            while (receipts := self._next(stopped)) is not None:
                self._ledger.count_callback(self._post_next(receipts, connections))
                if receipts.posted < len(receipts.statuses):
                    with self._ready:
                        if not stopped.is_set():
                            heapq.heappush(self._due, (0.0, next(self._order), receipts))
                            self._ready.notify()
        finally:
            connections.close()

    def _post_next(self, receipts: Receipts, connections: Connections) -> bool:
        status = receipts.statuses[receipts.posted]
        receipts.posted += 1
        try:
            notification = self._ledger.mark(receipts.notification_id, status)
            if notification is None:
                # A reset forgot the notification; the rest of its receipts have nothing to say.
                receipts.posted = len(receipts.statuses)
                return False
            headers = {"Content-Type": "application/json"}
            if receipts.token:
                headers["Authorization"] = f"Bearer {receipts.token}"
            body = json.dumps(receipt_body(notification)).encode()
            return connections.post(receipts.url, body, headers) < 300
        except Exception as exc:
            # A callback receiver that misbehaves must never take the stub down with it.
            log.warning("stub callback failed: %s: %s", type(exc).__name__, exc)
            return False


# What a keep-alive connection the receiver closed while it sat idle fails with on next use.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_MAX_OPEN_PER_THREAD = 4


class Connections:
    """One thread's keep-alive connections, by scheme and host."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` to ``url`` and return the answer's status."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
        reused = key in self._open
        try:
            return self._exchange(key, target, body, headers)
        except _STALE_CONNECTION:
            # Delivery is at least once, as Notify's is: a fresh connection gets one more try.
            if not reused:
                raise
        return self._exchange(key, target, body, headers)

    def _exchange(
        self, key: tuple[str, str], target: str, body: bytes, headers: dict[str, str]
    ) -> int:
        connection = self._open.get(key)
        if connection is None:
            if len(self._open) >= _MAX_OPEN_PER_THREAD:
                self.close()
            connection_type = (
                http.client.HTTPSConnection if key[0] == "https" else http.client.HTTPConnection
            )
            connection = connection_type(key[1], timeout=CALLBACK_TIMEOUT_SECONDS)
            self._open[key] = connection
        try:
            connection.request("POST", target, body, headers)
            response = connection.getresponse()
            response.read()
        except BaseException:
            # Half a request or an unread answer leaves the connection unfit for the next one.
            connection.close()
            del self._open[key]
            raise
        return response.status

    def close(self) -> None:
        """Close every connection."""
        for connection in self._open.values():
            connection.close()
        self._open.clear()
