"""A Flask app whose routes do nothing: the baseline of bench.webhooks and bench.api."""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """The routes under test, doing nothing: ``gunicorn 'bench.bare_app:create_app()'``."""
    app = Flask(__name__)

    @app.post("/callbacks/notify")
    def notify_callback() -> tuple[str, int]:
        return "", 202

    @app.post("/v1/messages")
    def post_message() -> tuple[str, int]:
        return "", 202

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app
