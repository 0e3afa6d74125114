"""A Notify-compatible HTTP server for demos, tests and benchmarks, on the standard library only."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from devtools.stub.auth import split_api_key, verify_token
from devtools.stub.callbacks import CallbackSender, Receipts
from devtools.stub.config import StubConfig
from devtools.stub.errors import StubError
from devtools.stub.ledger import Ledger
from devtools.stub.notifications import SEND_PATHS, created_answer, validated_send
from devtools.stub.transport import StubHTTPServer


class StubNotifyServer:
    """A Notify API v2 look-alike on a background thread: start(), use ``url``, stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        **config: Any,
    ) -> None:
        self._address = (host, port)
        self._key = split_api_key(api_key) if api_key else None
        self._ledger = Ledger(StubConfig().updated(config))
        self._callbacks = CallbackSender(self._ledger)
        self._httpd: StubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StubNotifyServer:
        """Listen and serve on a background thread."""
        self._httpd = StubHTTPServer(self._address, self)
        # A short poll interval keeps stop() quick; the loop wakes at once for new connections.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="stub-notify", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._callbacks.stop()
        self._httpd = None

    @property
    def url(self) -> str:
        """The base URL to give a Notify client."""
        if self._httpd is None:
            raise RuntimeError("the stub is not running; call start() first")
        return f"http://{self._httpd.server_name}:{self._httpd.server_port}"

    def __enter__(self) -> StubNotifyServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """What GET /_stub/stats answers: totals, duplicates and receipts per reference."""
        return self._ledger.stats()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change how the stub behaves (see StubConfig); the whole configuration comes back."""
        with self._ledger.lock:
            self._ledger.config = self._ledger.config.updated(changes)
            return asdict(self._ledger.config)

    def reset(self) -> None:
        """Forget every notification and count, and go back to the configuration it started with."""
        with self._ledger.lock:
            self._ledger.clear()
            self._ledger.config = self._ledger.initial

    def notifications(self, reference: str | None = None) -> list[dict[str, Any]]:
        """The notifications stored (with ``reference``, when given), newest first."""
        return self._ledger.find(reference)

    def route(
        self, method: str, path: str, query: str, raw: bytes, authorization: str
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request: a status and a JSON body (or raise StubError)."""
        if path.startswith("/_stub/"):
            return self._control(method, path, raw)
        if path == "/_status" and method == "GET":
            return 200, {"status": "ok"}
        if path.startswith("/v2/"):
            self._authorise(authorization)
            if method == "POST" and path in SEND_PATHS:
                return self._send(path, raw)
            if method == "GET":
                return self._read(path, query)
        raise StubError(404, "NoResultFound", "The requested URL was not found on the server.")

    def _authorise(self, header: str) -> None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise StubError(401, "AuthError", "Unauthorized: authentication token must be provided")
        if self._key is not None:
            problem = verify_token(token.strip(), *self._key, time.time())
            if problem is not None:
                raise StubError(403, "AuthError", problem)

    def _send(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        request = validated_send(path, _json(raw))
        config = self._ledger.config
        _pause(config.latency_ms)
        notification = self._ledger.admit(request, self.url)
        if config.callback_url:
            with self._ledger.lock:
                plan = config.callback_plan(self._ledger.random)
            receipts = Receipts(
                notification["id"], config.callback_url, config.callback_token, plan
            )
            # Queued, not posted: a slow or dead receiver never slows a send down.
            self._callbacks.schedule(receipts, config.callback_delay_ms / 1000)
        # The receipt is already counted: a client that gives up now leaves a message delivered.
        _pause(config.hold_ms)
        return 201, created_answer(notification, self.url)

    def _read(self, path: str, query: str) -> tuple[int, dict[str, Any]]:
        _pause(self._ledger.config.latency_ms)
        if path == "/v2/notifications":
            reference = parse_qs(query).get("reference", [None])[0]
            found = self._ledger.find(reference)
            return 200, {
                "notifications": found,
                "links": {"current": f"{self.url}{path}{'?' + query if query else ''}"},
            }
        notification = self._ledger.get(path.removeprefix("/v2/notifications/"))
        if path.startswith("/v2/notifications/") and notification is not None:
            return 200, notification
        raise StubError(404, "NoResultFound", "No result found")

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if path == "/_stub/stats" and method == "GET":
            return 200, self.stats()
        if path == "/_stub/reset" and method == "POST":
            self.reset()
            return 200, {"reset": True}
        if path == "/_stub/config" and method == "GET":
            with self._ledger.lock:
                return 200, asdict(self._ledger.config)
        if path == "/_stub/config" and method == "POST":
            changes = _json(raw)
            if not isinstance(changes, dict):
                raise StubError(400, "ValidationError", "the configuration must be a JSON object")
            try:
                return 200, self.configure(**changes)
            except ValueError as exc:
                raise StubError(400, "ValidationError", str(exc)) from None
        raise StubError(404, "NoResultFound", "The requested URL was not found on the server.")


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise StubError(400, "ValidationError", "Invalid JSON supplied in POST data") from None


def _pause(milliseconds: float) -> None:
    if milliseconds > 0:
        time.sleep(milliseconds / 1000)
