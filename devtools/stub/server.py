"""A Notify-compatible HTTP server for demos, tests and benchmarks, on the standard library only."""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import math
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

TOKEN_MAX_AGE_SECONDS = 30
CALLBACK_WORKERS = 4
CALLBACK_TIMEOUT_SECONDS = 5.0
MAX_CALLBACK_STATUSES = 20
MAX_CALLBACK_DUPLICATES = 100
PAGE_SIZE = 250
_SENDS = {
    "/v2/notifications/email": ("email", "email_address"),
    "/v2/notifications/sms": ("sms", "phone_number"),
}
_FINAL = frozenset({"delivered", "permanent-failure", "temporary-failure", "technical-failure"})
# An open is reported after delivery, so it keeps the time the message was completed.
_COMPLETED = _FINAL | {"opened"}
_ERROR_NAMES = {400: "BadRequestError", 401: "AuthError", 403: "AuthError", 404: "NoResultFound"}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StubError(Exception):
    """An answer other than success, in Notify's v2 error shape."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    def body(self) -> dict[str, Any]:
        """The JSON body Notify would send."""
        return {
            "errors": [{"error": self.error, "message": self.message}],
            "status_code": self.status,
        }


def injected_failure(status: int) -> StubError:
    """The error a configured fault answers with; a 429 looks like Notify's rate limit."""
    if status == 429:
        message = "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds"
        return StubError(429, "RateLimitError", message)
    if status >= 500:
        return StubError(status, "Exception", "Internal server error")
    return StubError(status, _ERROR_NAMES.get(status, "BadRequestError"), "stub failure injected")


