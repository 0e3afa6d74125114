"""A Notify-compatible HTTP server for demos, tests and benchmarks, on the standard library only."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, replace
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from devtools.stub.auth import split_api_key, token_issuer, verify_token
from devtools.stub.callbacks import CallbackSender, Receipts
from devtools.stub.config import StubConfig
from devtools.stub.errors import HangUp, StubError, key_revoked, server_error
from devtools.stub.ledger import Ledger
from devtools.stub.notifications import SEND_PATHS, created_answer, validated_send
from devtools.stub.transport import StubHTTPServer

log = logging.getLogger(__name__)


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
        # The listener and the outage's timer change under this lock, never under the ledger's.
        self._lifecycle = threading.Lock()
        self._running = False
        self._httpd: StubHTTPServer | None = None
        self._served: list[StubHTTPServer] = []
        self._outage_timer: threading.Timer | None = None
        self._outage_generation = 0

    def start(self) -> StubNotifyServer:
        """Listen and serve on a background thread (refusing at once if an outage is configured)."""
        with self._lifecycle:
            self._listen()
            self._running = True
        if self._ledger.config.outage_mode is not None:
            self._begin_outage()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        with self._lifecycle:
            if not self._running:
                return
            self._running = False
            self._cancel_outage_timer()
            self._stop_listening(spare_thread=None)
            self._served.clear()
        self._callbacks.stop()

    @property
    def url(self) -> str:
        """The base URL to give a Notify client."""
        if not self._running:
            raise RuntimeError("the stub is not running; call start() first")
        return f"http://{self._address[0]}:{self._address[1]}"

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
        """Change how the stub behaves (see StubConfig); the whole configuration comes back.

        Setting ``outage_mode`` (again) starts an outage of ``outage_seconds``; null ends it.
        """
        with self._ledger.lock:
            self._ledger.config = self._ledger.config.updated(changes)
            answer = asdict(self._ledger.config)
        if "outage_mode" in changes:
            self._begin_outage()
        return answer

    def reset(self) -> None:
        """Forget every notification and count, and go back to the configuration it started with."""
        with self._ledger.lock:
            self._ledger.clear()
            self._ledger.config = self._ledger.initial
        self._begin_outage()

    def reset_daily_limit(self) -> None:
        """Start the daily cap's period again now, as if a new day began: nothing sent today."""
        with self._ledger.lock:
            self._ledger.limits.new_day(time.monotonic())

    def notifications(self, reference: str | None = None) -> list[dict[str, Any]]:
        """The notifications stored (with ``reference``, when given), newest first."""
        return self._ledger.find(reference)

    def route(
        self, method: str, path: str, query: str, raw: bytes, authorization: str
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request: a status and a JSON body (or raise StubError)."""
        if path.startswith("/_stub/"):
            return self._control(method, path, raw)
        outage = self._ledger.arrive()
        if outage == "refuse":
            raise HangUp
        if outage == "error":
            raise server_error()
        if path == "/_status" and method == "GET":
            return 200, {"status": "ok"}
        if path.startswith("/v2/"):
            key = self._authorise(authorization)
            if method == "POST" and path in SEND_PATHS:
                return self._send(path, raw, key)
            if method == "GET":
                return self._read(path, query)
        raise StubError(404, "NoResultFound", "The requested URL was not found on the server.")

    def _authorise(self, header: str) -> str:
        """The key id (its service id) a request is sent with, or the error that refuses it."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise StubError(401, "AuthError", "Unauthorized: authentication token must be provided")
        if self._key is not None:
            problem = verify_token(token.strip(), *self._key, time.time())
            if problem is not None:
                raise StubError(403, "AuthError", problem)
        key = self._key[0] if self._key is not None else token_issuer(token.strip())
        config = self._ledger.config
        if config.revoke_all or key in config.revoked_keys:
            self._ledger.refuse("revoked")
            raise key_revoked()
        return key

    def _send(self, path: str, raw: bytes, key: str) -> tuple[int, dict[str, Any]]:
        request = validated_send(path, _json(raw))
        config = self._ledger.config
        _pause(config.latency_ms)
        notification = self._ledger.admit(request, self.url, key)
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
        if path == "/_stub/reset-daily-limit" and method == "POST":
            self.reset_daily_limit()
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

    def _listen(self) -> None:
        """Serve on a new listener, on the port the first one got (the caller holds _lifecycle)."""
        httpd = StubHTTPServer(self._address, self)
        self._address = (httpd.server_name, httpd.server_port)
        self._httpd = httpd
        self._served.append(httpd)
        # A short poll interval keeps stop() quick; the loop wakes at once for new connections.
        threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="stub-notify", daemon=True
        ).start()

    def _stop_listening(self, spare_thread: int | None) -> None:
        """Close the listener and every connection but the one ``spare_thread`` serves."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for httpd in self._served:
            httpd.close_connections(spare_thread)

    def _begin_outage(self) -> None:
        """Start the configured outage now (or end the one under way, when none is configured)."""
        with self._lifecycle:
            if not self._running:
                return
            self._cancel_outage_timer()
            with self._ledger.lock:
                mode, seconds = self._ledger.config.outage_mode, self._ledger.config.outage_seconds
                self._ledger.outage_mode = mode
                self._ledger.outage_ends = time.monotonic() + seconds
            if mode == "refuse":
                # The request that asked for the outage still gets its answer.
                self._stop_listening(spare_thread=threading.get_ident())
            elif self._httpd is None:
                self._listen()
            if mode is not None:
                timer = threading.Timer(seconds, self._end_outage, (self._outage_generation,))
                timer.daemon = True
                timer.start()
                self._outage_timer = timer

    def _end_outage(self, generation: int) -> None:
        """Serve normally again, unless the stub stopped or another outage began meanwhile."""
        with self._lifecycle:
            if generation != self._outage_generation or not self._running:
                return
            with self._ledger.lock:
                self._ledger.outage_mode = None
                self._ledger.config = replace(self._ledger.config, outage_mode=None)
            if self._httpd is None:
                try:
                    self._listen()
                except OSError:
                    log.warning("the stub could not listen again on port %s", self._address[1])

    def _cancel_outage_timer(self) -> None:
        """Forget the outage's timer (the caller holds _lifecycle)."""
        self._outage_generation += 1
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise StubError(400, "ValidationError", "Invalid JSON supplied in POST data") from None


def _pause(milliseconds: float) -> None:
    if milliseconds > 0:
        time.sleep(milliseconds / 1000)
