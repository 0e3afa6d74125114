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

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings, get_settings
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
    BearerVerifier,
    StandardWebhooksVerifier,
    Unauthenticated,
    decode_secret,
)
from workers.metrics import install as install_metrics
from workers.webapp import services as container_of_request
from workers.webapp import use_container

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
    settings = settings or get_settings()

    def open_sessions() -> SessionFactory:
        # One INSERT per callback: autocommit saves the COMMIT's round trip.
        return container_of_request().autocommit_sessions

    notify = BearerVerifier(tuple(settings.webhook_notify_token_sha256))
    signed = StandardWebhooksVerifier(
        tuple(decode_secret(s.get_secret_value()) for s in settings.webhook_signing_secrets),
        settings.webhook_timestamp_tolerance_seconds,
    )
    limit = settings.webhook_max_body_bytes
    install_metrics(app, settings)

    def receive(
        provider: str, verify: Callable[[bytes], None], parse: Callable[[bytes], ParsedCallback]
    ) -> tuple[Response, int]:
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
            stored = inbox.store(open_sessions(), provider, parsed, body, utcnow())
        except SQLAlchemyError as exc:
            log.error("callback not stored on %s: %s", provider, type(exc).__name__)
            return _answer(503, "the event could not be stored; try again")
        if stored.needs_applying:
            try:
                container_of_request().inbox_wake.enqueue(stored.inbound_id)
            except Exception as exc:  # the broker's own errors vary by transport
                log.error("callback stored but not enqueued: %s", type(exc).__name__)
                return _answer(503, "the event is stored but could not be queued; try again")
        return _answer(202 if stored.receipt is inbox.Receipt.NEW else 200, stored.receipt.value)

    @app.post("/callbacks/notify")
    def notify_callback() -> tuple[Response, int]:
        return receive(
            NOTIFY, lambda _body: notify.verify(request.headers.get("Authorization")), parse_notify
        )

    @app.post("/callbacks/signed")
    def signed_callback() -> tuple[Response, int]:
        webhook_id = request.headers.get("webhook-id", "")

        def verify(body: bytes) -> None:
            signed.verify(
                webhook_id,
                request.headers.get("webhook-timestamp"),
                request.headers.get("webhook-signature"),
                body,
                time.time(),
            )

        return receive(SIGNED, verify, lambda body: parse_signed(body, webhook_id))

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return _answer(200, "ok")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("webhook failed unexpectedly")
        return _answer(500, "internal error")

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_here(exc: Any) -> tuple[Response, int]:
        return _answer(exc.code, exc.name)

    return app