@dataclass(frozen=True)
class StubConfig:
    """How the stub behaves; every field can be changed while it runs.

    Once ``callback_url`` is set, each accepted notification gets one receipt per status in
    ``callback_statuses``, in that order, each posted ``callback_duplicates`` more times right
    after itself; ``callback_shuffle`` posts that whole list in a random order instead.
    """

    latency_ms: float = 0.0
    failure_rate: float = 0.0
    failure_status: int = 500
    fail_next: int = 0
    hold_ms: float = 0.0
    reject_recipients_containing: str | None = None
    callback_url: str | None = None
    callback_token: str | None = None
    # The last of callback_statuses; setting it alone means callback_statuses=[it].
    callback_status: str = "delivered"
    callback_statuses: tuple[str, ...] = ("delivered",)
    callback_duplicates: int = 0
    callback_shuffle: bool = False
    callback_delay_ms: float = 0.0

    def updated(self, changes: Mapping[str, Any]) -> StubConfig:
        """A copy with ``changes`` applied; ValueError names the first bad one."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            _check_setting(name, value)
        return replace(self, **_with_statuses_aligned(dict(changes)))

    def callback_plan(self, rng: random.Random) -> list[str]:
        """The status of each receipt one notification gets, in the order they are posted."""
        repeats = 1 + self.callback_duplicates
        plan = [status for status in self.callback_statuses for _ in range(repeats)]
        if self.callback_shuffle:
            rng.shuffle(plan)
        return plan


def _with_statuses_aligned(changes: dict[str, Any]) -> dict[str, Any]:
    """Keep callback_status equal to the last of callback_statuses, whichever one was given."""
    if "callback_statuses" in changes:
        statuses = tuple(changes["callback_statuses"])
        given = changes.get("callback_status", statuses[-1])
        if given != statuses[-1]:
            raise ValueError("callback_status must be the last of callback_statuses, or left out")
        changes.update(callback_statuses=statuses, callback_status=statuses[-1])
    elif "callback_status" in changes:
        changes["callback_statuses"] = (changes["callback_status"],)
    return changes


_CALLBACK_PLAN_SETTINGS = ("callback_statuses", "callback_duplicates", "callback_shuffle")


def _check_setting(name: str, value: Any) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if name in ("latency_ms", "hold_ms", "callback_delay_ms", "failure_rate"):
        if not number or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a number of at least 0")
        if name == "failure_rate" and value > 1:
            raise ValueError("failure_rate must be between 0 and 1")
    elif name == "failure_status":
        if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
            raise ValueError("failure_status must be an HTTP status from 400 to 599")
    elif name == "fail_next":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("fail_next must be a whole number of at least 0")
    elif name == "callback_status":
        if not isinstance(value, str) or not value:
            raise ValueError("callback_status must be a Notify status such as 'delivered'")
    elif name in _CALLBACK_PLAN_SETTINGS:
        _check_callback_plan_setting(name, value)
    elif value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    elif name == "callback_url" and value and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("callback_url must be an http:// or https:// URL")


def _check_callback_plan_setting(name: str, value: Any) -> None:
    if name == "callback_statuses":
        words = value if isinstance(value, list | tuple) else []
        if not 1 <= len(words) <= MAX_CALLBACK_STATUSES or not all(
            isinstance(word, str) and word for word in words
        ):
            raise ValueError(
                f"callback_statuses must list 1 to {MAX_CALLBACK_STATUSES} Notify statuses, "
                "such as ['delivered', 'opened']"
            )
    elif name == "callback_duplicates":
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or not 0 <= value <= MAX_CALLBACK_DUPLICATES:
            raise ValueError(
                f"callback_duplicates must be a whole number from 0 to {MAX_CALLBACK_DUPLICATES}"
            )
    elif not isinstance(value, bool):
        raise ValueError("callback_shuffle must be true or false")


def split_api_key(key: str) -> tuple[str, str]:
    """The service id and secret of a Notify key '{name}-{service id}-{secret}'."""
    service_id, secret = key[-73:-37], key[-36:]
    if len(key) < 73 or not (_UUID.match(service_id) and _UUID.match(secret)):
        raise ValueError("an API key ends with '{service id}-{secret}', two 36-character UUIDs")
    return service_id, secret


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_token(token: str, service_id: str, secret: str, now: float) -> str | None:
    """Why Notify would refuse ``token`` (HS256, issued by the service within 30 s), or None."""
    try:
        header, claims, signature = token.split(".")
        alg = json.loads(_b64decode(header)).get("alg")
        payload = json.loads(_b64decode(claims))
        given = _b64decode(signature)
    except (ValueError, AttributeError):
        return "Invalid token: not a JWT"
    if alg != "HS256":
        return "Invalid token: algorithm used is not HS256"
    expected = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    if not isinstance(payload, dict) or payload.get("iss") != service_id:
        return "Invalid token: service not found"
    if not hmac.compare_digest(expected, given):
        return "Invalid token: signature, api token not found"
    issued_at = payload.get("iat")
    if not isinstance(issued_at, int | float) or abs(now - issued_at) > TOKEN_MAX_AGE_SECONDS:
        return "Error: Your system clock must be accurate to within 30 seconds"
    return None


@dataclass(frozen=True)
class SendRequest:
    """A validated send: which kind, to whom, with what."""

    kind: str
    recipient_field: str
    recipient: str
    template_id: str
    personalisation: dict[str, Any]
    reference: str | None


def validated_send(path: str, body: object) -> SendRequest:
    """The request Notify would accept at ``path``, or a 400 ValidationError saying why not."""
    kind, recipient_field = _SENDS[path]
    if not isinstance(body, dict):
        raise StubError(400, "ValidationError", "Invalid JSON supplied in POST data")
    recipient = body.get(recipient_field)
    template_id = body.get("template_id")
    personalisation = body.get("personalisation") or {}
    reference = body.get("reference")
    if not isinstance(recipient, str) or not recipient:
        raise StubError(400, "ValidationError", f"{recipient_field} is a required property")
    if kind == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", recipient):
        raise StubError(400, "ValidationError", "email_address Not a valid email address")
    if kind == "sms" and not _PHONE.match(recipient):
        raise StubError(400, "ValidationError", "phone_number Must not contain letters or symbols")
    if not isinstance(template_id, str) or not _UUID.match(template_id):
        raise StubError(400, "ValidationError", "template_id is not a valid UUID")
    if not isinstance(personalisation, dict):
        raise StubError(400, "ValidationError", "personalisation is not of type object")
    if reference is not None and not isinstance(reference, str):
        raise StubError(400, "ValidationError", "reference is not of type string")
    return SendRequest(kind, recipient_field, recipient, template_id, personalisation, reference)


def _rendered(request: SendRequest) -> str:
    lines = [f"{key}: {value}" for key, value in sorted(request.personalisation.items())]
    return "\n".join([f"(stub rendering of template {request.template_id})", *lines])


@dataclass
class _Receipts:
    """One notification's delivery receipts still to post, and where to post them."""

    notification_id: str
    url: str
    token: str | None
    statuses: list[str]
    posted: int = 0


