"""The webhook app for provider callbacks: ``gunicorn 'workers.webhooks:create_app()'``.

One route per provider, each with its own verifier. A callback is answered 2xx only once its
raw event is committed and a drain that will apply it is queued (broker.wake); 503 when
it could not be stored or queued, so the provider tries again; never a 200 for a dropped
event, never a stack trace. Each callback costs one INSERT, in autocommit on PostgreSQL, and
usually one Redis command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy.exc import DataError, SQLAlchemyError

from config.settings import Settings
from models.base import utcnow
from models.session import SessionFactory
from services.callbacks import inbox
from services.callbacks.parsing import (
    NOTIFY,
    SIGNED,
    MalformedCallback,
    ParsedCallback,
    parse_notify,
    parse_signed,
)
from services.callbacks.signatures import (
    Unauthenticated,
)
from workers.metrics import metrics_endpoint
from workers.webapp import services, use_container

log = logging.getLogger(__name__)


class StatusQueue(Protocol):
    """Sees that a stored callback gets applied (broker.wake.InboxWake in production)."""

    def enqueue(self, inbound_id: int) -> None:
        """Queue what applies the inbox row ``inbound_id``, or raise."""


class TooLarge(Exception):
    """The body is over the limit."""


def read_body(limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whatever Content-Length claims."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise TooLarge
    return body


callbacks = Blueprint("webhooks", __name__)


def _answer(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"status": status, "message": message}), status


def create_app(
    settings: Settings | None = None,
    status_queue: StatusQueue | None = None,
    sessions: SessionFactory | None = None,
) -> Flask:
    """The webhook WSGI app; each gunicorn worker builds its own engine on first request."""
    app = Flask(__name__)
    use_container(app, settings, autocommit_sessions=sessions, inbox_wake=status_queue)
    with app.app_context():
        # A secret that cannot be decoded stops the app at start, not at the first callback.
        services().signed_verifier  # noqa: B018
    app.register_blueprint(callbacks)
    app.register_blueprint(metrics_endpoint)
    return app


def receive(
    provider: str, verify: Callable[[bytes], None], parse: Callable[[bytes], ParsedCallback]
) -> tuple[Response, int]:
    """Check, parse and store one callback, then see that a drain will apply it."""
    here = services()
    limit = here.settings.webhook_max_body_bytes
    try:
        body = read_body(limit)
    except TooLarge:
        return _answer(413, f"the body is over {limit} bytes")
    try:
        verify(body)
    except Unauthenticated as exc:
        log.warning("callback refused on %s: %s", provider, exc)
        return _answer(401, "unauthenticated")
    try:
        parsed = parse(body)
    except MalformedCallback as exc:
        return _answer(400, str(exc))
    try:
        # One INSERT per callback: autocommit saves the COMMIT's round trip.
        stored = inbox.store(here.autocommit_sessions, provider, parsed, body, utcnow())
    except (DataError, ValueError) as exc:
        # The parser refuses what cannot be stored; this is the last guard, never a 5xx.
        log.error("callback refused by the database on %s: %s", provider, type(exc).__name__)
        return _answer(400, "a value in the body cannot be stored")
    except SQLAlchemyError as exc:
        log.error("callback not stored on %s: %s", provider, type(exc).__name__)
        return _answer(503, "the event could not be stored; try again")
    if stored.needs_applying:
        try:
            here.inbox_wake.enqueue(stored.inbound_id)
        except Exception as exc:  # the broker's own errors vary by transport
            log.error("callback stored but not enqueued: %s", type(exc).__name__)
            return _answer(503, "the event is stored but could not be queued; try again")
    return _answer(202 if stored.receipt is inbox.Receipt.NEW else 200, stored.receipt.value)


@callbacks.post("/callbacks/notify")
def notify_callback() -> tuple[Response, int]:
    """A Notify delivery receipt, checked by its bearer token."""
    verifier = services().notify_verifier
    return receive(
        NOTIFY, lambda _body: verifier.verify(request.headers.get("Authorization")), parse_notify
    )


@callbacks.post("/callbacks/signed")
def signed_callback() -> tuple[Response, int]:
    """A Standard Webhooks event, checked by its signature and timestamp."""
    verifier = services().signed_verifier
    webhook_id = request.headers.get("webhook-id", "")

    def verify(body: bytes) -> None:
        verifier.verify(
            webhook_id,
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            body,
            time.time(),
        )

    return receive(SIGNED, verify, lambda body: parse_signed(body, webhook_id))


@callbacks.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Whether the process answers."""
    return _answer(200, "ok")


@callbacks.app_errorhandler(Exception)
def unexpected(exc: Exception) -> tuple[Response, int]:
    """A 500 with no detail; the trace goes to the log only."""
    log.exception("webhook failed unexpectedly")
    return _answer(500, "internal error")


@callbacks.app_errorhandler(404)
@callbacks.app_errorhandler(405)
def not_here(exc: Any) -> tuple[Response, int]:
    """Unknown paths and methods answered in the same JSON shape."""
    return _answer(exc.code, exc.name)
