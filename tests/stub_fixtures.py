"""The Notify stub for tests: a real local HTTP server standing in for GOV.UK / GC Notify."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devtools.stub.server import StubNotifyServer
from providers.notify import NotifyProvider

SERVICE_ID = "26785a09-ab16-4eb0-8407-a37497a57506"
# A made-up key in Notify's format, for the stub only.
TEST_API_KEY = f"test_key-{SERVICE_ID}-3d844edf-8d35-48ac-975b-e847b4f122b0"
TEMPLATES = {
    "welcome": "f33517ff-2a88-4f6e-b855-c550268ce08a",
    "reminder": "0f5a1c51-5a5d-4d1f-9e0a-58a2c0c2b6a4",
}


@pytest.fixture
def stub_notify() -> Iterator[StubNotifyServer]:
    """A Notify stub on a free port that verifies bearer tokens signed with TEST_API_KEY."""
    with StubNotifyServer(api_key=TEST_API_KEY) as server:
        yield server


def notify_provider_for(
    stub: StubNotifyServer, api_key: str = TEST_API_KEY, timeout: float = 2.0, pool_size: int = 8
) -> NotifyProvider:
    """A Notify provider pointed at ``stub``, with the test templates mapped."""
    return NotifyProvider(
        stub.url, api_key, TEMPLATES, timeout=timeout, connect_timeout=1.0, pool_size=pool_size
    )


@dataclass(frozen=True)
class ReceivedCallback:
    """One request the callback receiver took: its path, Authorization header and JSON body."""

    path: str
    authorization: str | None
    body: dict[str, Any]


class CallbackReceiver:
    """A tiny HTTP server that keeps every POST it receives, as a webhook endpoint would."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self._received: list[ReceivedCallback] = []
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedCallback]:
        """The callbacks received, once there are ``count`` of them; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} callbacks, got {len(self._received)}"
                self._arrived.wait(left)
            return list(self._received)

    def _keep(self, callback: ReceivedCallback) -> None:
        with self._arrived:
            self._received.append(callback)
            self._arrived.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._keep(
                    ReceivedCallback(self.path, self.headers.get("Authorization"), json.loads(raw))
                )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> CallbackReceiver:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