class _Ledger:
    """Everything the stub remembers, behind one lock."""

    def __init__(self, config: StubConfig) -> None:
        self.lock = threading.Lock()
        self.initial = config
        self.config = config
        self.random = random.Random()  # noqa: S311 - fault injection, not security
        self.clear()

    def clear(self) -> None:
        """Forget every notification and count (the caller holds the lock, or no one else runs)."""
        self.notifications: dict[str, dict[str, Any]] = {}
        self.by_reference: dict[str, list[str]] = {}
        self.receipts: Counter[str] = Counter()
        self.total = self.rejected = self.callbacks_sent = self.callbacks_failed = 0

    def admit(self, request: SendRequest, base_url: str) -> dict[str, Any]:
        """Record the notification and its receipt, or raise the fault the config asks for."""
        with self.lock:
            fault = self._fault(request.recipient)
            if fault is not None:
                self.rejected += 1
                raise fault
            notification = _notification(request, base_url)
            self.notifications[notification["id"]] = notification
            self.total += 1
            if request.reference is not None:
                self.receipts[request.reference] += 1
                self.by_reference.setdefault(request.reference, []).append(notification["id"])
            return notification

    def _fault(self, recipient: str) -> StubError | None:
        config = self.config
        if config.fail_next > 0:
            self.config = replace(config, fail_next=config.fail_next - 1)
            return injected_failure(config.failure_status)
        if config.failure_rate and self.random.random() < config.failure_rate:
            return injected_failure(config.failure_status)
        blocked = config.reject_recipients_containing
        if blocked and blocked in recipient:
            # Echoing the address, as some real validation messages do, lets tests prove that
            # clients keep it out of what they store.
            return StubError(400, "ValidationError", f"{recipient} is not allowed to receive this")
        return None

    def find(self, reference: str | None) -> list[dict[str, Any]]:
        """Notifications with ``reference`` (all when None), newest first."""
        with self.lock:
            if reference is None:
                chosen = list(self.notifications.values())
            else:
                chosen = [self.notifications[i] for i in self.by_reference.get(reference, [])]
            return [dict(n) for n in reversed(chosen[-PAGE_SIZE:])]

    def get(self, notification_id: str) -> dict[str, Any] | None:
        """One notification by id."""
        with self.lock:
            found = self.notifications.get(notification_id)
            return dict(found) if found else None

    def mark(self, notification_id: str, status: str) -> dict[str, Any] | None:
        """Move a notification to ``status``, as a delivery receipt reports it."""
        with self.lock:
            found = self.notifications.get(notification_id)
            if found is not None:
                found["status"] = status
                # A duplicate receipt must carry the same completed_at as the first one did.
                ended = status in _COMPLETED
                found["completed_at"] = (found["completed_at"] or _now()) if ended else None
                return dict(found)
            return None

    def count_callback(self, delivered: bool) -> None:
        """Count one callback posted (or not)."""
        with self.lock:
            if delivered:
                self.callbacks_sent += 1
            else:
                self.callbacks_failed += 1

    def stats(self) -> dict[str, Any]:
        """Totals and receipts per reference, as GET /_stub/stats answers them."""
        with self.lock:
            return {
                "total": self.total,
                "unique_references": len(self.receipts),
                "duplicates": sum(count - 1 for count in self.receipts.values()),
                "receipts": dict(self.receipts),
                "rejected": self.rejected,
                "callbacks": {"sent": self.callbacks_sent, "failed": self.callbacks_failed},
            }


def _notification(request: SendRequest, base_url: str) -> dict[str, Any]:
    notification_id = str(uuid.uuid4())
    created_at = _now()
    return {
        "id": notification_id,
        "reference": request.reference,
        "type": request.kind,
        "email_address": request.recipient if request.kind == "email" else None,
        "phone_number": request.recipient if request.kind == "sms" else None,
        "status": "sending",
        "template": {
            "id": request.template_id,
            "version": 1,
            "uri": f"{base_url}/v2/template/{request.template_id}",
        },
        "body": _rendered(request),
        "subject": "Message from the stub" if request.kind == "email" else None,
        "personalisation": request.personalisation,
        "created_at": created_at,
        "sent_at": created_at,
        "completed_at": None,
        "scheduled_for": None,
    }


def _created_answer(notification: dict[str, Any], base_url: str) -> dict[str, Any]:
    content: dict[str, Any] = {"body": notification["body"]}
    if notification["type"] == "email":
        content.update(subject=notification["subject"], from_email="stub@notify.invalid")
    else:
        content["from_number"] = "STUB"
    return {
        "id": notification["id"],
        "reference": notification["reference"],
        "content": content,
        "uri": f"{base_url}/v2/notifications/{notification['id']}",
        "template": notification["template"],
        "scheduled_for": None,
    }


class _CallbackSender:
    """Posts delivery receipts from a few daemon threads, each receipt when it falls due.

    A notification's next receipt is queued only once the one before it was posted (or failed),
    so its receipts arrive in the planned order whichever threads carry them, and receipts of
    many notifications interleave instead of one long plan holding a thread.
    """

    def __init__(self, ledger: _Ledger) -> None:
        self._ledger = ledger
        self._due: list[tuple[float, int, _Receipts]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._stopped = threading.Event()
        self._started = False

    def schedule(self, receipts: _Receipts, delay_seconds: float) -> None:
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

    def _next(self, stopped: threading.Event) -> _Receipts | None:
        with self._ready:
            while not stopped.is_set():
                wait = self._due[0][0] - time.monotonic() if self._due else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._ready.wait(wait)
            return None

    def _work(self, stopped: threading.Event) -> None:
        connections = _Connections()
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

    def _post_next(self, receipts: _Receipts, connections: _Connections) -> bool:
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
            body = json.dumps(_receipt(notification)).encode()
            return connections.post(receipts.url, body, headers) < 300
        except Exception as exc:
            # A callback receiver that misbehaves must never take the stub down with it.
            log.warning("stub callback failed: %s: %s", type(exc).__name__, exc)
            return False


def _receipt(notification: dict[str, Any]) -> dict[str, Any]:
    """The body Notify posts to a service's callback URL."""
    return {
        "id": notification["id"],
        "reference": notification["reference"],
        "to": notification["email_address"] or notification["phone_number"],
        "status": notification["status"],
        "created_at": notification["created_at"],
        "completed_at": notification["completed_at"],
        "sent_at": notification["sent_at"],
        "notification_type": notification["type"],
    }


# What a keep-alive connection the receiver closed while it sat idle fails with on next use.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_MAX_OPEN_PER_THREAD = 4


class _Connections:
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


class _Handler(BaseHTTPRequestHandler):
    """Answers one keep-alive connection's requests."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request: paths carry references, and logging costs time."""

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        try:
            authorization = self.headers.get("Authorization") or ""
            status, body = self.server.stub.route(method, path, query, raw, authorization)
        except StubError as exc:
            status, body = exc.status, exc.body()
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], stub: StubNotifyServer) -> None:
        self.stub = stub
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer would look the host name up in DNS, which can take seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (as hold_ms invites) is expected; anything else is worth a line.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.warning("stub request failed", exc_info=True)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        """Remember open connections, so stop() can close the idle keep-alive ones."""
        with self._open_lock:
            if add:
                self._open.add(connection)
            else:
                self._open.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection, waking the threads that wait on them."""
        with self._open_lock:
            for connection in self._open:
                # A client may have closed it already.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


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
        self._ledger = _Ledger(StubConfig().updated(config))
        self._callbacks = _CallbackSender(self._ledger)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StubNotifyServer:
        """Listen and serve on a background thread."""
        self._httpd = _HTTPServer(self._address, self)
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
            if method == "POST" and path in _SENDS:
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
            receipts = _Receipts(
                notification["id"], config.callback_url, config.callback_token, plan
            )
            # Queued, not posted: a slow or dead receiver never slows a send down.
            self._callbacks.schedule(receipts, config.callback_delay_ms / 1000)
        # The receipt is already counted: a client that gives up now leaves a message delivered.
        _pause(config.hold_ms)
        return 201, _created_answer(notification, self.url)

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


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT: ``python -m devtools.stub --port 6011``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6011)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="verify bearer tokens against this key")
    args = parser.parse_args(argv)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stub = StubNotifyServer(args.host, args.port, args.api_key, latency_ms=args.latency_ms)
    with stub:
        sys.stdout.write(f"stub notify listening on {stub.url}\n")
        sys.stdout.flush()
        stopping.wait()


if __name__ == "__main__":
    main()
